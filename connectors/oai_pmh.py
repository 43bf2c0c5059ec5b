"""OAI-PMH repositories: health (Identify) and incremental harvesting (ListRecords by datestamp, with
resumption tokens; deleted records reported as deletions). Dublin Core records map to datasets."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterator
from xml.etree.ElementTree import Element

import requests
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from marshmallow import fields, validate

from panmodel.datasets import Dataset
from connectors.base import ConfigSchema, url_field
from connectors.capabilities import Harvester
from connectors.errors import UpstreamBadResponse
from connectors.http import HttpClient
from panmodel.clock import as_utc

NS = {"oai": "http://www.openarchives.org/OAI/2.0/", "dc": "http://purl.org/dc/elements/1.1/",
      "oai_dc": "http://www.openarchives.org/OAI/2.0/oai_dc/"}
MAX_PAGES = 100_000


class OaiPmhConfig(ConfigSchema):
    health_url = url_field()
    metadata_prefix = fields.String(validate=validate.OneOf(["oai_dc"], error="only oai_dc is mapped so far"))
    set_spec = fields.String(validate=validate.Length(min=1, max=200))


def _parse(response: requests.Response) -> Element:
    if response.status_code >= 400:
        raise UpstreamBadResponse(f"OAI-PMH answered HTTP {response.status_code}")
    try:
        root = ElementTree.fromstring(response.content)
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise UpstreamBadResponse(f"OAI-PMH answer is not safe, well-formed XML: {exc}") from exc
    error = root.find("oai:error", NS)
    if error is not None and error.get("code") != "noRecordsMatch":
        raise UpstreamBadResponse(f"OAI-PMH error {error.get('code')}: {(error.text or '').strip()[:200]}")
    return root


def _record(element: Element) -> dict[str, Any]:
    header = element.find("oai:header", NS)
    identifier = header.findtext("oai:identifier", default="", namespaces=NS).strip()
    if header.get("status") == "deleted":
        return {"deleted": identifier}
    dc = element.find("oai:metadata/oai_dc:dc", NS)

    def values(name: str) -> list[str]:
        return [(e.text or "").strip() for e in (dc.findall(f"dc:{name}", NS) if dc is not None else []) if e.text]

    return {"identifier": identifier, "datestamp": header.findtext("oai:datestamp", default="", namespaces=NS),
            "title": values("title"), "description": values("description"), "subject": values("subject"),
            "date": values("date"), "identifiers": values("identifier"), "rights": values("rights")}


def to_dataset(record: Any, facility: str, source: str | None) -> Dataset:
    if not isinstance(record, dict) or not record.get("identifier"):
        raise UpstreamBadResponse("unusable OAI-PMH record: no identifier")
    if not record.get("title"):
        raise UpstreamBadResponse(f"unusable OAI-PMH record {record['identifier']}: no dc:title")
    doi = next((i.removeprefix("https://doi.org/").removeprefix("doi:") for i in record.get("identifiers", [])
                if i.startswith(("10.", "doi:", "https://doi.org/"))), None)
    created = None
    for text in record.get("date", []):
        try:
            created = datetime.fromisoformat(text.replace("Z", "+00:00"))
            created = as_utc(created)
            break
        except ValueError:
            continue
    embargoed = any("embargo" in r.lower() or "closedaccess" in r.lower() for r in record.get("rights", []))
    # the OAI identifier is the pid (deletions name it); the DOI is kept for look-ups by DOI
    return Dataset(pid=record["identifier"], facility=facility, title=record["title"][0],
                   summary=" ".join(record.get("description", [])) or None, doi=doi,
                   keywords=tuple(record.get("subject", [])), creation_date=created, is_public=not embargoed,
                   source=source)


class OaiPmhConnector(Harvester):
    kind = "oai-pmh"
    title = "OAI-PMH"
    config_schema = OaiPmhConfig
    incremental = True  # ``gather`` takes ``since`` and reports deletions itself
    to_dataset = staticmethod(to_dataset)

    def health_url(self, base_url, config):  # noqa: ANN001, ANN201 - same contract as the base
        if config.get("health_url") or not base_url:
            return super().health_url(base_url, config)
        return base_url + "?verb=Identify"

    def judge(self, response: requests.Response) -> str | None:
        if response.status_code != 200:
            return f"HTTP {response.status_code}"
        if b"<Identify" not in response.content:
            return "answer is not an OAI-PMH Identify response"
        return None

    def gather(self, client: HttpClient, base_url: str, config: dict[str, Any], timeout: float,
                since: datetime | None = None) -> Iterator[list[dict[str, Any]]]:
        """Records changed since ``since`` (all without it), a page per resumption token; deleted ones
        come as ``{"deleted": identifier}``."""
        params: dict[str, str] = {"verb": "ListRecords", "metadataPrefix": config.get("metadata_prefix", "oai_dc")}
        if since is not None:
            params["from"] = since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if config.get("set_spec"):
            params["set"] = config["set_spec"]
        for _ in range(MAX_PAGES):
            root = _parse(client.get(base_url, params=params, timeout=timeout))
            listing = root.find("oai:ListRecords", NS)
            if listing is None:
                yield []
                return
            yield [_record(r) for r in listing.findall("oai:record", NS)]
            token = (listing.findtext("oai:resumptionToken", default="", namespaces=NS) or "").strip()
            if not token:
                return
            params = {"verb": "ListRecords", "resumptionToken": token}
        raise UpstreamBadResponse(f"more than {MAX_PAGES} pages of resumption tokens")
