"""The EOSC Resource Catalogue API (madgeek-arc resource-catalogue; v5 PIDs and v4 ids): read services
and providers, list with paging, and optionally validate and push a service profile."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import quote

from marshmallow import ValidationError, fields

from connectors.base import TolerantSchema
from connectors.errors import UpstreamBadResponse
from connectors.http import HttpClient, json_body

V5_PID = re.compile(r"^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$")
V4_ID = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$")


class NotInCatalogue(UpstreamBadResponse):
    title = "Not in the EOSC catalogue"
    type_suffix = "not-in-catalogue"


@dataclass(frozen=True)
class CatalogueService:
    """What the catalogue says of one service."""

    id: str
    name: str | None
    description: str | None
    webpage: str | None
    lifecycle_status: str | None
    onboarding_status: str | None  # e.g. "approved resource", "pending resource"
    active: bool | None


class _Service(TolerantSchema):
    id = fields.String(required=True)
    name = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    webpage = fields.String(allow_none=True)
    lifeCycleStatus = fields.String(allow_none=True)


_SERVICE = _Service()


V4_PROVIDER = re.compile(r"^[A-Za-z0-9_-]+$")


def resource_path(resource_id: str, kind: str = "service") -> str:
    """The catalogue path of a v5 PID (``prefix/suffix``) or a v4 id (``provider.service``, or a
    provider's abbreviation)."""
    if V5_PID.match(resource_id):
        prefix, suffix = resource_id.split("/", 1)
        return f"/{kind}/{quote(prefix, safe='')}/{quote(suffix, safe='')}"
    if V4_ID.match(resource_id) or (kind == "provider" and V4_PROVIDER.match(resource_id)):
        return f"/{kind}/{quote(resource_id, safe='')}"
    raise ValueError(f"{resource_id!r} is neither a v5 PID (prefix/suffix) nor a v4 id")


@dataclass(frozen=True)
class CatalogueProvider:
    id: str
    name: str | None
    abbreviation: str | None
    website: str | None
    status: str | None  # e.g. "approved provider"


def to_catalogue_service(payload: Any) -> CatalogueService:
    """A service or a service bundle (``{"service": {...}, "status": ..., "active": ...}``)."""
    if not isinstance(payload, dict):
        raise UpstreamBadResponse("the catalogue answered something that is not a service")
    bundle = payload if isinstance(payload.get("service"), dict) else None
    try:
        service = _SERVICE.load(bundle["service"] if bundle else payload)
    except ValidationError as exc:
        raise UpstreamBadResponse(f"unusable catalogue service: {json.dumps(exc.messages)[:200]}") from exc
    return CatalogueService(service["id"], service.get("name"), service.get("description"), service.get("webpage"),
                            service.get("lifeCycleStatus"), bundle.get("status") if bundle else None,
                            bundle.get("active") if bundle else None)


class EoscCatalogueClient:
    def __init__(self, http: HttpClient, base_url: str, catalogue_id: str = "eosc", timeout: float = 10.0):
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.catalogue_id = catalogue_id
        self.timeout = timeout

    def service(self, resource_id: str) -> CatalogueService:
        response = self.http.get(self.base_url + resource_path(resource_id), params={"catalogue_id": self.catalogue_id},
                                 timeout=self.timeout, headers={"Accept": "application/json"})
        if response.status_code == 404:
            raise NotInCatalogue(f"{resource_id} is not in the catalogue")
        if response.status_code >= 400:
            raise UpstreamBadResponse(f"the catalogue answered HTTP {response.status_code} for {resource_id}")
        return to_catalogue_service(json_body(response))

    def provider(self, provider_id: str) -> CatalogueProvider:
        """A provider by v5 PID or v4 abbreviation; its onboarding status when the answer is a bundle."""
        response = self.http.get(self.base_url + resource_path(provider_id, "provider"),
                                 params={"catalogue_id": self.catalogue_id}, timeout=self.timeout)
        if response.status_code == 404:
            raise NotInCatalogue(f"provider {provider_id} is not in the catalogue")
        body = json_body(response)
        if response.status_code >= 400 or not isinstance(body, dict):
            raise UpstreamBadResponse(f"the catalogue answered HTTP {response.status_code} for provider {provider_id}")
        provider = body.get("provider") if isinstance(body.get("provider"), dict) else body
        if not provider.get("id"):
            raise UpstreamBadResponse("the catalogue's provider has no id")
        return CatalogueProvider(provider["id"], provider.get("name"), provider.get("abbreviation"),
                                 provider.get("website"), body.get("status") if "provider" in body else None)

    def services(self, page_size: int = 100) -> Iterator[CatalogueService]:
        """Every service of the catalogue, a page at a time (``Browsing``: total, from, to, results)."""
        start = 0
        while True:
            response = self.http.get(f"{self.base_url}/service/all", timeout=self.timeout, params={
                "catalogue_id": self.catalogue_id, "from": start, "quantity": page_size})
            body = json_body(response)
            if response.status_code >= 400 or not isinstance(body, dict) or not isinstance(body.get("results"), list):
                raise UpstreamBadResponse("the catalogue's service list is not a Browsing page")
            for item in body["results"]:
                yield to_catalogue_service(item)
            start += len(body["results"])
            if not body["results"] or start >= int(body.get("total", 0)):
                return

    def validate(self, profile: dict[str, Any], token: str) -> None:
        response = self.http.request("POST", f"{self.base_url}/service/validate", json=profile, timeout=self.timeout,
                                     headers={"Authorization": f"Bearer {token}"})
        if response.status_code >= 400:
            raise UpstreamBadResponse(f"the catalogue refused the profile: {response.text[:300]}")

    def push(self, profile: dict[str, Any], token: str, *, exists: bool) -> CatalogueService:
        """Validate, then create (POST) or update (PUT) the service."""
        self.validate(profile, token)
        response = self.http.request("PUT" if exists else "POST", f"{self.base_url}/service", json=profile,
                                     timeout=self.timeout, headers={"Authorization": f"Bearer {token}"})
        if response.status_code >= 400:
            raise UpstreamBadResponse(f"the catalogue refused the {'update' if exists else 'creation'}: "
                                      f"HTTP {response.status_code}")
        return to_catalogue_service(json_body(response))
