"""The broker against the real PaNOSC reference Search API (panosc-eu/search-api, run from ../shared/peers):
harvest, live search, health and index hygiene as facilities that deploy the reference would see them.

Three reference servers, 32 datasets each, written in the reference's own storage shape (techniques with local
pids and the PaNET IRI in ``panetId``, documents linked through DocumentDataset, samples, files). The reference
ignores ``query``, compares parameters only in their stored unit and has no Dataset ``documents`` relation.
"""
from __future__ import annotations

import copy
import json

import pytest
import requests
from werkzeug.wrappers import Response

from broker.authz import Principal
from broker.registry_kinds import KINDS
from broker.registry_service import Precondition
from panmodel.datasets import SourceState
from broker.search.service import parse_query
from panmodel.techniques import panet
from demo import federation as sim
from demo.catalogue import generate
from tests.conftest import make_settings
from tests.panosc_reference import reference_factory  # noqa: F401 - the session fixture

pytestmark = pytest.mark.slow  # the PaNOSC reference Search API (Node)

ACTOR = Principal("test", admin=True)
FACILITIES = ("sim-ill", "sim-esrf", "sim-ess")
XANES = "http://purl.org/pan-science/PaNET/PaNET01199"  # x-ray absorption near edge structure


def as_reference_records(facility: str, records: list[dict]) -> list[dict]:
    """Demo records as a facility running the reference holds them: technique pids are local, PaNET in panetId."""
    out = copy.deepcopy(records)
    for record in out:
        for technique in record["techniques"]:
            technique["panetId"] = technique["pid"]
            technique["pid"] = f"{facility}/technique/{technique['pid'].rsplit('/', 1)[1]}"
    return out


def copper(facility: str, n: int, celsius: float) -> dict:
    """A copper dataset: XANES (a descendant of x-ray absorption spectroscopy), its temperature in °C."""
    return {"pid": f"{facility}/copper/{n}", "title": f"Copper K-edge XANES of CuO, series {n}", "isPublic": True,
            "creationDate": f"2021-0{n}-10T10:00:00.000Z", "size": 1000 + n,
            "instrument": {"pid": f"{facility}/BM23", "name": "BM23", "facility": facility.upper()},
            "techniques": [{"pid": f"{facility}/technique/xanes", "name": "XANES", "panetId": XANES}],
            "parameters": [{"name": "temperature", "value": celsius, "unit": "celsius"}],
            "files": [{"name": f"cu_{n}.h5", "path": "/data/cu", "size": 1000 + n}],
            "samples": [{"pid": f"{facility}/sample/cuo", "name": "CuO powder", "description": "copper(II) oxide"}],
            "documents": [{"pid": f"{facility}/proposal/cu", "type": "proposal", "title": "Oxidation states of copper",
                           "isPublic": True, "startDate": "2021-01-01T00:00:00.000Z", "license": "CC-BY-4.0",
                           "releaseDate": "2024-01-01T00:00:00.000Z",
                           "members": [{"role": "principal investigator",
                                        "person": {"id": f"{facility}/p1", "fullName": "Marie Curie",
                                                   "orcid": "0000-0002-1825-0097"},
                                        "affiliation": {"name": "Sorbonne", "city": "Paris", "country": "France"}}]}]}


def catalogue(facility: str) -> list[dict]:
    return as_reference_records(facility, generate(facility, 30)) + [copper(facility, 1, 25.0),
                                                                     copper(facility, 2, -196.0)]


@pytest.fixture(scope="module")
def references(reference_factory):  # noqa: ANN001, ANN201, F811
    from tests.panosc_reference import to_reference_db

    return {facility: reference_factory(to_reference_db(catalogue(facility)), facility) for facility in FACILITIES}


@pytest.fixture
def broker(tmp_path, references):  # noqa: ANN001, ANN201
    from panbroker.app import build_broker

    built = build_broker(make_settings(tmp_path, search_deadline_seconds=5.0))
    for facility, server in references.items():
        register(built, facility, server.base_url)
    yield built
    built.index.close()


def register(broker, facility: str, url: str, endpoint: str | None = None) -> None:  # noqa: ANN001
    try:
        broker.registry.create(ACTOR, KINDS.facility, {"id": facility, "name": facility, "country": "FR"})
    except Exception:  # noqa: BLE001 - a second endpoint of the same facility
        pass
    broker.registry.create(ACTOR, KINDS.search_endpoint, {"id": endpoint or f"{facility}-search",
                                                          "facility_id": facility, "kind": "panosc-search-api",
                                                          "base_url": url, "connector_config": {"page_size": 10}})


def live(broker, **params):  # noqa: ANN001, ANN003, ANN201
    return broker.search.search(parse_query({**params, "mode": "live"}))


def test_the_reference_ignores_query_and_has_no_documents_relation(references):  # noqa: ANN001
    """What the rest of this module guards against, seen on the real thing."""
    api = references["sim-ill"].api
    everything = requests.get(f"{api}/Datasets", params={"filter": json.dumps({"query": "copper"})}, timeout=5).json()
    assert len(everything) == 32 and {r["score"] for r in everything} == {0}
    documents = requests.get(f"{api}/Datasets", timeout=5,
                             params={"filter": json.dumps({"include": [{"relation": "documents"}]})})
    assert documents.status_code == 500


def test_a_harvest_imports_every_dataset_with_every_relation_the_reference_has(broker):  # noqa: ANN001
    jobs = [broker.harvest.run(f"{f}-search") for f in FACILITIES]
    assert [(j["state"], j["imported"], j["failed"]) for j in jobs] == [("succeeded", 32, 0)] * 3
    assert broker.index.count() == 96
    cu = broker.index.get("sim-esrf/copper/1")
    assert cu.techniques[0].iri == XANES and cu.techniques[0].pid == "sim-esrf/technique/xanes"
    assert (cu.instrument, cu.instrument_pid, cu.instrument_facility) == ("BM23", "sim-esrf/BM23", "SIM-ESRF")
    assert [(s.pid, s.name, s.description) for s in cu.samples] == [("sim-esrf/sample/cuo", "CuO powder",
                                                                     "copper(II) oxide")]
    assert [(f.name, f.path, f.size) for f in cu.files] == [("cu_1.h5", "/data/cu", 1001)] and cu.file_count == 1
    document = cu.documents[0]  # reached through Documents?include=datasets: the reference's Dataset has none
    assert (document.pid, document.type, document.license) == ("sim-esrf/proposal/cu", "proposal", "CC-BY-4.0")
    assert document.start_date.startswith("2021-01-01") and document.release_date.startswith("2024-01-01")
    assert [(m.role, m.name, m.orcid, m.affiliation) for m in document.members] == [
        ("principal investigator", "Marie Curie", "0000-0002-1825-0097", "Sorbonne")]
    temperature = cu.parameters[0]
    assert temperature.id is not None and temperature.unit == "celsius"
    assert temperature.si_value == pytest.approx(298.15) and temperature.dimension == "K"
    # the demo catalogue's proposals reach every one of their datasets
    some = as_reference_records("sim-ill", generate("sim-ill", 30))[3]
    assert broker.index.get(some["pid"]).documents[0].doi == some["documents"][0]["doi"]


def test_harvested_datasets_are_found_by_sample_and_by_a_parameter_in_another_unit(broker):  # noqa: ANN001
    for facility in FACILITIES:
        broker.harvest.run(f"{facility}-search")
    by_sample = broker.search.search(parse_query({"q": "CuO"}))
    assert {d.pid for d in by_sample.items} == {f"{f}/copper/{n}" for f in FACILITIES for n in (1, 2)}
    # stored as 25 °C and -196 °C; asked in kelvin, under the reference's name for it
    warm = broker.search.search(parse_query({"parameter": "temperature:290..300:K", "q": "copper"}))
    assert {d.pid for d in warm.items} == {f"{f}/copper/1" for f in FACILITIES}


def test_live_search_returns_only_what_matches_although_the_reference_ignores_query(broker):  # noqa: ANN001
    result = live(broker, q="copper", size=50)
    assert {d.pid for d in result.items} == {f"{f}/copper/{n}" for f in FACILITIES for n in (1, 2)}
    assert result.total == 6 and result.total_exact and not result.partial
    assert all(s.status is SourceState.OK and s.complete for s in result.sources)
    assert any("did not match" in (s.error or "") for s in result.sources)  # it says what it left out


def test_live_technique_filters_match_descendants_through_panet_ids(broker):  # noqa: ANN001
    assert XANES in panet().with_descendants(panet().resolve("x-ray absorption spectroscopy"))
    result = live(broker, technique="x-ray absorption spectroscopy", size=50)
    expected = {f"{f}/copper/{n}" for f in FACILITIES for n in (1, 2)} | {
        r["pid"] for f in FACILITIES for r in generate(f, 30)
        if r["techniques"][0]["name"] == "x-ray absorption spectroscopy"}
    assert {d.pid for d in result.items} == expected and result.total == len(expected) and not result.partial


def test_live_parameter_ranges_match_values_stored_in_another_unit(broker):  # noqa: ANN001
    # -196 °C is 77.15 K: asked in kelvin of a facility that stored celsius
    result = live(broker, parameter="sample_temperature:70..80:K", q="copper", size=50)
    assert {d.pid for d in result.items} == {f"{f}/copper/2" for f in FACILITIES}
    assert not result.partial


def test_live_page_two_continues_page_one_over_the_reference(broker):  # noqa: ANN001
    whole = [d.pid for d in live(broker, size=30).items]
    pages = [[d.pid for d in live(broker, size=10, page=p).items] for p in (1, 2, 3)]
    assert sum(pages, []) == whole and len(set(whole)) == 30
    assert live(broker, size=10).total == 96


def test_a_facility_skipped_by_its_open_circuit_makes_the_answer_partial(broker, references):  # noqa: ANN001
    origin = references["sim-ess"].base_url
    broker.search.live.http.breakers.breaker(origin).open()
    result = live(broker, size=50)
    states = {s.facility: s.status for s in result.sources}
    assert states["sim-ess"] is SourceState.SKIPPED
    assert result.partial and not result.total_exact
    assert {d.facility for d in result.items} == {"sim-ill", "sim-esrf"}


def test_the_health_probe_calls_what_harvest_and_live_search_call(broker, references):  # noqa: ANN001
    with sim.Federation() as fed:
        # answers count as the reference does, but every find fails: it is not up
        fed.add("half", lambda request: Response('{"count": 3}', content_type="application/json")
                if request.path == "/api/Datasets/count"
                else Response('{"error": {"statusCode": 500, "message": "Internal Server Error"}}', status=500,
                              content_type="application/json"))
        fed.start()
        register(broker, "half", fed.url("half"))
        results = {r.id: r for r in broker.health.check_all()}
    assert results["half-search"].status == "down" and "500" in results["half-search"].error
    assert {results[f"{f}-search"].status for f in FACILITIES} == {"up"}


def test_deleting_an_endpoint_removes_its_datasets(broker):  # noqa: ANN001
    for facility in FACILITIES:
        broker.harvest.run(f"{facility}-search")
    broker.registry.delete(ACTOR, KINDS.search_endpoint, "sim-ess-search", Precondition(1, from_header=True))
    # gone from searches at once, though the worker has not purged them yet
    result = broker.search.search(parse_query({"q": "copper", "size": 50}))
    assert {d.facility for d in result.items} == {"sim-ill", "sim-esrf"} and result.total == 4
    assert broker.harvest.purge_orphans() == {"sim-ess-search"}
    assert broker.index.count() == 64 and broker.index.get("sim-ess/copper/1") is None


def test_the_same_pid_from_two_facilities_is_a_harvest_error_not_a_silent_move(broker, references):  # noqa: ANN001
    broker.harvest.run("sim-ill-search")
    # the ESRF server's copy under another facility: every pid is already held by sim-ill
    register(broker, "sim-copy", references["sim-ill"].base_url)
    job = broker.harvest.run("sim-copy-search")
    assert job["state"] == "partial" and job["imported"] == 0 and job["failed"] == 32
    assert "already harvested from search endpoint 'sim-ill-search'" in job["errors"][0]["error"]
    assert broker.index.get("sim-ill/copper/1").facility == "sim-ill"


def test_live_year_bounds_alone_are_dates_the_reference_compares(broker):  # noqa: ANN001
    """``year_to`` alone once sent a naive and an aware date in one ``between``; every facility failed."""
    early = live(broker, year_to="2017", size=100)
    assert all(s.status is SourceState.OK for s in early.sources) and not early.partial
    expected = {r["pid"] for f in FACILITIES for r in generate(f, 30) if r["creationDate"] < "2018"}
    assert {d.pid for d in early.items} == expected and early.total == len(expected)
    late = live(broker, year_from="2021", year_to="2021", size=100)
    assert {d.pid for d in late.items} >= {f"{f}/copper/{n}" for f in FACILITIES for n in (1, 2)}
    assert all(d.year == 2021 for d in late.items)
