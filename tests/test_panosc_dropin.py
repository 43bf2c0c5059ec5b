"""``/panosc/api`` as a drop-in for the real PaNOSC reference Search API: the same datasets are served by the
reference (started from ../shared/peers) and harvested from it into a broker, then every query of the
reference's documentation (doc/*example-queries.md, doc/api-calls.md) and of its own tests (test/*.test.js)
is asked of both. Status codes, result sets and record shapes must agree, except where the broker is
deliberately better (units, technique hierarchy, relevance) or refuses what it does not harvest; those
cases assert the broker's answer and are listed in DIFFERENCES."""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
import requests

from panbroker.app import build_broker, create_app
from broker.authz import Principal
from broker.registry_kinds import KINDS
from tests.conftest import make_settings
from tests.panosc_reference import ReferenceServer, reference_factory, to_reference_db  # noqa: F401 - fixture

pytestmark = pytest.mark.slow  # the PaNOSC reference Search API (Node)

ACTOR = Principal("test", admin=True)
PANET = "http://purl.org/pan-science/PaNET/"
LOKI = {"pid": "20.500.12269/0f98fcf2-7bd7-430e-ad20-d47031ca8f71", "name": "LoKI", "facility": "ESS"}
ODIN = {"pid": "20.500.12269/125e8172-d0f4-4547-98be-a9db903a6269", "name": "ODIN", "facility": "ESS"}
ESTIA = {"pid": "20.500.12269/07297dd4-557f-4ef6-974f-5c1eec610b9e", "name": "ESTIA", "facility": "ESS"}
DREAM = {"pid": "20.500.12269/d3dd2880-637a-40b5-9815-990453817f0e", "name": "DREAM", "facility": "ESS"}
D22 = {"pid": "ill/instrument/d22", "name": "D22", "facility": "ILL"}
SANS = {"pid": "20.500.12269/panosc-tech1", "name": "small-angle neutron scattering", "panetId": f"{PANET}PaNET01189"}
XAS = {"pid": "20.500.12269/panosc-tech2", "name": "x-ray absorption", "panetId": f"{PANET}PaNET01227"}
COPPER = {"pid": "20.500.12269/panosc-sample1", "name": "solid copper cylinder", "description": "Cu, 2 mm"}
IRON = {"pid": "20.500.12269/panosc-sample2", "name": "iron powder"}
JOHN = {"id": "panosc-person1", "fullName": "John Smith"}
JAMES = {"id": "panosc-person2", "fullName": "James Chadwick", "orcid": "0000-0002-1825-0097"}
ESS = {"name": "ESS", "address": "Odarslövsvägen 113", "city": "Lund", "country": "Sweden"}
PUBLICATION = {"pid": "10.5072/panosc-document1", "isPublic": True, "type": "publication",
               "title": "PaNOSC Test Publication", "doi": "10.5072/panosc-document1", "summary": "Copper studies",
               "keywords": ["copper"], "releaseDate": "2021-01-01T00:00:00.000Z", "license": "CC-BY-4.0",
               "members": [{"role": "principal investigator", "person": JOHN, "affiliation": ESS},
                           {"role": "owner", "person": JAMES, "affiliation": ESS}]}
PROPOSAL = {"pid": "10.5072/panosc-document2", "isPublic": True, "type": "proposal", "title": "PaNOSC Test Proposal",
            "summary": "Absorption of copper", "startDate": "2020-01-01T00:00:00.000Z",
            "endDate": "2020-02-01T00:00:00.000Z",
            "members": [{"role": "principal investigator", "person": JAMES, "affiliation": ESS},
                        {"role": "owner", "person": JOHN, "affiliation": ESS}]}
IRON_PROPOSAL = {"pid": "10.5072/panosc-document3", "isPublic": True, "type": "proposal", "title": "Iron under field",
                 "members": [{"role": "principal investigator", "person": JOHN}]}


def pid(n: int) -> str:
    return f"20.500.12269/panosc-dataset{n}"


def dataset(n: int, title: str, created: str = "2020-05-05T15:01:02.341Z", **relations: Any) -> dict:
    return {"pid": pid(n), "title": title, "isPublic": True, "creationDate": created, **relations}


# The reference's own example data (doc/*.md answers), and two datasets holding the same quantities in other
# units and names (keV, K, µm; sample_temperature): the broker converts, the reference compares raw numbers.
RECORDS = [
    dataset(1, "PaNOSC Test Dataset 1", size=1000, instrument=LOKI, techniques=[SANS], samples=[COPPER],
            parameters=[{"name": "chemical_formula", "value": "Cu", "unit": ""},
                        {"name": "sample_state", "value": "solid", "unit": ""}],
            files=[{"name": "panosc-file1.hdf", "path": "/data/1", "size": 1000}], documents=[PUBLICATION]),
    dataset(2, "PaNOSC Test Dataset 2", size=2000, instrument=ODIN, techniques=[SANS], samples=[COPPER],
            parameters=[{"name": "photon_energy", "value": 930, "unit": "eV"}],
            files=[{"name": "panosc-file2.hdf", "path": "/data/2", "size": 2000}], documents=[PUBLICATION]),
    dataset(3, "PaNOSC Test Dataset 3", size=3000, instrument=ESTIA, techniques=[XAS], samples=[COPPER],
            parameters=[{"name": "temperature", "value": 20, "unit": "celsius"}],
            files=[{"name": "panosc-file3.hdf", "path": "/data/3", "size": 3000},
                   {"name": "panosc-file3b.hdf", "path": "/data/3b", "size": 30}], documents=[PROPOSAL]),
    dataset(4, "PaNOSC Test Dataset 4", size=4000, instrument=DREAM, techniques=[XAS], samples=[COPPER],
            parameters=[{"name": "wavelength", "value": 1064, "unit": "nm"}],
            files=[{"name": "panosc-file4.hdf", "path": "/data/4", "size": 4000}], documents=[PROPOSAL]),
    dataset(5, "Copper edge scan", "2021-03-01T08:00:00.000Z", size=500, instrument=LOKI, techniques=[XAS],
            samples=[IRON], parameters=[{"name": "photon_energy", "value": 0.95, "unit": "keV"},
                                        {"name": "sample_temperature", "value": 300, "unit": "K"}],
            files=[{"name": "edge.nxs", "path": "/data/5", "size": 500}], documents=[IRON_PROPOSAL]),
    dataset(6, "Iron wavelength series", "2019-11-11T11:11:11.000Z", instrument=D22, techniques=[SANS],
            parameters=[{"name": "wavelength", "value": 1.05, "unit": "um"},
                        {"name": "temperature", "value": 400, "unit": "K"}],
            files=[], documents=[IRON_PROPOSAL]),
]
ALL = {pid(n) for n in range(1, 7)}


def reference_db() -> dict:
    db = to_reference_db(RECORDS)
    # a Document's own parameter, as in the reference's example data (the converter writes datasets' only)
    db["models"]["Parameter"][str(db["ids"]["Parameter"])] = json.dumps(
        {"id": db["ids"]["Parameter"], "name": "wavelength", "value": 1064, "unit": "nm",
         "documentId": PUBLICATION["pid"]})
    db["ids"]["Parameter"] += 1
    return db


@pytest.fixture(scope="module")
def reference(reference_factory) -> ReferenceServer:  # noqa: ANN001, F811
    return reference_factory(reference_db(), "dropin")


@pytest.fixture(scope="module")
def client(reference: ReferenceServer, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    broker = build_broker(make_settings(tmp_path_factory.mktemp("dropin-broker")))
    broker.registry.create(ACTOR, KINDS.facility, {"id": "ess", "name": "ESS", "country": "SE"})
    broker.registry.create(ACTOR, KINDS.search_endpoint, {"id": "ess-search", "facility_id": "ess",
                                                          "kind": "panosc-search-api", "base_url": reference.base_url})
    job = broker.harvest.run("ess-search")
    assert job["state"] == "succeeded" and job["imported"] == len(RECORDS), job
    yield create_app(broker=broker).test_client()
    broker.index.close()
    broker.store.engine.dispose()


def encode(params: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}


def ask(reference: ReferenceServer, client, path: str, **params: Any) -> tuple[Any, Any]:  # noqa: ANN001
    """The reference's and the broker's answers to the same call."""
    theirs = requests.get(reference.api + path, params=encode(params), timeout=10)
    ours = client.get("/panosc/api" + path, params=encode(params))
    return theirs, ours


def pids(response) -> set[str]:  # noqa: ANN001
    body = response.json()
    return {r["pid"] for r in (body if isinstance(body, list) else [body])}


def shape(value: Any) -> Any:
    """Keys of records, nested relations' keys too (the union over a list's items)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        merged: Any = {}
        for item in value:
            merged = _union(merged, shape(item))
        return [merged]
    return type(value).__name__ if not isinstance(value, list) else "list"


def _union(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        return {key: _union(a.get(key), b.get(key)) if key in a and key in b else a.get(key, b.get(key))
                for key in {**a, **b}}
    if isinstance(a, list) and isinstance(b, list) and a and b:
        return [_union(a[0], b[0])]
    return a if a not in (None, "list") else b


def keys(value: Any) -> Any:
    """``shape`` with leaf types left out: the same keys are what clients rely on."""
    if isinstance(value, dict):
        return {key: keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [keys(item) for item in value]
    return None


def same_shape(theirs, ours) -> None:  # noqa: ANN001
    assert keys(shape(ours.json())) == keys(shape(theirs.json()))


def same(theirs, ours) -> None:  # noqa: ANN001
    """Same status, same pids, same record shapes."""
    assert ours.status_code == theirs.status_code, (theirs.text, ours.text)
    assert pids(ours) == pids(theirs)
    same_shape(theirs, ours)


def scores_valid(response) -> None:  # noqa: ANN001
    """Every score strictly inside (0, 1): what the PaNOSC aggregator keeps with its default settings."""
    assert all(0 < record["score"] < 1 for record in response.json())


def technique(name: str) -> dict:
    return {"include": [{"relation": "techniques", "scope": {"where": {"name": name}}}]}


def parameter(*conditions: dict) -> dict:
    return {"relation": "parameters", "scope": {"where": {"and": list(conditions)}}}


PHOTON = {"include": [parameter({"name": "photon_energy"}, {"value": {"between": [880, 990]}}, {"unit": "eV"})]}
SOLID_OR_COPPER = {"include": [{"relation": "parameters", "scope": {"where": {"or": [
    {"and": [{"name": "sample_state"}, {"value": "solid"}]}, {"and": [{"name": "chemical_formula"}, {"value": "Cu"}]}]}}}]}
BELOW_80C = {"include": [parameter({"name": "temperature"}, {"value": {"lt": 80}}, {"unit": "celsius"})]}
FILE1 = {"include": [{"relation": "files", "scope": {"where": {"text": "file1"}}}]}
WAVELENGTH = parameter({"name": "wavelength"}, {"value": {"between": [1000, 1100]}}, {"unit": "nm"})


# -- doc/dataset-example-queries.md and test/dataset.test.js --------------------------------------

def test_datasets_without_filter(reference, client) -> None:  # noqa: ANN001
    theirs, ours = ask(reference, client, "/Datasets")
    same(theirs, ours)
    assert pids(ours) == ALL
    scores_valid(ours)
    assert {r["score"] for r in theirs.json()} == {0}  # which the aggregator would drop


def test_datasets_acquired_using_x_ray_absorption(reference, client) -> None:  # noqa: ANN001
    theirs, ours = ask(reference, client, "/Datasets", filter=technique("x-ray absorption"))
    same(theirs, ours)
    assert pids(ours) == {pid(3), pid(4), pid(5)}
    assert all(t["name"] == "x-ray absorption" and t["pid"] == XAS["pid"] and t["panetId"] == XAS["panetId"]
               for record in ours.json() for t in record["techniques"])


def test_photon_energy_range_is_found_in_any_unit(reference, client) -> None:  # noqa: ANN001
    theirs, ours = ask(reference, client, "/Datasets", filter=PHOTON)
    assert theirs.status_code == ours.status_code == 200
    assert pids(theirs) == {pid(2)}  # the reference compares 0.95 (keV) with 880..990 (eV)
    assert pids(ours) == {pid(2), pid(5)}  # DIFFERENCE: 0.95 keV is 950 eV
    same_shape(theirs, ours)
    by_pid = {r["pid"]: r for r in ours.json()}
    assert by_pid[pid(2)]["parameters"] == [{"id": 3, "name": "photon_energy", "value": 930, "unit": "eV",
                                             "datasetId": pid(2)}]


def test_solid_sample_or_copper(reference, client) -> None:  # noqa: ANN001
    theirs, ours = ask(reference, client, "/Datasets", filter=SOLID_OR_COPPER)
    same(theirs, ours)
    assert pids(ours) == {pid(1)}
    assert [p["name"] for p in ours.json()[0]["parameters"]] == ["chemical_formula", "sample_state"]


def test_temperature_below_80_celsius_in_any_unit_and_name(reference, client) -> None:  # noqa: ANN001
    theirs, ours = ask(reference, client, "/Datasets", filter=BELOW_80C)
    assert theirs.status_code == ours.status_code == 200
    assert pids(theirs) == {pid(3)}
    # DIFFERENCE: 300 K (26.85 °C) under the alias sample_temperature; 400 K is not below 80 °C
    assert pids(ours) == {pid(3), pid(5)}
    same_shape(theirs, ours)


def test_files_matching_a_string(reference, client) -> None:  # noqa: ANN001
    theirs, ours = ask(reference, client, "/Datasets", filter=FILE1)
    same(theirs, ours)
    assert pids(ours) == {pid(1)} and ours.json() == [{**r, "score": 0.01} for r in theirs.json()]


# -- doc/api-calls.md and the GET /{id} tests ----------------------------------------------------

def test_get_dataset_and_its_files(reference, client) -> None:  # noqa: ANN001
    for path in (f"/Datasets/{quote(pid(3), safe='')}", f"/Datasets/{quote(pid(3), safe='')}/files"):
        theirs, ours = ask(reference, client, path)
        assert ours.status_code == theirs.status_code == 200
        assert ours.json() == theirs.json()
    theirs, ours = ask(reference, client, f"/Datasets/{quote(pid(1), safe='')}",
                       filter={"include": ["techniques", "instrument", "parameters", "files", "samples"]})
    assert ours.json() == theirs.json()  # every relation as the reference shows it
    for where in ({}, {"name": {"like": "panosc-file3b.hdf"}}, {"size": {"gt": 100}}):
        theirs, ours = ask(reference, client, f"/Datasets/{quote(pid(3), safe='')}/files/count", where=where)
        assert ours.json() == theirs.json(), where
    theirs, ours = ask(reference, client, f"/Datasets/{quote(pid(3), safe='')}/files",
                       filter={"where": {"size": {"lt": 100}}, "fields": ["name"]})
    assert ours.json() == theirs.json() == [{"name": "panosc-file3b.hdf"}]


def test_unknown_ids_are_loopback_404s(reference, client) -> None:  # noqa: ANN001
    for path in ("/Datasets/10.5072%2Fnone", "/Datasets/10.5072%2Fnone/files", "/Datasets/10.5072%2Fnone/files/count",
                 "/Documents/none", "/Instruments/none", "/Nothing", "/Datasets/10.5072%2Fnone/parameters/x/y"):
        theirs, ours = ask(reference, client, path)
        assert ours.status_code == theirs.status_code == 404, path
        if "parameters" not in path:  # LoopBack's routing wording depends on its method table
            assert ours.json() == theirs.json(), path
        else:
            assert ours.json()["error"]["statusCode"] == 404


def test_search_and_count_datasets_agree(reference, client) -> None:  # noqa: ANN001
    for where in ({}, {"isPublic": True}, {"size": {"gt": 1500}}, {"size": {"between": [500, 2000]}},
                  {"size": {"lt": 1000}}, {"or": [{"size": {"gt": 3500}}, {"pid": pid(1)}]},
                  {"instrumentId": LOKI["pid"]}, {"creationDate": {"gt": "2020-05-06T00:00:00.000Z"}},
                  {"and": [{"isPublic": True}, {"pid": {"inq": [pid(1), pid(6)]}}]}, {"title": "PaNOSC Test Dataset 4"}):
        theirs, ours = ask(reference, client, "/Datasets", filter={"where": where})
        same(theirs, ours)
        theirs_count, ours_count = ask(reference, client, "/Datasets/count", where=where)
        assert ours_count.json() == theirs_count.json() == {"count": len(ours.json())}, where


def test_get_search_and_count_documents(reference, client) -> None:  # noqa: ANN001
    theirs, ours = ask(reference, client, "/Documents")
    same(theirs, ours)
    assert pids(ours) == {PUBLICATION["pid"], PROPOSAL["pid"], IRON_PROPOSAL["pid"]}
    scores_valid(ours)
    theirs, ours = ask(reference, client, "/Documents/" + quote(PUBLICATION["pid"], safe=""),
                       filter={"include": ["datasets"]})
    assert ours.status_code == theirs.status_code == 200
    assert ours.json() == theirs.json()
    for where in ({}, {"type": "proposal"}, {"releaseDate": {"gt": "2020-06-01T00:00:00.000Z"}}):
        theirs, ours = ask(reference, client, "/Documents/count", where=where)
        assert ours.json() == theirs.json(), where
    for skip in (0, 1, 2):  # page by page, each document with all its datasets
        theirs, ours = ask(reference, client, "/Documents", filter={"skip": skip, "limit": 1, "include": ["datasets"]})
        same(theirs, ours)
        assert [sorted(d["pid"] for d in x["datasets"]) for x in ours.json()] == [
            sorted(d["pid"] for d in x["datasets"]) for x in theirs.json()]
    theirs, ours = ask(reference, client, "/Documents", filter={"where": {"text": "copper"}})
    same(theirs, ours)
    assert pids(ours) == {PUBLICATION["pid"], PROPOSAL["pid"]}  # title or summary, as the reference documents
    theirs, ours = ask(reference, client, "/Documents/count", where={"text": "copper"})
    # DIFFERENCE: the reference's count does not apply text (0 while its find returns 2); the broker's agrees
    assert theirs.json() == {"count": 0} and ours.json() == {"count": 2}


def test_get_search_and_count_instruments(reference, client) -> None:  # noqa: ANN001
    theirs, ours = ask(reference, client, "/Instruments")
    same(theirs, ours)
    assert len(ours.json()) == 5
    theirs, ours = ask(reference, client, "/Instruments/" + quote(LOKI["pid"], safe=""))
    assert ours.json() == theirs.json() == LOKI
    for where in ({}, {"facility": "ESS"}, {"name": {"inq": ["LoKI", "D22"]}}):
        theirs, ours = ask(reference, client, "/Instruments/count", where=where)
        assert ours.json() == theirs.json(), where


# -- doc/instrument-example-queries.md and test/instrument.test.js --------------------------------

def test_instruments_by_name(reference, client) -> None:  # noqa: ANN001
    theirs, ours = ask(reference, client, "/Instruments", filter={"where": {"name": "LoKI"}})
    same(theirs, ours)
    assert [{k: v for k, v in r.items() if k != "score"} for r in ours.json()] == [LOKI]


def test_instruments_at_a_facility_with_pagination(reference, client) -> None:  # noqa: ANN001
    pages = []
    for skip in (0, 3):
        theirs, ours = ask(reference, client, "/Instruments", filter={"where": {"facility": "ESS"}, "skip": skip,
                                                                      "limit": 3})
        assert [r["pid"] for r in ours.json()] == [r["pid"] for r in theirs.json()]
        same_shape(theirs, ours)
        pages.append(ours.json())
    assert [len(p) for p in pages] == [3, 1]
    scores_valid(ours)


# -- doc/document-example-queries.md and test/document.test.js ------------------------------------

def test_documents_of_type_proposal_with_a_principal_investigator(reference, client) -> None:  # noqa: ANN001
    flt = {"where": {"type": "proposal"}, "include": [{"relation": "datasets"}, {"relation": "members", "scope": {
        "where": {"role": "principal investigator"},
        "include": [{"relation": "person", "scope": {"where": {"fullName": "James Chadwick"}}}]}}]}
    theirs, ours = ask(reference, client, "/Documents", filter=flt)
    assert theirs.status_code == ours.status_code == 200
    assert pids(ours) == pids(theirs) == {PROPOSAL["pid"]}
    assert {d["pid"] for d in ours.json()[0]["datasets"]} == {pid(3), pid(4)}
    # the harvest keeps a member's role, the person's name and ORCID and the affiliation's name, not LoopBack's ids
    [member] = ours.json()[0]["members"]
    assert member == {"role": "principal investigator", "documentId": PROPOSAL["pid"],
                      "person": {"fullName": "James Chadwick", "orcid": JAMES["orcid"]}}
    [theirs_member] = theirs.json()[0]["members"]
    assert {k: v for k, v in theirs_member.items() if k not in ("id", "personId", "affiliationId")} == {
        **member, "person": JAMES}  # the same member, less LoopBack's ids (the person's id among them)
    flt["include"][1]["scope"]["include"].append({"relation": "affiliation"})
    theirs, ours = ask(reference, client, "/Documents", filter={**flt, "where": {}})
    assert pids(ours) == pids(theirs) == {PROPOSAL["pid"]}
    assert ours.json()[0]["members"][0]["affiliation"] == {"name": "ESS"}
    unscoped = {"include": [{"relation": "members", "scope": {"include": ["person", "affiliation"]}}]}
    theirs, ours = ask(reference, client, "/Documents", filter=unscoped)
    assert pids(ours) == pids(theirs) == {PUBLICATION["pid"], PROPOSAL["pid"], IRON_PROPOSAL["pid"]}
    assert {m["person"]["fullName"] for d in ours.json() for m in d["members"]} == {"John Smith", "James Chadwick"}


def test_documents_with_their_own_parameters(reference, client) -> None:  # noqa: ANN001
    theirs, ours = ask(reference, client, "/Documents", filter={"include": [WAVELENGTH]})
    assert theirs.status_code == 200 and pids(theirs) == {PUBLICATION["pid"]}
    # DIFFERENCE: documents' own parameters are not harvested: refused, naming the datasets' form
    assert ours.status_code == 400 and '"relation": "datasets"' in ours.json()["error"]["message"]


def test_documents_containing_datasets_with_a_wavelength(reference, client) -> None:  # noqa: ANN001
    flt = {"include": [{"relation": "datasets", "scope": {"include": [WAVELENGTH]}}]}
    theirs, ours = ask(reference, client, "/Documents", filter=flt)
    assert theirs.status_code == ours.status_code == 200
    assert pids(theirs) == {PROPOSAL["pid"]}
    assert pids(ours) == {PROPOSAL["pid"], IRON_PROPOSAL["pid"]}  # DIFFERENCE: 1.05 µm is 1050 nm
    same_shape(theirs, ours)
    datasets = {d["pid"]: {x["pid"] for x in d["datasets"]} for d in ours.json()}
    assert datasets == {PROPOSAL["pid"]: {pid(4)}, IRON_PROPOSAL["pid"]: {pid(6)}}


def test_documents_investigating_a_sample_with_a_technique(reference, client) -> None:  # noqa: ANN001
    flt = {"include": [{"relation": "datasets", "scope": {"include": [
        {"relation": "samples", "scope": {"where": {"name": "solid copper cylinder"}}},
        {"relation": "techniques", "scope": {"where": {"name": "x-ray absorption"}}}]}}]}
    theirs, ours = ask(reference, client, "/Documents", filter=flt)
    same(theirs, ours)
    assert pids(ours) == {PROPOSAL["pid"]}
    assert {d["pid"] for d in ours.json()[0]["datasets"]} == {d["pid"] for d in theirs.json()[0]["datasets"]} == {
        pid(3), pid(4)}


def test_documents_with_datasets_having_a_file(reference, client) -> None:  # noqa: ANN001
    flt = {"include": [{"relation": "datasets", "scope": {"include": [FILE1["include"][0]]}}]}
    theirs, ours = ask(reference, client, "/Documents", filter=flt)
    same(theirs, ours)
    assert pids(ours) == {PUBLICATION["pid"]}
    assert [d["pid"] for d in ours.json()[0]["datasets"]] == [pid(1)]


# -- the reference's filter language beyond the examples ------------------------------------------

def test_fields_keep_the_score(reference, client) -> None:  # noqa: ANN001
    for fields in (["pid", "title"], {"pid": True, "size": True}, {"title": False, "creationDate": False}):
        theirs, ours = ask(reference, client, "/Datasets", filter={"fields": fields, "include": ["techniques"]})
        same(theirs, ours)
        assert all("score" in r for r in ours.json())


def test_order_by_title_pages_as_the_reference(reference, client) -> None:  # noqa: ANN001
    for order in ("title ASC", "title DESC", "size DESC", "pid DESC", "creationDate ASC"):
        for skip, limit in ((0, 2), (2, 3)):
            theirs, ours = ask(reference, client, "/Datasets", filter={"order": order, "skip": skip, "limit": limit,
                                                                        "where": {"size": {"gt": 0}}})
            assert [r["pid"] for r in ours.json()] == [r["pid"] for r in theirs.json()], (order, skip)


def test_scopes_on_samples_techniques_by_local_pid_and_instruments(reference, client) -> None:  # noqa: ANN001
    for include in ({"relation": "samples", "scope": {"where": {"name": "iron powder"}}},
                    {"relation": "samples", "scope": {"where": {"text": "copper"}}},
                    {"relation": "techniques", "scope": {"where": {"panetId": XAS["panetId"]}}},
                    {"relation": "instrument", "scope": {"where": {"facility": "ILL"}}},
                    {"relation": "instrument", "scope": {"where": {"name": "LoKI"}}},
                    {"relation": "files", "scope": {"where": {"size": {"gt": 2500}}}}):
        theirs, ours = ask(reference, client, "/Datasets", filter={"include": [include]})
        same(theirs, ours)
        assert ours.json(), include
    theirs, ours = ask(reference, client, "/Datasets", filter={"include": [
        {"relation": "techniques", "scope": {"where": {"pid": SANS["pid"]}}}]})
    assert theirs.status_code == ours.status_code == 200
    assert pids(theirs) == ALL  # the reference ignores a pid condition on techniques (every dataset comes back)
    assert pids(ours) == {pid(1), pid(2), pid(6)}  # DIFFERENCE: only the datasets of that technique
    same_shape(theirs, ours)


def test_query_ranks_with_scores_inside_0_and_1(reference, client) -> None:  # noqa: ANN001
    theirs, ours = ask(reference, client, "/Datasets", filter={"query": "copper edge", "limit": 10})
    assert len(theirs.json()) == 6 and {r["score"] for r in theirs.json()} == {0}  # the reference ignores query
    ranked = ours.json()
    assert ranked[0]["pid"] == pid(5)  # DIFFERENCE: relevance ("Copper edge scan")
    scores_valid(ours)
    assert ranked[0]["score"] == max(r["score"] for r in ranked) and ranked[0]["score"] > ranked[-1]["score"]


def test_a_filter_without_limit_is_never_cut_silently(reference, client, monkeypatch) -> None:  # noqa: ANN001
    from broker.search.panosc import compat as panosc_compat

    monkeypatch.setattr(panosc_compat, "NO_LIMIT_CEILING", 4)
    answer = client.get("/panosc/api/Datasets")
    assert answer.status_code == 400 and "limit" in answer.json()["error"]["message"]
    assert len(client.get("/panosc/api/Datasets", params=encode({"filter": {"limit": 4}})).json()) == 4
    page = client.get("/panosc/api/Datasets", params=encode({"filter": {"skip": 2}}))
    assert page.status_code == 200 and len(page.json()) == 4  # 6 - 2 fit under the ceiling
    small = client.get("/panosc/api/Datasets", params=encode({"filter": {"where": {"size": {"gt": 1500}}}}))
    assert small.status_code == 200 and len(small.json()) == 3


def test_cors_as_the_reference(reference, client) -> None:  # noqa: ANN001
    origin = "http://127.0.0.1:9"
    headers = {"Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-pan-mode"}
    theirs = requests.options(reference.api + "/Datasets", headers=headers, timeout=10)
    ours = client.options("/panosc/api/Datasets", headers=headers)
    assert ours.status_code == theirs.status_code == 204
    for name in ("Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods",
                 "Access-Control-Allow-Headers", "Access-Control-Max-Age", "Vary"):
        assert ours.headers[name] == theirs.headers[name], name
    theirs, ours = requests.get(reference.api + "/Datasets/count", headers={"Origin": origin}, timeout=10), \
        client.get("/panosc/api/Datasets/count", headers={"Origin": origin})
    assert ours.headers["Access-Control-Allow-Origin"] == theirs.headers["Access-Control-Allow-Origin"] == origin
    assert "Origin" in ours.headers["Vary"] and ours.headers["Access-Control-Allow-Credentials"] == "true"
    assert "access-control-allow-origin" not in client.get("/api/v1/health", headers={"Origin": origin}).headers


def test_live_answers_through_the_path_or_the_header(client) -> None:  # noqa: ANN001
    flt = encode({"filter": {**technique("x-ray absorption"), "limit": 10}})
    for response in (client.get("/panosc/live/api/Datasets", params=flt),
                     client.get("/panosc/api/Datasets", params=flt, headers={"X-PaN-Mode": "live"})):
        assert response.status_code == 200, response.text
        assert response.headers["X-PaN-Mode"] == "live"
        assert response.headers["X-PaN-Sources"] == "ess=ok" and response.headers["X-PaN-Partial"] == "false"
        assert pids(response) == {pid(3), pid(4), pid(5)}
        scores_valid(response)
    index = client.get("/panosc/api/Datasets", params=flt)
    assert index.headers["X-PaN-Mode"] == "index" and index.headers["X-PaN-Sources"] == "ess=index"
    live_count = client.get("/panosc/live/api/Datasets/count", params=encode({"where": {"isPublic": True}}))
    assert live_count.json() == {"count": 6} and live_count.headers["X-PaN-Mode"] == "live"
    refused = client.get("/panosc/live/api/Datasets", params=encode({"filter": {"where": {"size": {"gt": 1}}}}))
    assert refused.status_code == 400 and "/panosc/api" in refused.json()["error"]["message"]


def test_loopback_bracket_form_of_filters(reference, client) -> None:  # noqa: ANN001
    for query in (f"filter[where][pid]={pid(1)}", "filter[limit]=2", "filter[where][isPublic]=true&filter[limit]=1",
                  "filter[where][size][gt]=1500", f"filter[where][pid][inq][0]={pid(1)}&filter[where][pid][inq][1]={pid(2)}",
                  "filter[fields][pid]=true&filter[limit]=1", "filter[order]=title%20DESC&filter[limit]=1",
                  "filter[include][0][relation]=techniques&filter[include][0][scope][where][name]=x-ray%20absorption"):
        theirs = requests.get(f"{reference.api}/Datasets?{query}", timeout=10)
        ours = client.get(f"/panosc/api/Datasets?{query}")
        same(theirs, ours)
        assert [r["pid"] for r in ours.json()] == [r["pid"] for r in theirs.json()], query
    theirs = requests.get(f"{reference.api}/Datasets/count?where[size][gt]=1500", timeout=10)
    assert client.get("/panosc/api/Datasets/count?where[size][gt]=1500").json() == theirs.json() == {"count": 3}
    assert client.get("/panosc/api/Datasets?filter[where]]=1").status_code == 400
    theirs = requests.get(f"{reference.api}/Datasets?filter[include]=techniques&filter[limit]=1", timeout=10)
    ours = client.get("/panosc/api/Datasets?filter[include]=techniques&filter[limit]=1")
    assert theirs.status_code == 500 and ours.status_code == 200  # DIFFERENCE: the reference fails on this form
    assert ours.json()[0]["techniques"]
