"""The reference fixture and converter produce what the real PaNOSC Search API serves, and what that API does
with the filters the broker sends (observed here, so the broker's conformance tests can rely on them)."""
from __future__ import annotations

import json
from urllib.parse import quote

import pytest
import requests

from tests.panosc_reference import ReferenceServer, reference_factory, to_reference_db  # noqa: F401 - fixture

pytestmark = pytest.mark.slow  # the PaNOSC reference Search API (Node)

# What the reference answers to a relation its model does not define (Dataset has no "documents"): a bare 500.
# The reason only reaches the server's log, as: Relation "documents" is not defined for Dataset model
UNDEFINED_RELATION_STATUS = 500
UNDEFINED_RELATION_BODY = {"error": {"statusCode": 500, "message": "Internal Server Error"}}
UNDEFINED_RELATION_LOG = 'Relation "documents" is not defined for Dataset model'

PID_A = "20.500.12269/ref-a"
PID_B = "20.500.12269/ref-b"
LOKI = {"pid": "20.500.12269/inst-loki", "name": "LoKI", "facility": "ESS"}
PANET = "http://purl.org/pan-science/PaNET/"
SAXS = {"pid": "tech/saxs", "name": "small-angle x-ray scattering", "panetId": f"{PANET}PaNET01189"}
XAS = {"pid": "tech/xas", "name": "x-ray absorption", "panetId": f"{PANET}PaNET01227"}
PROPOSAL = {"pid": "10.5072/prop-1", "type": "proposal", "title": "Copper under pressure", "isPublic": True,
            "summary": "Phase transitions", "keywords": ["copper", "pressure"], "startDate": "2020-02-01T00:00:00.000Z",
            "members": [{"role": "principal investigator",
                         "person": {"id": "person-1", "fullName": "Ada Lovelace", "orcid": "0000-0002-1825-0097"},
                         "affiliation": {"name": "ESS", "city": "Lund", "country": "Sweden"}},
                        {"role": "co-proposer", "person": {"id": "person-2", "fullName": "Lise Meitner"}}]}
PUBLICATION = {"pid": "10.5072/pub-1", "type": "publication", "title": "Copper results", "isPublic": True,
               "doi": "10.5072/pub-1"}
DATASET_A = {"pid": PID_A, "title": "Beta copper run", "isPublic": True, "creationDate": "2020-05-05T15:01:02.341Z",
             "size": 2048, "instrument": LOKI, "techniques": [SAXS, XAS],
             "parameters": [{"name": "photon_energy", "value": 12.5, "unit": "keV"},
                            {"name": "sample_state", "value": "solid", "unit": ""}],
             "files": [{"name": "run-a.h5", "path": "/raw/a", "size": 2048}],
             "samples": [{"pid": "sample/cu", "name": "copper cylinder", "description": "solid Cu"}],
             "documents": [PROPOSAL]}
DATASET_B = {"pid": PID_B, "title": "Alpha copper run", "isPublic": True, "creationDate": "2020-05-06T15:01:02.341Z",
             "instrument": LOKI, "techniques": [SAXS],
             "parameters": [{"name": "photon_energy", "value": 7, "unit": "keV"}],
             "files": [], "samples": [{"pid": "sample/cu", "name": "copper cylinder", "description": "solid Cu"}],
             "documents": [PROPOSAL, PUBLICATION]}
DREAM = {"pid": "20.500.12269/inst-dream", "name": "DREAM", "facility": "ESS"}
FILLERS = [{"pid": f"10.5072/filler/{n:03d}", "title": f"Zeta filler {n:03d}", "isPublic": True,
            "creationDate": "2021-01-01T00:00:00.000Z", "instrument": DREAM} for n in range(148)]
RECORDS = [DATASET_A, DATASET_B, *FILLERS]


@pytest.fixture(scope="module")
def reference(reference_factory) -> ReferenceServer:  # noqa: ANN001, F811
    return reference_factory(to_reference_db(RECORDS), "smoke")


def find(server: ReferenceServer, model: str, filter_: dict | None = None) -> requests.Response:
    params = {"filter": json.dumps(filter_)} if filter_ is not None else None
    return requests.get(f"{server.api}/{model}", params=params, timeout=10)


def test_converter_stores_shared_entities_once_with_reference_ids() -> None:
    db = to_reference_db([DATASET_A, DATASET_B])
    models = {name: {key: json.loads(value) for key, value in rows.items()} for name, rows in db["models"].items()}
    assert set(models["Instrument"]) == {LOKI["pid"]} and set(models["Sample"]) == {"sample/cu"}
    assert set(models["Technique"]) == {"tech/saxs", "tech/xas"} and len(models["DatasetTechnique"]) == 3
    assert set(models["Document"]) == {PROPOSAL["pid"], PUBLICATION["pid"]} and len(models["DocumentDataset"]) == 3
    assert models["Dataset"][PID_A]["instrumentId"] == LOKI["pid"] and "instrument" not in models["Dataset"][PID_A]
    assert models["Member"]["1"] == {"id": 1, "role": "principal investigator", "documentId": PROPOSAL["pid"],
                                     "personId": "person-1", "affiliationId": 1}
    assert "affiliationId" not in models["Member"]["2"] and len(models["Member"]) == 2
    assert models["Parameter"]["3"] == {"id": 3, "name": "photon_energy", "value": 7, "unit": "keV", "datasetId": PID_B}
    assert db["ids"]["Parameter"] == 4 and db["ids"]["Dataset"] == 3 and db["ids"]["File"] == 2
    assert db["ids"]["ACL"] == 1 and db["models"]["ACL"] == {}  # LoopBack's access checks need them present
    assert all(isinstance(value, str) for rows in db["models"].values() for value in rows.values())


def test_converter_refuses_the_same_pid_with_different_contents() -> None:
    renamed = {**DATASET_B, "techniques": [{**SAXS, "name": "SAXS"}]}
    with pytest.raises(ValueError, match="Technique 'tech/saxs'"):
        to_reference_db([DATASET_A, renamed])
    with pytest.raises(ValueError, match="given twice"):
        to_reference_db([DATASET_A, DATASET_A])


def test_dataset_serves_its_relations_through_include(reference: ReferenceServer) -> None:
    response = find(reference, "Datasets", {"where": {"pid": PID_A}, "include": [
        {"relation": "techniques"}, {"relation": "instrument"}, {"relation": "parameters"}, {"relation": "files"},
        {"relation": "samples"}]})
    assert response.status_code == 200
    [dataset] = response.json()
    assert dataset["title"] == "Beta copper run" and dataset["size"] == 2048 and dataset["score"] == 0
    assert dataset["creationDate"] == "2020-05-05T15:01:02.341Z" and dataset["instrumentId"] == LOKI["pid"]
    assert dataset["instrument"] == LOKI
    assert sorted(dataset["techniques"], key=lambda t: t["pid"]) == [SAXS, XAS]
    assert [(p["name"], p["value"], p["unit"]) for p in dataset["parameters"]] == [
        ("photon_energy", 12.5, "keV"), ("sample_state", "solid", "")]
    assert [(f["name"], f["path"], f["size"]) for f in dataset["files"]] == [("run-a.h5", "/raw/a", 2048)]
    assert dataset["samples"] == [{"pid": "sample/cu", "name": "copper cylinder", "description": "solid Cu"}]


def test_document_lists_its_datasets(reference: ReferenceServer) -> None:
    response = find(reference, "Documents", {"include": [{"relation": "datasets"}]})
    assert response.status_code == 200
    datasets = {doc["pid"]: sorted(d["pid"] for d in doc["datasets"]) for doc in response.json()}
    assert datasets == {PROPOSAL["pid"]: [PID_A, PID_B], PUBLICATION["pid"]: [PID_B]}


def test_members_include_their_person_and_affiliation(reference: ReferenceServer) -> None:
    response = find(reference, "Documents", {"where": {"pid": PROPOSAL["pid"]}, "include": [
        {"relation": "members", "scope": {"include": [{"relation": "person"}, {"relation": "affiliation"}]}}]})
    [document] = response.json()
    assert document["keywords"] == ["copper", "pressure"] and document["startDate"] == "2020-02-01T00:00:00.000Z"
    members = {m["role"]: m for m in document["members"]}
    assert members["principal investigator"]["person"] == {"id": "person-1", "fullName": "Ada Lovelace",
                                                           "orcid": "0000-0002-1825-0097"}
    assert members["principal investigator"]["affiliation"] == {"id": 1, "name": "ESS", "city": "Lund",
                                                                "country": "Sweden"}
    assert members["co-proposer"]["person"]["fullName"] == "Lise Meitner"
    assert "affiliation" not in members["co-proposer"]


def test_count_counts_every_dataset_and_honours_where(reference: ReferenceServer) -> None:
    assert requests.get(f"{reference.api}/Datasets/count", timeout=10).json() == {"count": 150}
    where = {"where": json.dumps({"instrumentId": LOKI["pid"]})}
    assert requests.get(f"{reference.api}/Datasets/count", params=where, timeout=10).json() == {"count": 2}
    assert requests.get(f"{reference.api}/Documents/count", timeout=10).json() == {"count": 2}


def test_pid_with_slash_is_found_by_its_url_encoded_id(reference: ReferenceServer) -> None:
    response = requests.get(f"{reference.api}/Datasets/{quote(PID_A, safe='')}", timeout=10)
    assert response.status_code == 200 and response.json()["pid"] == PID_A
    assert "score" not in response.json()  # findById does not pass through the Score mixin


def test_unknown_id_is_a_panosc_404(reference: ReferenceServer) -> None:
    response = requests.get(f"{reference.api}/Datasets/{quote('10.5072/none', safe='')}", timeout=10)
    assert response.status_code == 404
    assert response.json() == {"error": {"statusCode": 404, "name": "Error", "code": "MODEL_NOT_FOUND",
                                         "message": 'Unknown "Dataset" id "10.5072/none".'}}


def test_include_of_a_relation_datasets_lack_is_a_bare_500(reference: ReferenceServer) -> None:
    response = find(reference, "Datasets", {"include": [{"relation": "documents"}]})
    assert response.status_code == UNDEFINED_RELATION_STATUS
    assert response.json() == UNDEFINED_RELATION_BODY
    assert UNDEFINED_RELATION_LOG in reference.log()


def test_query_key_is_ignored_and_scores_are_zero(reference: ReferenceServer) -> None:
    response = find(reference, "Datasets", {"query": "Alpha"})
    assert response.status_code == 200 and len(response.json()) == 150
    assert {d["score"] for d in response.json()} == {0}
    # full text goes in where.text instead: a case-insensitive substring match on the model's text fields
    assert [d["pid"] for d in find(reference, "Datasets", {"where": {"text": "alpha"}}).json()] == [PID_B]


def test_technique_scope_on_panet_id_keeps_only_matching_datasets(reference: ReferenceServer) -> None:
    response = find(reference, "Datasets", {"include": [
        {"relation": "techniques", "scope": {"where": {"panetId": XAS["panetId"]}}}]})
    assert [(d["pid"], d["techniques"]) for d in response.json()] == [(PID_A, [XAS])]


def test_parameter_scope_with_between_filters_datasets_and_includes_all_their_parameters(
        reference: ReferenceServer) -> None:
    response = find(reference, "Datasets", {"include": [{"relation": "parameters", "scope": {
        "where": {"and": [{"name": "photon_energy"}, {"value": {"between": [10, 15]}}, {"unit": "keV"}]}}}]})
    assert [d["pid"] for d in response.json()] == [PID_A]
    assert [p["name"] for p in response.json()[0]["parameters"]] == ["photon_energy", "sample_state"]


def test_fields_limits_properties_but_score_is_added(reference: ReferenceServer) -> None:
    response = find(reference, "Datasets", {"fields": ["pid", "title"], "where": {"pid": PID_B}})
    assert response.json() == [{"pid": PID_B, "title": "Alpha copper run", "score": 0}]


def test_order_by_title(reference: ReferenceServer) -> None:
    ascending = find(reference, "Datasets", {"order": "title ASC", "limit": 3}).json()
    assert [d["title"] for d in ascending] == ["Alpha copper run", "Beta copper run", "Zeta filler 000"]
    descending = find(reference, "Datasets", {"order": "title DESC", "limit": 1}).json()
    assert [d["title"] for d in descending] == ["Zeta filler 147"]


def test_filter_without_limit_returns_every_dataset(reference: ReferenceServer) -> None:
    assert len(find(reference, "Datasets", {"where": {"isPublic": True}}).json()) == 150
    assert len(find(reference, "Datasets").json()) == 150


def test_cors_preflight_allows_any_origin_with_credentials(reference: ReferenceServer) -> None:
    origin = "http://127.0.0.1:9"
    response = requests.options(f"{reference.api}/Datasets", timeout=10,
                                headers={"Origin": origin, "Access-Control-Request-Method": "GET"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert response.headers["Access-Control-Allow-Methods"] == "GET,HEAD,PUT,PATCH,POST,DELETE"
    assert response.headers["Access-Control-Max-Age"] == "86400"


def test_dataset_files_endpoint_is_served(reference: ReferenceServer) -> None:
    response = requests.get(f"{reference.api}/Datasets/{quote(PID_A, safe='')}/files", timeout=10)
    assert response.status_code == 200
    assert response.json() == [{"id": 1, "name": "run-a.h5", "path": "/raw/a", "size": 2048, "datasetId": PID_A}]
