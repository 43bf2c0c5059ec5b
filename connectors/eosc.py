"""The EOSC Resource Catalogue API (madgeek-arc resource-catalogue; v4 ids, v5 and v6 PIDs).

Bare reads (``/service/{prefix}/{suffix}``) carry no status, and the catalogue refuses them (403) for a service
that is not active unless the reader administers its provider. The onboarding state is on the bundle, which
only the provider's administrators may read: v5 lists them per provider (``/service/byProvider/{provider
prefix}/{provider suffix}``, a page of bundles), v6 serves one (``/service/bundle/{prefix}/{suffix}``), v4 ids
are read at ``/serviceBundle/{id}``. Writes: ``POST /service/validate`` (200 or the validator's message),
``POST /service`` (the catalogue makes the PID), ``PUT /service`` (replaces the whole record). Tokens come from
EOSC AAI (``TokenSource``).
"""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import quote

from marshmallow import ValidationError, fields

from connectors.base import TolerantSchema
from connectors.errors import UpstreamBadResponse
from connectors.http import HttpClient, json_body

V5_PID = re.compile(r"^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$")
V4_ID = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$")
V4_PROVIDER = re.compile(r"^[A-Za-z0-9_-]+$")
API_VERSIONS = ("v5", "v6")


class NotInCatalogue(UpstreamBadResponse):
    title = "Not in the EOSC catalogue"
    type_suffix = "not-in-catalogue"


class CatalogueRefused(UpstreamBadResponse):
    """The catalogue's validator (or its rules for this provider) refused the request; ``detail`` says why."""

    status = 409
    title = "Refused by the EOSC catalogue"
    type_suffix = "catalogue-refused"


class OnboardingPending(CatalogueRefused):
    """The provider's first service is waiting for the onboarding team; no other may be created until then."""

    title = "Waiting for the EOSC onboarding team"
    type_suffix = "onboarding-pending"


class CatalogueDenied(UpstreamBadResponse):
    """The token was refused (401) or does not administer the provider (403)."""

    status = 502
    title = "The EOSC catalogue refused the provider's token"
    type_suffix = "catalogue-denied"


@dataclass(frozen=True)
class EoscServiceRecord:
    """What the catalogue says of one service; the status fields are ``None`` on a bare read."""

    id: str
    name: str | None
    description: str | None
    webpage: str | None
    lifecycle_status: str | None
    onboarding_status: str | None = None  # "approved resource", "pending resource", "rejected resource"
    active: bool | None = None
    suspended: bool | None = None
    draft: bool | None = None
    audit_state: str | None = None
    version: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def has_status(self) -> bool:
        return self.onboarding_status is not None or self.active is not None


class _Service(TolerantSchema):
    id = fields.String(required=True)
    name = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    webpage = fields.String(allow_none=True)
    lifeCycleStatus = fields.String(allow_none=True)
    version = fields.String(allow_none=True)


_SERVICE = _Service()


def resource_path(resource_id: str, kind: str = "service") -> str:
    """The catalogue path of a v5 PID (``prefix/suffix``) or a v4 id (``provider.service``, or a
    provider's abbreviation)."""
    if V5_PID.match(resource_id):
        prefix, suffix = resource_id.split("/", 1)
        return f"/{kind}/{quote(prefix, safe='')}/{quote(suffix, safe='')}"
    if V4_ID.match(resource_id) or (kind == "provider" and V4_PROVIDER.match(resource_id)):
        return f"/{kind}/{quote(resource_id, safe='')}"
    raise ValueError(f"{resource_id!r} is neither a v5 PID (prefix/suffix) nor a v4 id")


def bundle_path(resource_id: str, api: str, provider_id: str | None = None) -> str:
    """Where the service *bundle* (with its status) is read, for the catalogue's API version: v6 one bundle,
    v5 the page of its provider's bundles (``provider_id`` needed), v4 one bundle by id."""
    if not V5_PID.match(resource_id):
        return f"/serviceBundle/{quote(resource_id, safe='')}" if V4_ID.match(resource_id) else resource_path(
            resource_id)
    if api == "v6":
        prefix, suffix = (quote(p, safe="") for p in resource_id.split("/", 1))
        return f"/service/bundle/{prefix}/{suffix}"
    if not provider_id or not V5_PID.match(provider_id):
        raise ValueError("a v5 catalogue lists bundles per provider: the provider's PID is needed")
    prefix, suffix = (quote(p, safe="") for p in provider_id.split("/", 1))
    return f"/service/byProvider/{prefix}/{suffix}"


@dataclass(frozen=True)
class CatalogueProvider:
    id: str
    name: str | None
    abbreviation: str | None
    website: str | None
    status: str | None  # e.g. "approved provider"


def to_service_record(payload: Any) -> EoscServiceRecord:
    """A service or a service bundle (``{"service": {...}, "status": ..., "active": ...}``)."""
    if not isinstance(payload, dict):
        raise UpstreamBadResponse("the catalogue answered something that is not a service")
    bundle = payload if isinstance(payload.get("service"), dict) else None
    raw = bundle["service"] if bundle else payload
    try:
        service = _SERVICE.load(raw)
    except ValidationError as exc:
        raise UpstreamBadResponse(f"unusable catalogue service: {json.dumps(exc.messages)[:200]}") from exc
    state = {}
    if bundle:
        state = {"onboarding_status": _text(bundle.get("status")), "active": _flag(bundle.get("active")),
                 "suspended": _flag(bundle.get("suspended")), "draft": _flag(bundle.get("draft")),
                 "audit_state": _text(bundle.get("auditState"))}
    return EoscServiceRecord(service["id"], service.get("name"), service.get("description"), service.get("webpage"),
                            service.get("lifeCycleStatus"), version=service.get("version"), raw=dict(raw), **state)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


class TokenSource:
    """Access tokens for one provider's administrator from EOSC AAI: a refresh-token grant (the refresh token
    the AAI rotates is kept in memory and handed to ``on_rotate``), or client credentials; renewed a minute
    before expiry or when the catalogue answers 401."""

    def __init__(self, http: HttpClient, token_url: str, *, refresh_token: str | None = None,
                 client_id: str | None = None, client_secret: str | None = None, timeout: float = 10.0,
                 on_rotate: Any = None, static_token: str | None = None):
        self.http = http
        self.token_url = token_url
        self.refresh_token = refresh_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.timeout = timeout
        self.on_rotate = on_rotate
        self._token = static_token
        self._expires = float("inf") if static_token else 0.0
        self._lock = threading.Lock()

    def token(self, *, renew: bool = False) -> str:
        with self._lock:
            if renew or self._token is None or time.monotonic() > self._expires - 60:
                self._fetch()
            return self._token  # type: ignore[return-value]

    def _fetch(self) -> None:
        if self.refresh_token:
            form = {"grant_type": "refresh_token", "refresh_token": self.refresh_token}
        elif self.client_id and self.client_secret:
            form = {"grant_type": "client_credentials"}
        elif self._token is not None:
            return  # a fixed token: nothing to renew it with
        else:
            raise CatalogueDenied("no EOSC AAI credential for this provider")
        if self.client_id:
            form |= {"client_id": self.client_id, **({"client_secret": self.client_secret}
                                                      if self.client_secret else {})}
        response = self.http.request("POST", self.token_url, form=form, timeout=self.timeout)
        body = json_body(response) if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code >= 400 or not isinstance(body, dict) or not body.get("access_token"):
            reason = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
            raise CatalogueDenied(f"EOSC AAI refused the provider's credential (HTTP {response.status_code}"
                                  f"{': ' + str(reason) if reason else ''})")
        self._token = str(body["access_token"])
        self._expires = time.monotonic() + float(body.get("expires_in") or 300)
        if body.get("refresh_token") and body["refresh_token"] != self.refresh_token:
            self.refresh_token = str(body["refresh_token"])
            if self.on_rotate:
                self.on_rotate(self.refresh_token)


class EoscCatalogueClient:
    def __init__(self, http: HttpClient, base_url: str, catalogue_id: str = "eosc", timeout: float = 10.0,
                 api: str = "v5"):
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.catalogue_id = catalogue_id
        self.timeout = timeout
        self.api = api

    def detect_api(self) -> str:
        """The API shape the catalogue says it serves (``/actuator/info``'s build version), else ``self.api``."""
        response = self.http.get(self.base_url + "/actuator/info", timeout=self.timeout)
        if response.status_code == 200:
            body = json_body(response)
            version = str(((body or {}).get("build") or {}).get("version") or "") if isinstance(body, dict) else ""
            if re.match(r"^\d+\.", version):
                return "v6" if int(version.split(".")[0]) >= 6 else "v5"
        return self.api

    def _get(self, path: str, token: TokenSource | None, what: str, params: dict[str, Any] | None = None) -> Any:
        headers = {"Accept": "application/json"}
        for attempt in (0, 1):
            if token is not None:
                headers["Authorization"] = f"Bearer {token.token(renew=attempt == 1)}"
            response = self.http.get(self.base_url + path, params={"catalogue_id": self.catalogue_id, **(params or {})},
                                     timeout=self.timeout, headers=headers)
            if response.status_code == 401 and token is not None and attempt == 0:
                continue
            break
        if response.status_code == 404:
            raise NotInCatalogue(f"{what} is not in the catalogue")
        if response.status_code in (401, 403):
            raise CatalogueDenied(f"the catalogue answered HTTP {response.status_code} for {what}"
                                  + ("" if token else " (read without a provider token)"))
        if response.status_code >= 400:
            raise UpstreamBadResponse(f"the catalogue answered HTTP {response.status_code} for {what}")
        return json_body(response)

    def service(self, resource_id: str, token: TokenSource | None = None) -> EoscServiceRecord:
        """The bare service (no status)."""
        return to_service_record(self._get(resource_path(resource_id), token, resource_id))

    def bundle(self, resource_id: str, token: TokenSource, provider_id: str | None = None,
               page_size: int = 100) -> EoscServiceRecord:
        """The service with its onboarding status, read with the provider administrator's token (on a v5
        catalogue, from the pages of its provider's bundles)."""
        try:
            path = bundle_path(resource_id, self.api, provider_id)
        except ValueError as exc:
            raise CatalogueDenied(f"{resource_id}: {exc}") from exc
        if not path.startswith("/service/byProvider/"):
            return to_service_record(self._get(path, token, resource_id))
        start = 0
        while True:
            page = self._get(path, token, f"the services of provider {provider_id}",
                             {"from": start, "quantity": page_size})
            results = page.get("results") if isinstance(page, dict) else None
            if not isinstance(results, list):
                raise UpstreamBadResponse(f"the catalogue's services of provider {provider_id} are not a page")
            for item in results:
                if isinstance(item, dict) and (item.get("id") == resource_id or (
                        isinstance(item.get("service"), dict) and item["service"].get("id") == resource_id)):
                    return to_service_record(item)
            start += len(results)
            if not results or start >= int(page.get("total") or 0):
                raise NotInCatalogue(f"{resource_id} is not among the services of provider {provider_id}")

    def provider(self, provider_id: str, token: TokenSource | None = None) -> CatalogueProvider:
        """A provider by v5 PID or v4 abbreviation; with its status when the token may read its bundle."""
        path = resource_path(provider_id, "provider")
        body = self._get(path.replace("/provider/", "/provider/bundle/", 1) if token else path, token,
                         f"provider {provider_id}")
        if not isinstance(body, dict):
            raise UpstreamBadResponse(f"the catalogue's provider {provider_id} is not an object")
        provider = body.get("provider") if isinstance(body.get("provider"), dict) else body
        if not provider.get("id"):
            raise UpstreamBadResponse("the catalogue's provider has no id")
        return CatalogueProvider(provider["id"], provider.get("name"), provider.get("abbreviation"),
                                 provider.get("website"), _text(body.get("status")) if "provider" in body else None)

    def services(self, page_size: int = 100) -> Iterator[EoscServiceRecord]:
        """Every public service of the catalogue, a page at a time (``Browsing``: total, from, to, results)."""
        start = 0
        while True:
            response = self.http.get(f"{self.base_url}/service/all", timeout=self.timeout, params={
                "catalogue_id": self.catalogue_id, "from": start, "quantity": page_size})
            body = json_body(response)
            if response.status_code >= 400 or not isinstance(body, dict) or not isinstance(body.get("results"), list):
                raise UpstreamBadResponse("the catalogue's service list is not a Browsing page")
            for item in body["results"]:
                yield to_service_record(item)
            start += len(body["results"])
            if not body["results"] or start >= int(body.get("total", 0)):
                return

    def _write(self, method: str, path: str, body: dict[str, Any], token: TokenSource, what: str) -> Any:
        for attempt in (0, 1):
            response = self.http.request(method, self.base_url + path, json=body, timeout=self.timeout, headers={
                "Authorization": f"Bearer {token.token(renew=attempt == 1)}", "Accept": "application/json"})
            if response.status_code != 401 or attempt == 1:
                break
        if response.status_code < 400:
            return json_body(response) if response.content else None
        message = _error_message(response)
        if response.status_code in (401, 403):
            raise CatalogueDenied(f"the catalogue refused the {what} (HTTP {response.status_code}): {message}")
        if response.status_code == 409 and ("template" in message.lower() or "onboarding" in message.lower()):
            raise OnboardingPending(message)  # v5: "You have already created a Service Template."
        if response.status_code in (400, 409, 422):
            raise CatalogueRefused(f"the catalogue refused the {what} (HTTP {response.status_code}): {message}")
        raise UpstreamBadResponse(f"the catalogue answered HTTP {response.status_code} to the {what}")

    def validate(self, body: dict[str, Any], token: TokenSource) -> None:
        """Raises ``CatalogueRefused`` with the validator's message when the body would be refused."""
        self._write("POST", "/service/validate", body, token, "validation")

    def create(self, body: dict[str, Any], token: TokenSource) -> EoscServiceRecord:
        return to_service_record(self._write("POST", "/service", body, token, "creation"))

    def update(self, body: dict[str, Any], token: TokenSource) -> EoscServiceRecord:
        return to_service_record(self._write("PUT", "/service", body, token, "update"))


def _error_message(response: Any) -> str:
    try:
        body = json.loads(response.text)
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body)[:500]
    return str(body)[:300]
