"""``/panosc/api``: the broker as a federated PaNOSC Search API. The strongest check is that a PaNOSC
client (the broker's own connector) harvests a broker as it harvests a facility."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from panbroker.app import build_broker, create_app
from broker.authz import Principal
from broker.registry_kinds import KINDS
from demo import federation as sim
from demo.catalogue import generate
from tests.conftest import make_settings
from demo.federation import free_port

ACTOR = Principal("test", admin=True)


@pytest.fixture
def harvested(sqlite_broker):  # noqa: ANN001, ANN201
    with sim.Federation() as fed:
        for name in ("sim-ill", "sim-esrf"):
            fed.add(name, sim.panosc_search_api(name, generate(name, 60)))
        fed.start()
        for name in ("sim-ill", "sim-esrf"):
            sqlite_broker.registry.create(ACTOR, KINDS.facility, {"id": name, "name": name, "country": "FR"})
            sqlite_broker.registry.create(ACTOR, KINDS.search_endpoint, {
                "id": f"{name}-search", "facility_id": name, "kind": "panosc-search-api", "base_url": fed.url(name)})
        sqlite_broker.harvest.run_all()
    return sqlite_broker


def get(client, path, **params):  # noqa: ANN001, ANN003, ANN201
    return client.get("/panosc/api" + path, params={k: json.dumps(v) if not isinstance(v, str) else v
                                                     for k, v in params.items()})


def test_datasets_count_and_lookup_answer_from_the_index(sqlite_client, harvested):  # noqa: ANN001
    assert get(sqlite_client, "/Datasets/count").json() == {"count": 120}
    public = get(sqlite_client, "/Datasets/count", where={"isPublic": True}).json()["count"]
    assert 0 < public < 120
    page = get(sqlite_client, "/Datasets", filter={"limit": 5, "include": ["techniques", "documents"]})
    assert page.status_code == 200 and len(page.json()) == 5
    assert page.headers["X-PaN-Sources"] == "sim-esrf=index,sim-ill=index" and page.headers["X-PaN-Partial"] == "false"
    first = page.json()[0]
    assert first["techniques"][0]["pid"].startswith("http://purl.org/pan-science/PaNET/")
    assert "parameters" not in first  # relations only when included
    one = get(sqlite_client, "/Datasets/" + first["pid"], filter={"include": [{"relation": "parameters"}]}).json()
    assert one["pid"] == first["pid"] and "parameters" in one


def test_the_filter_language_filters_by_technique_parameter_and_text(sqlite_client, harvested):  # noqa: ANN001
    flt = {"limit": 100, "query": "scattering", "include": [
        {"relation": "techniques", "scope": {"where": {"name": "small angle scattering"}}},
        {"relation": "parameters", "scope": {"where": {"and": [
            {"name": "sample_temperature"}, {"value": {"between": [0, 30]}}, {"unit": "°C"}]}}}]}
    records = get(sqlite_client, "/Datasets", filter=flt).json()
    assert records
    for record in records:
        assert "small angle" in record["techniques"][0]["name"]
        assert record["score"] <= 1.0


@pytest.mark.parametrize("filter_text, fragment", [
    ("{bad json", "not valid JSON"),
    ('{"where": {"colour": {"gt": 5}}}', "not supported"),
    ('{"order": "colour DESC"}', "not supported"),
    ('{"where": {"title": {"regexp": "x"}}}', "unknown operator"),
    ('{"limit": 100000}', "limit"),
    ('{"skip": 9990, "limit": 100}', "exceed"),
    ('{"include": [{"relation": "parameters", "scope": {"where": {"name": "sample_colour"}}}]}', "value condition"),
    ('{"include": [{"relation": "spaceships"}]}', "unknown relation"),
    ('{"color": 1}', "unknown filter key"),
    ('{"include": [{"relation": "files", "scope": {"limit": 1}}]}', "limit inside the scope of files"),
])
def test_bad_filters_get_panosc_errors(sqlite_client, filter_text, fragment):  # noqa: ANN001
    response = sqlite_client.get("/panosc/api/Datasets", params={"filter": filter_text})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["statusCode"] == 400 and fragment in error["message"]


def test_panosc_object_form_of_include_is_read(sqlite_client, harvested):  # noqa: ANN001
    plain = get(sqlite_client, "/Documents", filter={"include": [{"relation": "members", "scope": {
        "include": [{"relation": "person"}]}}], "limit": 5})
    objects = get(sqlite_client, "/Documents", filter={"include": [{"members": ["person"]}], "limit": 5})
    assert objects.status_code == plain.status_code == 200 and objects.json() == plain.json()
    assert len(objects.json()) == 5 and all("members" in d for d in objects.json())


def test_an_unknown_dataset_is_a_panosc_404(sqlite_client):  # noqa: ANN001
    response = sqlite_client.get("/panosc/api/Datasets/10.1234/none")
    assert response.status_code == 404 and response.json()["error"]["statusCode"] == 404



def test_a_panosc_client_harvests_the_broker_like_a_facility(harvested, tmp_path: Path):  # noqa: ANN001
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(broker=harvested), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        downstream = build_broker(make_settings(tmp_path / "downstream"))
        downstream.registry.create(ACTOR, KINDS.facility, {"id": "federation", "name": "F", "country": "EU"[:2]})
        downstream.registry.create(ACTOR, KINDS.search_endpoint, {
            "id": "upstream-broker", "facility_id": "federation", "kind": "panosc-search-api",
            "base_url": f"http://127.0.0.1:{port}/panosc", "connector_config": {"page_size": 50}})
        job = downstream.harvest.run("upstream-broker")
        assert job["state"] == "succeeded" and job["imported"] == 120, job["error"]
        probe = downstream.health.check_all()[0]
        assert probe.status == "up"
        downstream.index.close()
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def test_documents_are_found_through_their_datasets_as_the_portal_asks(sqlite_client, harvested):  # noqa: ANN001
    portal_filter = {"limit": 50, "query": "scattering", "include": [
        {"relation": "members", "scope": {"include": [{"relation": "affiliation"}, {"relation": "person"}]}},
        {"relation": "datasets", "scope": {"include": [
            {"relation": "techniques", "scope": {"where": {"name": "small angle scattering"}}},
            {"relation": "parameters", "scope": {"where": {"and": [
                {"name": "sample_temperature"}, {"value": {"between": ["0", "7300"]}}, {"unit": "K"}]}}}]}}]}
    response = get(sqlite_client, "/Documents", filter=portal_filter)
    assert response.status_code == 200, response.text
    documents = response.json()
    assert documents and all(d["type"] == "proposal" and d["datasets"] and isinstance(d["members"], list)
               for d in documents)
    for document in documents:
        for dataset in document["datasets"]:
            assert "small angle" in dataset["techniques"][0]["name"]
    assert len({d["pid"] for d in documents}) == len(documents)
    one = documents[0]
    by_doi = get(sqlite_client, "/Documents", filter={"where": {"doi": one["doi"]}, "include": ["datasets"]}).json()
    assert [d["pid"] for d in by_doi] == [one["pid"]]
    assert get(sqlite_client, "/Documents/count", where={"doi": one["doi"]}).json() == {"count": 1}
    assert get(sqlite_client, "/Documents/" + one["doi"]).json()["pid"] == one["pid"]
    bad = get(sqlite_client, "/Documents", filter={"where": {"colour": {"gt": "2020"}}})
    assert bad.status_code == 400 and "not supported" in bad.json()["error"]["message"]


def test_filters_the_broker_checks_itself_are_refused_beyond_the_scan_ceiling(sqlite_client, harvested,  # noqa: ANN001
                                                                              monkeypatch):
    from broker.search.panosc import compat as panosc_compat

    everything = {"where": {"or": [{"isPublic": True}, {"isPublic": False}]}, "limit": 10}
    assert len(get(sqlite_client, "/Datasets", filter=everything).json()) == 10
    assert get(sqlite_client, "/Datasets/count", where=everything["where"]).json() == {"count": 120}
    monkeypatch.setattr(panosc_compat, "SCAN_CEILING", 100)
    for response in (get(sqlite_client, "/Datasets", filter=everything),
                     get(sqlite_client, "/Datasets/count", where=everything["where"]),
                     get(sqlite_client, "/Documents/count"), get(sqlite_client, "/Documents"),
                     get(sqlite_client, "/Documents", filter={"limit": 5, "order": "title ASC"})):
        assert response.status_code == 400
        assert "120" in response.json()["error"]["message"] and "narrow" in response.json()["error"]["message"]
    # a page of documents reads datasets only up to its last document, and each one's datasets in full
    page = get(sqlite_client, "/Documents", filter={"limit": 5, "include": ["datasets"]})
    assert page.status_code == 200 and len(page.json()) == 5
    for document in page.json():
        assert {d["pid"] for d in document["datasets"]} == {
            d["pid"] for d in get(sqlite_client, "/Documents/" + document["pid"], filter={
                "include": ["datasets"]}).json()["datasets"]}
    narrowed = {"where": {"and": [{"pid": {"inq": [r["pid"] for r in get(sqlite_client, "/Datasets", filter={
        "limit": 3}).json()]}}, {"or": [{"isPublic": True}, {"isPublic": False}]}]}}
    assert len(get(sqlite_client, "/Datasets", filter=narrowed).json()) == 3


@pytest.mark.parametrize("raw", ["%FF%FE", "null", "[1]",
                                 '{"fields": 5}', '{"fields": {"pid": "yes"}}', '{"order": ["title SIDEWAYS"]}',
                                 '{"include": [{"relation": "techniques", "scope": {"where": {"colour": "red"}}}]}',
                                 '{"include": [{"relation": "datasets"}]}',
                                 '{"include": [{"relation": "parameters", "scope": {"where": {"and": [{"name": "x"}, '
                                 '{"or": [{"value": 1}, {"value": 2}]}]}}}]}'])
def test_garbage_filters_are_400s_never_500s(sqlite_client, raw):  # noqa: ANN001
    response = sqlite_client.get("/panosc/api/Datasets?filter=" + raw)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["statusCode"] == 400


@pytest.mark.parametrize("raw", ["%7B%22where%22%3A%7B%22title%22%3A%22%FF%22%7D%7D",
                                 '{"where": {"title": {"like": "\\ud800%"}}}', '{"where": {"text": "\\u0000"}}'])
def test_odd_bytes_in_a_filter_are_answered_not_crashed(sqlite_client, raw):  # noqa: ANN001
    response = sqlite_client.get("/panosc/api/Datasets?filter=" + raw)
    assert response.status_code in (200, 400), response.text
    assert response.json() == [] or response.json()["error"]["statusCode"] == 400


def test_the_panosc_api_is_read_only_and_unknown_paths_are_panosc_404s(sqlite_client):  # noqa: ANN001
    for method in ("post", "put", "patch", "delete"):
        response = getattr(sqlite_client, method)("/panosc/api/Datasets")
        assert response.status_code == 404
        assert response.json()["error"]["message"] == f"There is no method to handle {method.upper()} /Datasets"
    response = sqlite_client.get("/panosc/api/Datasets/x/y/z")
    assert response.status_code == 404 and response.json()["error"]["code"] == "MODEL_NOT_FOUND"
    response = sqlite_client.get("/panosc/api/Spaceships")
    assert response.json() == {"error": {"statusCode": 404, "name": "Error",
                                         "message": "There is no method to handle GET /Spaceships"}}
