"""SciCat (public datasets through its REST API v3): health and harvesting."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Iterator

from marshmallow import ValidationError, fields, validate

from panmodel.datasets import Dataset, DocumentRef
from connectors.base import ConfigSchema, JsonProbe, TolerantSchema, url_field
from connectors.capabilities import Harvester
from connectors.errors import UpstreamBadResponse
from connectors.http import HttpClient, json_body
from connectors.panosc_mapping import parameter, technique_ref


class SciCatConfig(ConfigSchema):
    health_url = url_field()
    page_size = fields.Integer(validate=validate.Range(min=1, max=1000))


class _Technique(TolerantSchema):
    pid = fields.String(allow_none=True)
    name = fields.String(required=True)


class _SciCatDataset(TolerantSchema):
    pid = fields.String(required=True)
    datasetName = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    creationTime = fields.String(allow_none=True)
    isPublished = fields.Boolean(load_default=False)
    keywords = fields.List(fields.String(), allow_none=True)
    size = fields.Integer(allow_none=True)
    numberOfFiles = fields.Integer(allow_none=True)
    techniques = fields.List(fields.Nested(_Technique), allow_none=True)
    scientificMetadata = fields.Dict(allow_none=True)
    proposalId = fields.String(allow_none=True)
    creationLocation = fields.String(allow_none=True)


_SCHEMA = _SciCatDataset()


def to_dataset(record: Any, facility: str, source: str | None) -> Dataset:
    if not isinstance(record, dict):
        raise UpstreamBadResponse("unusable SciCat dataset: not an object")
    try:
        data = _SCHEMA.load(record)
    except ValidationError as exc:
        raise UpstreamBadResponse(f"unusable SciCat dataset: {json.dumps(exc.messages)[:200]}") from exc
    metadata = data.get("scientificMetadata") or {}
    parameters = tuple(parameter(name, entry.get("value"), entry.get("unit")) for name, entry in metadata.items()
                       if isinstance(entry, dict) and "value" in entry)
    created = data.get("creationTime")
    location = (data.get("creationLocation") or "").rstrip("/")
    return Dataset(
        pid=data["pid"], facility=facility, title=data.get("datasetName") or data["pid"],
        summary=data.get("description"), is_public=data["isPublished"],
        creation_date=datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None,
        keywords=tuple(data.get("keywords") or ()), size=data.get("size"), file_count=data.get("numberOfFiles"),
        techniques=tuple(technique_ref(t["name"], t.get("pid")) for t in data.get("techniques") or []),
        parameters=parameters, instrument=location.rsplit("/", 1)[-1] or None,
        documents=(DocumentRef(data["proposalId"], type="proposal"),) if data.get("proposalId") else (),
        source=source)


class SciCatConnector(JsonProbe, Harvester):
    kind = "scicat"
    title = "SciCat"
    config_schema = SciCatConfig
    health_path = "/api/v3/datasets/count"  # anonymous callers count published datasets
    expected_key = "count"
    to_dataset = staticmethod(to_dataset)

    def gather(self, client: HttpClient, base_url: str, config: dict[str, Any],
               timeout: float) -> Iterator[list[dict[str, Any]]]:
        """Every published dataset, a page at a time, in pid order."""
        size = config.get("page_size", 200)
        skip = 0
        while True:
            flt = {"where": {"isPublished": True}, "limits": {"limit": size, "skip": skip, "order": "pid:asc"}}
            response = client.get(f"{base_url.rstrip('/')}/api/v3/datasets", params={"filter": json.dumps(flt)},
                                  timeout=timeout, headers={"Accept": "application/json"})
            if response.status_code >= 400:
                raise UpstreamBadResponse(f"SciCat answered HTTP {response.status_code}")
            page = json_body(response)
            if not isinstance(page, list):
                raise UpstreamBadResponse("SciCat datasets answer is not a list")
            yield page
            if len(page) < size:
                return
            skip += size
