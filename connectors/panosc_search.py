"""PaNOSC Search API (LoopBack; REST root ``/api``): health, live queries, harvesting, and the mapping
of its records into the broker's ``Dataset``."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Iterator
from urllib.parse import quote

from marshmallow import ValidationError, fields

from connectors.base import ConfigSchema, JsonProbe, SearchConnector, TolerantSchema, url_field
from connectors.errors import UpstreamBadResponse
from connectors.http import HttpClient, json_body
from broker.search.model import Dataset, DocumentRef, Parameter, TechniqueRef
from broker.search.techniques import panet
from broker.search.units import si_for

RELATIONS = ("documents", "techniques", "instrument", "parameters", "files")


class PanoscSearchConfig(ConfigSchema):
    health_url = url_field()
    page_size = fields.Integer(validate=lambda n: 1 <= n <= 1000)


class _Document(TolerantSchema):
    pid = fields.String(required=True)
    title = fields.String(allow_none=True)
    type = fields.String(allow_none=True)
    doi = fields.String(allow_none=True)
    summary = fields.String(allow_none=True)
    keywords = fields.List(fields.String(), allow_none=True)


class _Technique(TolerantSchema):
    pid = fields.String(allow_none=True)
    name = fields.String(required=True)
    panetId = fields.String(allow_none=True)


class _Parameter(TolerantSchema):
    name = fields.String(required=True)
    value = fields.Raw(allow_none=True)
    unit = fields.String(allow_none=True)


class _Instrument(TolerantSchema):
    pid = fields.String(allow_none=True)
    name = fields.String(required=True)
    facility = fields.String(allow_none=True)


class _Dataset(TolerantSchema):
    pid = fields.String(required=True)
    title = fields.String(required=True)
    isPublic = fields.Boolean(load_default=True)
    creationDate = fields.String(allow_none=True)
    size = fields.Integer(allow_none=True)
    documents = fields.List(fields.Nested(_Document), allow_none=True)
    document = fields.Nested(_Document, allow_none=True)  # the federated service and SciCat's adapter
    techniques = fields.List(fields.Nested(_Technique), allow_none=True)
    instrument = fields.Nested(_Instrument, allow_none=True)
    parameters = fields.List(fields.Nested(_Parameter), allow_none=True)
    files = fields.List(fields.Dict(), allow_none=True)


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def technique_ref(name: str, pid: str | None = None, panet_id: str | None = None) -> TechniqueRef:
    for candidate in (panet_id, pid):
        if candidate and panet().resolve(candidate):
            return TechniqueRef(name, panet().resolve(candidate)[0])
    resolved = panet().resolve(name)
    return TechniqueRef(name, resolved[0] if resolved else None)


def parameter(name: str, value: Any, unit: str | None) -> Parameter:
    numeric = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if numeric is None and isinstance(value, str):
        try:
            numeric = float(value)
        except ValueError:
            numeric = None
    si = si_for(name, numeric, unit) if numeric is not None else None
    return Parameter(name, numeric if numeric is not None else value, unit, si)


_DATASET = _Dataset()  # building a schema costs more than loading a record with it


def to_dataset(record: Any, facility: str, source: str | None) -> Dataset:
    """A facility's Dataset record as the broker's ``Dataset``; ``UpstreamBadResponse`` when unusable."""
    if not isinstance(record, dict):
        raise UpstreamBadResponse("unusable dataset record: not an object")
    try:
        data = _DATASET.load(record)
    except ValidationError as exc:
        raise UpstreamBadResponse(f"unusable dataset record: {json.dumps(exc.messages)[:200]}") from exc
    documents = list(data.get("documents") or []) + ([data["document"]] if data.get("document") else [])
    instrument = data.get("instrument")
    return Dataset(
        pid=data["pid"], facility=facility, title=data["title"], is_public=data["isPublic"],
        creation_date=_date(data.get("creationDate")), size=data.get("size"),
        doi=data["pid"] if data["pid"].startswith("10.") else None,
        instrument=instrument["name"] if instrument else None,
        techniques=tuple(technique_ref(t["name"], t.get("pid"), t.get("panetId")) for t in data.get("techniques") or []),
        parameters=tuple(parameter(p["name"], p.get("value"), p.get("unit")) for p in data.get("parameters") or []),
        documents=tuple(DocumentRef(d["pid"], d.get("title"), d.get("type"), d.get("doi"), d.get("summary"),
                                    tuple(d.get("keywords") or ())) for d in documents),
        file_count=len(data["files"]) if data.get("files") is not None else None,
        source=source)


class PanoscSearchConnector(JsonProbe, SearchConnector):
    kind = "panosc-search-api"
    config_schema = PanoscSearchConfig
    health_path = "/api/Datasets/count"
    expected_key = "count"
    include = [{"relation": r} for r in RELATIONS]
    to_dataset = staticmethod(to_dataset)

    def find(self, client: HttpClient, base_url: str, flt: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
        """Raw Dataset records for a LoopBack filter."""
        response = client.get(f"{base_url.rstrip('/')}/api/Datasets", params={"filter": json.dumps(flt)},
                              timeout=timeout, headers={"Accept": "application/json"})
        body = _checked(response)
        if not isinstance(body, list):
            raise UpstreamBadResponse(f"{base_url}: Datasets answered {type(body).__name__}, not a list")
        return body

    def count(self, client: HttpClient, base_url: str, where: dict[str, Any], timeout: float) -> int:
        response = client.get(f"{base_url.rstrip('/')}/api/Datasets/count", params={"where": json.dumps(where)},
                              timeout=timeout, headers={"Accept": "application/json"})
        body = _checked(response)
        if not isinstance(body, dict) or not isinstance(body.get("count"), int):
            raise UpstreamBadResponse(f"{base_url}: count answered without an integer count")
        return body["count"]

    def get(self, client: HttpClient, base_url: str, pid: str, timeout: float) -> dict[str, Any] | None:
        response = client.get(f"{base_url.rstrip('/')}/api/Datasets/{quote(pid, safe='')}",
                              params={"filter": json.dumps({"include": self.include})}, timeout=timeout)
        if response.status_code == 404:
            return None
        return _checked(response)

    def harvest(self, client: HttpClient, base_url: str, config: dict[str, Any],
                timeout: float) -> Iterator[list[dict[str, Any]]]:
        """Every dataset, a page at a time, in a stable order."""
        size = config.get("page_size", 200)
        skip = 0
        while True:
            page = self.find(client, base_url, {"limit": size, "skip": skip, "order": "pid ASC",
                                                "include": self.include}, timeout)
            yield page
            if len(page) < size:
                return
            skip += size


def _checked(response) -> Any:  # noqa: ANN001 - requests.Response
    body = json_body(response)
    if response.status_code >= 400:
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        raise UpstreamBadResponse(f"HTTP {response.status_code}" + (f": {message}" if message else ""))
    return body
