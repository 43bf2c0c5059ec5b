"""``GET /api/v1/datasets`` and ``/datasets/{pid}`` through the app, on harvested simulated facilities."""
from __future__ import annotations

import time
from typing import Callable
from urllib.parse import quote

import pytest
from sqlalchemy import delete

from broker.authz import Principal
from broker.registry_kinds import KINDS
from broker.search import service
from panmodel.datasets import SourceState, SourceStatus
from broker.search.service import parse_query
from demo import federation as sim
from demo.catalogue import generate
from registry.models import SearchEndpoint
from registry.store import Store, make_engine

ACTOR = Principal("test", admin=True)
FACILITIES = ("sim-ill", "sim-esrf", "sim-ess")


@pytest.fixture
def federation(sqlite_broker):  # noqa: ANN001, ANN201
    with sim.Federation() as fed:
        for name in FACILITIES:
            fed.add(name, sim.panosc_search_api(name, generate(name, 80)))
        fed.start()
        for name in FACILITIES:
            sqlite_broker.registry.create(ACTOR, KINDS.facility, {"id": name, "name": name, "country": "FR"})
            sqlite_broker.registry.create(ACTOR, KINDS.search_endpoint, {
                "id": f"{name}-search", "facility_id": name, "kind": "panosc-search-api", "base_url": fed.url(name)})
        sqlite_broker.harvest.run_all()
        yield fed


def test_index_search_merges_facilities_with_facets_and_sources(sqlite_client, federation):  # noqa: ANN001
    body = sqlite_client.get("/api/v1/datasets?q=scattering&size=5").json()
    assert body["mode"] == "index" and body["partial"] is False and len(body["items"]) == 5
    facility_counts = {b["value"]: b["count"] for b in body["facets"]["facility"]}
    assert set(facility_counts) <= set(FACILITIES) and sum(facility_counts.values()) == body["total"]
    assert {s["facility"]: s["status"] for s in body["sources"]} == {f: "index" for f in FACILITIES}
    assert all(b.get("label") for b in body["facets"]["technique"])


def test_index_search_pages_continue_and_filters_apply(sqlite_client, federation):  # noqa: ANN001
    whole = [d["pid"] for d in sqlite_client.get("/api/v1/datasets?size=40").json()["items"]]
    pages = [[d["pid"] for d in sqlite_client.get(f"/api/v1/datasets?size=20&page={p}").json()["items"]]
             for p in (1, 2)]
    assert pages[0] + pages[1] == whole
    filtered = sqlite_client.get("/api/v1/datasets", params={
        "technique": "small angle scattering", "parameter": "sample_temperature:10..40:°C", "facility": "sim-ill",
        "size": 100}).json()
    assert filtered["total"] > 0
    for item in filtered["items"]:
        assert item["facility"] == "sim-ill"
        temperature = next(p for p in item["parameters"] if p["name"] == "sample_temperature")
        assert 283.15 <= temperature["si_value"] <= 313.15


def test_a_dataset_is_found_by_pid_with_slashes_or_by_doi(sqlite_client, sqlite_broker, federation):  # noqa: ANN001
    record = generate("sim-esrf", 80)[3]
    by_pid = sqlite_client.get("/api/v1/datasets/" + quote(record["pid"], safe="/"))
    assert by_pid.status_code == 200 and by_pid.json()["title"] == record["title"]
    assert sqlite_client.get("/api/v1/datasets/" + quote(record["pid"], safe="")).status_code == 200
    assert sqlite_client.get("/api/v1/datasets/10.9999/nothing-here").status_code == 404


def test_a_dataset_not_harvested_yet_is_fetched_live(sqlite_client, sqlite_broker, federation):  # noqa: ANN001
    record = generate("sim-ess", 80)[7]
    sqlite_broker.index.delete([record["pid"]])
    sqlite_broker.index.commit()
    response = sqlite_client.get("/api/v1/datasets/" + record["pid"])
    assert response.status_code == 200 and response.json()["facility"] == "sim-ess"


def test_live_mode_through_the_api(sqlite_client, federation):  # noqa: ANN001
    body = sqlite_client.get("/api/v1/datasets?mode=live&size=10").json()
    assert body["mode"] == "live" and body["total"] == 240 and body["total_exact"] is True
    assert {s["status"] for s in body["sources"]} == {"ok"}
    # live facets count what the facilities sent (size per facility), and say so
    assert body["facets_exact"] is False
    assert sum(b["count"] for b in body["facets"]["facility"]) == 30


@pytest.mark.parametrize("query, field", [
    ("size=1000", "size"), ("page=0", "page"), ("page=9999&size=100", "page"), ("technique=levitation", "technique"),
    ("parameter=sample_temperature:hot", "parameter"), ("parameter=colour:1..2:blorps", "parameter"),
    ("parameter=sample_temperature:300..10:K", "parameter"),
    ("parameter=sample_temperature:1..2:eV", "parameter"), ("sort=random", "sort"), ("mode=psychic", "mode"),
    ("q=" + "x" * 600, "q"), ("year_from=abc", "year_from"), ("facet=colour", "facet"),
])
def test_bad_search_parameters_are_4xx_problems_naming_the_field(sqlite_client, query, field):  # noqa: ANN001
    response = sqlite_client.get("/api/v1/datasets?" + query)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert field in body["detail"] or any(field in e["field"] for e in body.get("errors", []))


def test_documents_and_instruments(sqlite_client, federation):  # noqa: ANN001
    record = generate("sim-ill", 80)[10]
    proposal = record["documents"][0]
    found = sqlite_client.get("/api/v1/documents/" + proposal["doi"])
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["title"] == proposal["title"] and record["pid"] in {d["pid"] for d in body["datasets"]}
    assert body["facilities"] == ["sim-ill"] and body["dataset_count"] == len(body["datasets"])
    assert sqlite_client.get("/api/v1/documents/10.9999/none").status_code == 404
    panosc = sqlite_client.get("/panosc/api/Documents/" + proposal["doi"],
                               params={"filter": '{"include": ["datasets"]}'}).json()
    assert panosc["type"] == "proposal" and panosc["datasets"]
    instruments = sqlite_client.get("/api/v1/instruments?facility=sim-esrf").json()["items"]
    assert {i["name"] for i in instruments} <= {"BM29", "ID02", "ID23-1", "ID31", "ID21", "ID19"}
    assert sum(i["dataset_count"] for i in instruments) == 80


def _add_new_facility(broker, federation) -> None:  # noqa: ANN001
    broker.registry.create(ACTOR, KINDS.facility, {"id": "sim-new", "name": "New", "country": "FR"})
    broker.registry.create(ACTOR, KINDS.search_endpoint, {
        "id": "sim-new-search", "facility_id": "sim-new", "kind": "panosc-search-api",
        "base_url": federation.url("sim-ill")})


def _seen_until_the_ttl_when_removed_elsewhere(broker, monkeypatch, listed: Callable[[], set[str]]) -> None:  # noqa: ANN001
    """sim-new removed by another process (a worker, a replica): still listed for the lifetime, then not."""
    monkeypatch.setattr(service, "SOURCES_TTL_SECONDS", 0.5)
    listed()  # read afresh under the shorter lifetime
    elsewhere = Store(make_engine(broker.settings.effective_database_url))
    with elsewhere.session() as session:
        session.execute(delete(SearchEndpoint).where(SearchEndpoint.id == "sim-new-search"))
    elsewhere.engine.dispose()
    assert "sim-new" in listed()  # not this process's write: kept for the lifetime
    time.sleep(0.6)
    assert listed() == set(FACILITIES)


def test_index_sources_follow_writes_here_at_once_and_another_process_s_within_the_ttl(
        sqlite_broker, federation, monkeypatch):  # noqa: ANN001
    query = parse_query({"q": "scattering"})

    def sources() -> dict[str, SourceStatus]:
        return {s.facility: s for s in sqlite_broker.search.search(query).sources}

    assert set(sources()) == set(FACILITIES)
    _add_new_facility(sqlite_broker, federation)
    new = sources()["sim-new"]  # a write in this process: the next search sees it
    assert new.status is SourceState.SKIPPED and new.error == "not harvested yet"
    _seen_until_the_ttl_when_removed_elsewhere(sqlite_broker, monkeypatch, lambda: set(sources()))


def test_live_sources_follow_registry_writes_here_at_once_and_another_process_s_within_the_ttl(
        sqlite_broker, federation, monkeypatch):  # noqa: ANN001
    def asked() -> set[str]:
        return {s.facility for s in sqlite_broker.search.search(parse_query({"mode": "live", "size": 1})).sources}

    assert asked() == set(FACILITIES)
    _add_new_facility(sqlite_broker, federation)
    assert "sim-new" in asked()  # a registry write in this process: the next search asks it
    _seen_until_the_ttl_when_removed_elsewhere(sqlite_broker, monkeypatch, asked)
