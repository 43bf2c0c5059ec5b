"""The broker as an OAI-PMH 2.0 provider: every answer valid against the OAI-PMH schema (and the record's own
format schema), the protocol's errors, and the broker harvested completely and then incrementally, with a
deletion, by its own OAI-PMH connector through a second broker's harvest over loopback HTTP."""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs

import pytest
from lxml import etree
from werkzeug.wrappers import Request, Response

from panbroker.app import build_broker, create_app
from broker.authz import Principal
from broker.registry_kinds import KINDS
from tests.conftest import make_settings
from demo.federation import serve_app, stop_app
from tests.loopback import serve

ACTOR = Principal("test", admin=True)
DATA = Path(__file__).parent / "data" / "oai"
NS = {"o": "http://www.openarchives.org/OAI/2.0/", "dc": "http://purl.org/dc/elements/1.1/",
      "k": "http://datacite.org/schema/kernel-4"}
SCHEMAS = {name: etree.XMLSchema(etree.parse(str(DATA / file))) for name, file in
           (("oai", "OAI-PMH.xsd"), ("oai_dc", "oai_dc.xsd"), ("oai_datacite", "oai_datacite.xsd"))}


def valid(body: bytes) -> etree._Element:
    """The answer, after checking it against the OAI-PMH schema and each record's metadata schema."""
    root = etree.fromstring(body)
    SCHEMAS["oai"].assertValid(root)
    for metadata in root.iterfind(".//o:metadata", NS):
        (record,) = list(metadata)
        SCHEMAS["oai_dc" if etree.QName(record).localname == "dc" else "oai_datacite"].assertValid(record)
    return root


def walk(client, params: dict) -> list[str]:  # noqa: ANN001
    """The identifiers of a whole list, following resumption tokens (each page schema-checked)."""
    seen, answer = [], valid(client.get("/oai", params=params).content)
    while True:
        seen += answer.xpath("//o:header/o:identifier/text()", namespaces=NS)
        token = answer.findtext(".//o:resumptionToken", namespaces=NS)
        if not token:
            return seen
        answer = valid(client.get("/oai", params={"verb": params["verb"], "resumptionToken": token}).content)


# -- a facility's own OAI-PMH repository the first broker harvests (its records are the test's data) -------
def facility_record(n: int, title: str, deleted: bool = False) -> str:
    status = ' status="deleted"' if deleted else ""
    metadata = "" if deleted else (
        '<metadata><oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" '
        f'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{title}</dc:title>'
        f"<dc:identifier>10.5291/ILL-DATA.{n}</dc:identifier><dc:date>2022-03-04</dc:date>"
        "<dc:description>Small-angle scattering of lysozyme</dc:description></oai_dc:dc></metadata>")
    return (f'<record><header{status}><identifier>ill:{n}</identifier><datestamp>2024-01-01</datestamp></header>'
            f"{metadata}</record>")


class Facility:
    def __init__(self) -> None:
        self.records = {n: facility_record(n, f"Lysozyme run {n}") for n in range(1, 8)}

    def __call__(self, request: Request) -> Response:
        body = "".join(self.records.values())
        return Response('<?xml version="1.0"?><OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
                        f"<ListRecords>{body}</ListRecords></OAI-PMH>", content_type="text/xml")


@contextmanager
def served(app) -> Iterator[tuple[str, list[dict]]]:  # noqa: ANN001
    queries: list[dict] = []

    def recording(environ, start_response):  # noqa: ANN001, ANN202
        queries.append(parse_qs(environ.get("QUERY_STRING", "")))
        return app(environ, start_response)

    server, _ = serve_app(recording, "oai-source")
    try:
        yield f"http://127.0.0.1:{server.server_port}", queries
    finally:
        stop_app(server)


def register(broker, facility: str, url: str) -> None:  # noqa: ANN001
    broker.registry.create(ACTOR, KINDS.facility, {"id": facility, "name": f"Facility {facility}", "country": "FR"})
    broker.registry.create(ACTOR, KINDS.search_endpoint, {"id": f"{facility}-oai", "facility_id": facility,
                                                          "kind": "oai-pmh", "base_url": url})


@contextmanager
def harvested(tmp_path: Path, database_url: str = ""):  # noqa: ANN201
    """A broker (pages of 3 records) that harvested seven datasets from a facility's repository."""
    facility = Facility()
    with serve(facility) as (url, _):
        broker = build_broker(make_settings(tmp_path / "a", database_url, oai_page_size=3,
                                            oai_repository_identifier="pan.example"))
        register(broker, "ill", url)
        assert broker.harvest.run("ill-oai")["imported"] == 7
        yield broker, facility, url
        broker.store.engine.dispose()


@pytest.fixture
def provider(tmp_path):  # noqa: ANN001, ANN201
    with harvested(tmp_path) as built:
        yield built


@pytest.fixture(scope="module")
def shared_provider(tmp_path_factory):  # noqa: ANN001, ANN201
    """``provider`` for tests that only read (built once for the module)."""
    with harvested(tmp_path_factory.mktemp("oai")) as built:
        yield built


@pytest.fixture
def provider_on_each_database(tmp_path, database_url):  # noqa: ANN001, ANN201
    with harvested(tmp_path, database_url) as built:
        yield built


def test_the_broker_is_harvested_completely_then_incrementally_by_its_own_oai_pmh_connector(
        provider_on_each_database, tmp_path):  # noqa: ANN001
    upstream, facility, _facility_url = provider_on_each_database
    # datestamps have second granularity and `from` is inclusive: a record stamped in the second the harvester
    # starts would come again in the next harvest (correct, but not what this test counts)
    time.sleep(1.1)
    with served(create_app(broker=upstream).app) as (url, queries):
        harvester = build_broker(make_settings(tmp_path / "b"))
        register(harvester, "pan", url + "/oai")
        first = harvester.harvest.run("pan-oai")
        assert first["state"] == "succeeded" and first["imported"] == 7
        assert len(queries) == 3 and "resumptionToken" in queries[1]  # 3 + 3 + 1 records
        copy = harvester.index.get("oai:pan.example:ill:3")
        assert copy.title == "Lysozyme run 3" and copy.doi == "10.5291/ILL-DATA.3"

        facility.records[2] = facility_record(2, "Lysozyme run 2, reprocessed")
        facility.records[5] = facility_record(5, "", deleted=True)
        assert upstream.harvest.run("ill-oai")["deleted"] == 1
        queries.clear()
        second = harvester.harvest.run("pan-oai")
        assert second["state"] == "succeeded"
        assert "from" in queries[0] and second["imported"] == 1 and second["deleted"] == 1
        assert harvester.index.get("oai:pan.example:ill:2").title == "Lysozyme run 2, reprocessed"
        assert harvester.index.get("oai:pan.example:ill:5") is None
        assert harvester.index.count() == 6
        harvester.store.engine.dispose()


def test_every_answer_of_a_walk_through_the_verbs_is_schema_valid(provider_on_each_database):  # noqa: ANN001
    broker, _facility, _url = provider_on_each_database
    client = create_app(broker=broker).test_client()
    identify = valid(client.get("/oai?verb=Identify").content)
    assert identify.findtext("o:Identify/o:deletedRecord", namespaces=NS) == "persistent"
    formats = valid(client.get("/oai?verb=ListMetadataFormats").content)
    assert formats.xpath("//o:metadataPrefix/text()", namespaces=NS) == ["oai_dc", "oai_datacite"]
    sets = valid(client.get("/oai?verb=ListSets").content)
    assert "facility:ill" in sets.xpath("//o:setSpec/text()", namespaces=NS)
    for prefix in ("oai_dc", "oai_datacite"):
        seen = walk(client, {"verb": "ListRecords", "metadataPrefix": prefix, "set": "facility:ill"})
        assert sorted(seen) == [f"oai:pan.example:ill:{n}" for n in range(1, 8)]
    record = valid(client.get("/oai?verb=GetRecord&metadataPrefix=oai_datacite&identifier=oai:pan.example:ill:4").content)
    assert record.findtext(".//k:identifier", namespaces=NS) == "10.5291/ILL-DATA.4"
    assert record.findtext(".//k:publisher", namespaces=NS) == "Facility ill"
    dc = valid(client.get("/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:pan.example:ill:4").content)
    assert "http://127.0.0.1:8080/datasets/ill:4" in dc.xpath("//dc:identifier/text()", namespaces=NS)


def test_a_deleted_dataset_stays_in_the_feed_as_deleted_with_the_time_of_its_deletion(provider_on_each_database):  # noqa: ANN001
    broker, facility, _url = provider_on_each_database
    facility.records[6] = facility_record(6, "", deleted=True)
    broker.harvest.run("ill-oai")
    client = create_app(broker=broker).test_client()
    answer = valid(client.get("/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:pan.example:ill:6").content)
    header = answer.find(".//o:header", NS)
    assert header.get("status") == "deleted" and answer.find(".//o:metadata", NS) is None
    since = header.findtext("o:datestamp", namespaces=NS)
    changed = walk(client, {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc", "from": since})
    assert "oai:pan.example:ill:6" in changed


@pytest.mark.parametrize("query, code", [
    ("", "badVerb"),
    ("verb=Harvest", "badVerb"),
    ("verb=Identify&verb=Identify", "badVerb"),
    ("verb=Identify&set=x", "badArgument"),
    ("verb=ListRecords", "badArgument"),
    ("verb=ListRecords&metadataPrefix=oai_dc&metadataPrefix=oai_dc", "badArgument"),
    ("verb=ListRecords&metadataPrefix=oai_dc&from=yesterday", "badArgument"),
    ("verb=ListRecords&metadataPrefix=oai_dc&from=2024-01-01&until=2024-01-02T00:00:00Z", "badArgument"),
    ("verb=ListRecords&metadataPrefix=oai_dc&from=2024-02-30", "badArgument"),
    ("verb=ListRecords&metadataPrefix=oai_dc&resumptionToken=x", "badArgument"),
    ("verb=ListRecords&metadataPrefix=marc21", "cannotDisseminateFormat"),
    ("verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:pan.example:nope", "idDoesNotExist"),
    ("verb=GetRecord&metadataPrefix=oai_dc&identifier=ill:1", "idDoesNotExist"),
    ("verb=ListIdentifiers&metadataPrefix=oai_dc&until=2001-01-01", "noRecordsMatch"),
    ("verb=ListIdentifiers&metadataPrefix=oai_dc&set=facility:esrf", "noRecordsMatch"),
    ("verb=ListRecords&resumptionToken=not-a-token", "badResumptionToken"),
    ("verb=ListRecords&resumptionToken=eyJwIjoib2FpX2RjIn0=", "badResumptionToken"),
    ("verb=ListRecords&resumptionToken=%FF%FE", "badResumptionToken"),
    ("verb=ListSets&resumptionToken=abc", "badResumptionToken"),
])
def test_bad_requests_get_the_error_the_protocol_names_in_a_valid_answer(shared_provider, query, code):  # noqa: ANN001
    client = create_app(broker=shared_provider[0]).test_client()
    response = client.get("/oai?" + query)
    assert response.status_code == 200
    answer = valid(response.content)
    assert answer.find("o:error", NS).get("code") == code
    if code in ("badVerb", "badArgument"):
        assert answer.find("o:request", NS).attrib == {}


def test_a_record_without_a_doi_is_offered_in_oai_dc_only(provider):  # noqa: ANN001
    broker, facility, _url = provider
    facility.records[7] = facility_record(7, "No DOI").replace("<dc:identifier>10.5291/ILL-DATA.7</dc:identifier>", "")
    broker.harvest.run("ill-oai")
    client = create_app(broker=broker).test_client()
    formats = valid(client.get("/oai?verb=ListMetadataFormats&identifier=oai:pan.example:ill:7").content)
    assert formats.xpath("//o:metadataPrefix/text()", namespaces=NS) == ["oai_dc"]
    refused = valid(client.get("/oai?verb=GetRecord&metadataPrefix=oai_datacite&identifier=oai:pan.example:ill:7").content)
    assert refused.find("o:error", NS).get("code") == "cannotDisseminateFormat"


def test_posted_requests_are_answered_like_gets(shared_provider):  # noqa: ANN001
    client = create_app(broker=shared_provider[0]).test_client()
    answer = valid(client.post("/oai", data={"verb": "ListIdentifiers", "metadataPrefix": "oai_dc"}).content)
    assert len(answer.findall(".//o:header", NS)) == 3


def test_an_empty_broker_answers_validly_with_no_sets_and_no_records(sqlite_client):  # noqa: ANN001
    identify = valid(sqlite_client.get("/oai?verb=Identify").content)
    assert identify.findtext(".//o:earliestDatestamp", namespaces=NS) == "2000-01-01T00:00:00Z"
    for query, code in (("verb=ListSets", "noSetHierarchy"), ("verb=ListRecords&metadataPrefix=oai_dc", "noRecordsMatch"),
                        ("verb=ListIdentifiers&metadataPrefix=oai_datacite", "noRecordsMatch")):
        assert valid(sqlite_client.get("/oai?" + query).content).find("o:error", NS).get("code") == code


def test_a_pid_listed_twice_in_one_harvest_makes_one_feed_row_with_its_last_listing(tmp_path, database_url):  # noqa: ANN001
    """A facility can list a pid twice while paging (records that shift between pages). Listed more than a
    write chunk (500) apart, the feed inserted it twice and the harvest failed on the primary key."""
    from broker.oai.records import Entry
    from registry.models import OaiRecord

    broker = build_broker(make_settings(tmp_path / "b", database_url))
    listed = lambda pid, digest="d": Entry(pid, "ill", "|facility:ill|", None, digest)  # noqa: E731
    batch = broker.harvest.records.batch()
    batch.add_entries([listed("twice", "first"), *(listed(f"p{n}") for n in range(600))])
    batch.add_entries([listed("twice", "last")])
    batch.publish()
    with broker.store.session() as session:
        rows = session.query(OaiRecord).filter(OaiRecord.pid == "twice").all()
        assert [row.digest for row in rows] == ["last"] and session.query(OaiRecord).count() == 601
    again = broker.harvest.records.batch()  # listed again as the feed has it: nothing to write
    again.add_entries([listed("twice", "first"), listed("twice", "last")])
    assert list(again.changed) == []
    broker.index.close()
    broker.store.engine.dispose()


def test_control_characters_from_a_facility_or_a_request_never_make_the_xml_unreadable(provider):  # noqa: ANN001
    """XML 1.0 cannot hold C0 controls (but tab, LF, CR). ElementTree wrote a facility's NUL as it was, and one
    record made the whole ListRecords page unreadable to every harvester; they are now U+FFFD."""
    from broker.oai.records import entry
    from panmodel.datasets import Dataset

    broker, _facility, _url = provider
    dataset = Dataset(pid="ctl-1", facility="ill", title="\x00 nul and \x1b escape", source="ill-oai",
                      doi="10.5291/CTL-1")
    broker.index.upsert([dataset])
    broker.index.commit()
    broker.harvest.records.write([entry(dataset)], [])
    client = create_app(broker=broker).test_client()
    for prefix in ("oai_dc", "oai_datacite"):
        record = valid(client.get(f"/oai?verb=GetRecord&metadataPrefix={prefix}&identifier=oai:pan.example:ctl-1").content)
        assert "\ufffd nul and \ufffd escape" in "".join(record.itertext())
        assert len(walk(client, {"verb": "ListRecords", "metadataPrefix": prefix})) == 8
    echoed = valid(client.get("/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:pan.example:%01").content)
    assert echoed.find("o:error", NS).get("code") == "idDoesNotExist"
