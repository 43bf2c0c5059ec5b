"""What crawlers read: schema.org Dataset JSON-LD on every dataset page, checked against Google Dataset
Search's required properties (name; description of 50-5000 characters) and the types it expects of the
recommended ones, and a sitemap listing every dataset page the feed publishes (never deleted ones)."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from lxml import etree

from broker.authz import Principal
from broker.registry_kinds import KINDS
from panmodel.datasets import Dataset, DocumentRef, Member, Parameter, TechniqueRef

ACTOR = Principal("test", admin=True)
SCRIPT = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.S)
SITEMAP = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}


def publish(broker, datasets: list[Dataset], deleted: tuple[str, ...] = ()) -> None:  # noqa: ANN001
    broker.index.upsert(datasets)
    broker.index.delete(deleted)
    broker.index.commit()
    batch = broker.harvest.records.batch()
    batch.add(datasets)
    batch.publish(deleted)


def google_dataset_problems(data: dict) -> list[str]:
    """What Google Dataset Search's structured-data guidelines would flag in a Dataset object."""
    problems = []
    if data.get("@context") not in ("https://schema.org/", "https://schema.org", "http://schema.org/"):
        problems.append("@context is not schema.org")
    if data.get("@type") != "Dataset":
        problems.append("@type is not Dataset")
    if not isinstance(data.get("name"), str) or not data["name"].strip():
        problems.append("name (required) missing")
    if not isinstance(data.get("description"), str) or not 50 <= len(data["description"]) <= 5000:
        problems.append("description (required) must be 50 to 5000 characters")
    for person in data.get("creator", []):
        if person.get("@type") not in ("Person", "Organization") or not person.get("name"):
            problems.append("creator must be a Person or Organization with a name")
    if "isAccessibleForFree" in data and not isinstance(data["isAccessibleForFree"], bool):
        problems.append("isAccessibleForFree must be a boolean")
    if not all(isinstance(i, str) for i in data.get("identifier", [])):
        problems.append("identifier must be text or URLs")
    if "url" in data and not str(data["url"]).startswith(("http://", "https://")):
        problems.append("url must be absolute")
    return problems


def jsonld(client, pid: str) -> dict:  # noqa: ANN001
    response = client.get(f"/datasets/{pid}")
    assert response.status_code == 200
    (block,) = SCRIPT.findall(response.text)
    return json.loads(block)


def test_every_dataset_page_carries_json_ld_that_google_dataset_search_accepts(sqlite_broker, sqlite_client):  # noqa: ANN001
    sqlite_broker.registry.create(ACTOR, KINDS.facility, {"id": "ill", "name": "Institut Laue-Langevin",
                                                          "country": "FR"})
    rich = Dataset(pid="ill/1", facility="ill", title="Lysozyme in D2O", doi="10.5291/ILL-DATA.8-03-1",
                   summary="Small-angle neutron scattering of hen egg-white lysozyme in heavy water at 295 K. " * 2,
                   keywords=("lysozyme",), instrument="D22",
                   techniques=(TechniqueRef("SANS", "http://purl.org/pan-science/PaNET/PaNET01189"),),
                   parameters=(Parameter("sample_temperature", 295.0, "K"),),
                   creation_date=datetime(2021, 5, 1, tzinfo=timezone.utc),
                   documents=(DocumentRef("8-03-1", license="CC-BY-4.0",
                                          members=(Member("principal investigator", "Ada Lovelace"),)),))
    bare = Dataset(pid="ill/2", facility="ill", title="Run 2 </script><script>alert(1)</script>")
    long = Dataset(pid="ill/3", facility="ill", title="Long", summary="x" * 6000, is_public=False)
    publish(sqlite_broker, [rich, bare, long])
    for pid in ("ill/1", "ill/2", "ill/3"):
        assert google_dataset_problems(jsonld(sqlite_client, pid)) == []
    data = jsonld(sqlite_client, "ill/1")
    assert data["identifier"][0] == "https://doi.org/10.5291/ILL-DATA.8-03-1"
    assert data["creator"] == [{"@type": "Person", "name": "Ada Lovelace"}] and data["license"] == "CC-BY-4.0"
    assert data["publisher"]["name"] == "Institut Laue-Langevin" and data["url"].endswith("/datasets/ill/1")
    assert jsonld(sqlite_client, "ill/2")["name"] == bare.title  # survives as data, not as markup
    assert "<script>alert" not in sqlite_client.get("/datasets/ill/2").text
    assert jsonld(sqlite_client, "ill/3")["isAccessibleForFree"] is False


def test_the_sitemap_lists_every_published_dataset_page_and_no_deleted_one(sqlite_broker, sqlite_client):  # noqa: ANN001
    publish(sqlite_broker, [Dataset(pid=f"esrf/{n}", facility="esrf", title=f"Scan {n}") for n in range(3)])
    publish(sqlite_broker, [], deleted=("esrf/1",))
    index = etree.fromstring(sqlite_client.get("/sitemap.xml").content)
    locations = index.xpath("//s:sitemap/s:loc/text()", namespaces=SITEMAP)
    assert [loc.rsplit("/", 1)[-1] for loc in locations] == ["sitemap-0.xml", "sitemap-1.xml"]
    pages = etree.fromstring(sqlite_client.get("/sitemap-1.xml").content)
    assert pages.xpath("//s:loc/text()", namespaces=SITEMAP) == [
        "http://127.0.0.1:8080/datasets/esrf/0", "http://127.0.0.1:8080/datasets/esrf/2"]
    assert all(pages.xpath("//s:lastmod/text()", namespaces=SITEMAP))
    assert "/search" in sqlite_client.get("/sitemap-0.xml").text
    assert sqlite_client.get("/sitemap-9.xml").status_code == 404
