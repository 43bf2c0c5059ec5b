"""SciCat and OAI-PMH harvesting: request shapes and mapping (``responses``), incremental OAI-PMH with
resumption tokens and deletions, and unsafe XML refused."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from broker.authz import Principal
from broker.registry_kinds import KINDS

ACTOR = Principal("test", admin=True)
SCICAT = "https://scicat.facility.example"
OAI = "https://oai.facility.example/oai"


def register(broker, kind, url):  # noqa: ANN001, ANN201
    broker.registry.create(ACTOR, KINDS.facility, {"id": "fac", "name": "Facility", "country": "CH"})
    broker.registry.create(ACTOR, KINDS.search_endpoint, {"id": "fac-src", "facility_id": "fac", "kind": kind,
                                                          "base_url": url, "connector_config": {"page_size": 2}
                                                          if kind == "scicat" else {}})


def scicat_dataset(n: int) -> dict:
    return {"pid": f"20.500.11935/{n:04d}", "datasetName": f"Tomography of sample {n}", "isPublished": True,
            "creationTime": "2023-05-01T10:00:00.000Z", "description": "TOMCAT scan", "keywords": ["bone"],
            "numberOfFiles": 12, "size": 10**9, "proposalId": "20230042", "creationLocation": "/PSI/SLS/TOMCAT",
            "techniques": [{"pid": "http://purl.org/pan-science/PaNET/PaNET01207", "name": "x-ray tomography"}],
            "scientificMetadata": {"sample_temperature": {"value": 20, "unit": "°C"}, "notes": "free text"},
            "ownerGroup": "p12345"}


@responses.activate
def test_scicat_public_datasets_are_paged_in_pid_order_and_mapped(sqlite_broker):  # noqa: ANN001
    pages = [[scicat_dataset(1), scicat_dataset(2)], [scicat_dataset(3)]]
    responses.get(f"{SCICAT}/api/v3/datasets", json=pages[0])
    responses.get(f"{SCICAT}/api/v3/datasets", json=pages[1])
    register(sqlite_broker, "scicat", SCICAT)
    job = sqlite_broker.harvest.run("fac-src")
    assert job["state"] == "succeeded" and job["imported"] == 3
    filters = [json.loads(parse_qs(urlsplit(c.request.url).query)["filter"][0]) for c in responses.calls]
    assert filters[0] == {"where": {"isPublished": True}, "limits": {"limit": 2, "skip": 0, "order": "pid:asc"}}
    assert filters[1]["limits"]["skip"] == 2
    dataset = sqlite_broker.index.get("20.500.11935/0002")
    assert dataset.instrument == "TOMCAT" and dataset.file_count == 12 and dataset.documents[0].pid == "20230042"
    temperature = next(p for p in dataset.parameters if p.name == "sample_temperature")
    assert temperature.si_value == pytest.approx(293.15)
    assert dataset.techniques[0].iri.endswith("PaNET01207")


def oai_page(records: str, token: str = "") -> str:
    resumption = f"<resumptionToken>{token}</resumptionToken>" if token else "<resumptionToken/>"
    return (f'<?xml version="1.0"?><OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
            f"<ListRecords>{records}{resumption}</ListRecords></OAI-PMH>")


def oai_record(identifier: str, title: str, deleted: bool = False) -> str:
    if deleted:
        return (f'<record><header status="deleted"><identifier>{identifier}</identifier>'
                "<datestamp>2024-02-01T00:00:00Z</datestamp></header></record>")
    return (f"<record><header><identifier>{identifier}</identifier><datestamp>2024-01-01T00:00:00Z</datestamp>"
            '</header><metadata><oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f"<dc:title>{title}</dc:title><dc:identifier>https://doi.org/10.1234/{identifier[-3:]}</dc:identifier>"
            "<dc:date>2022-03-04</dc:date><dc:subject>diffraction</dc:subject></oai_dc:dc></metadata></record>")


@responses.activate
def test_oai_pmh_follows_resumption_tokens_then_harvests_incrementally_with_deletions(sqlite_broker):  # noqa: ANN001
    responses.get(OAI, body=oai_page(oai_record("oai:f:001", "First") + oai_record("oai:f:002", "Second"), "t1"))
    responses.get(OAI, body=oai_page(oai_record("oai:f:003", "Third")))
    register(sqlite_broker, "oai-pmh", OAI)
    first = sqlite_broker.harvest.run("fac-src")
    assert first["imported"] == 3 and sqlite_broker.index.count() == 3
    queries = [parse_qs(urlsplit(c.request.url).query) for c in responses.calls]
    assert queries[0] == {"verb": ["ListRecords"], "metadataPrefix": ["oai_dc"]}
    assert queries[1] == {"verb": ["ListRecords"], "resumptionToken": ["t1"]}
    assert sqlite_broker.index.get("10.1234/002").pid == "oai:f:002"  # found by its DOI too

    responses.replace(responses.GET, OAI, body=oai_page(oai_record("oai:f:002", "Second, revised")
                                                        + oai_record("oai:f:001", "", deleted=True)))
    second = sqlite_broker.harvest.run("fac-src")
    since = parse_qs(urlsplit(responses.calls[-1].request.url).query)["from"][0]
    assert since.endswith("Z") and since[:4].isdigit()
    assert (second["imported"], second["deleted"]) == (1, 1)
    assert sqlite_broker.index.count() == 2  # incremental: unlisted records stay
    assert sqlite_broker.index.get("oai:f:002").title == "Second, revised"


@responses.activate
def test_an_xml_bomb_or_an_oai_error_fails_the_job_cleanly(sqlite_broker):  # noqa: ANN001
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
            "<OAI-PMH>&lol2;</OAI-PMH>")
    responses.get(OAI, body=bomb)
    register(sqlite_broker, "oai-pmh", OAI)
    job = sqlite_broker.harvest.run("fac-src")
    assert job["state"] == "failed" and "safe" in job["error"]
    responses.replace(responses.GET, OAI, body='<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
                                               '<error code="badArgument">bad from</error></OAI-PMH>')
    job = sqlite_broker.harvest.run("fac-src")
    assert job["state"] == "failed" and "badArgument" in job["error"]
