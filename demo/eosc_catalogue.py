"""A simulated EOSC Resource Catalogue on loopback, for the demo and the tests — SIMULATED.

Built from the behaviour of madgeek-arc/resource-catalogue (v5.4.0 and the v6 "EOSC EU Node" line) and its
vocabularies (``registry/vocabularies/eosc``, read here as plain data), not from the broker's own code:

* reads: ``GET /service/{prefix}/{suffix}`` (v4: ``/service/{id}``) answers the *bare* Service, without any
  status; the status lives on the bundle, for the provider's administrators (and the portal's) only: v5 lists a
  provider's bundles as a page (``/service/byProvider/{provider prefix}/{provider suffix}``), v6 serves one
  (``/service/bundle/{prefix}/{suffix}``), v4 ids at ``/serviceBundle/{id}``. A service that is not active is
  hidden (403) from anyone else; ``/service/all`` lists active, approved ones.
* the field validator: mandatory fields ("Field 'x' is mandatory."), vocabulary ids of the right type, e-mail
  syntax, duplicates, the provider named in ``resourceOrganisation`` (v6 ``resourceOwner``) must exist, and
  every URL field must answer 2xx to HEAD (GET when HEAD is not allowed) within 5 s. ``POST /service/validate``
  runs it on the body as sent, so ``id`` (and from v5.1 ``catalogueId``) must be there; only create fills them.
* create makes the PID (``{prefix}/{random suffix}``) itself. Onboarding (v5): a provider that is not yet an
  active ``approved provider`` may submit one service, its *template* (``pending resource``, inactive; the
  provider's template status becomes ``pending template``); while it waits, a create with services already
  there is refused — 409 "You have already created a Service Template." when the provider has no template
  status, 403 otherwise. When the onboarding team approves the template the provider becomes an active
  ``approved provider`` and its new services are approved and active at once. v6 statuses are ``approved``,
  ``pending``, ``rejected``, and its organisation must be approved before any create.
* ``PUT /service`` replaces the whole record; a record that carries a ``version`` must be sent back with the
  same ``version`` (409 otherwise).
* bearer tokens are issued by a simulated EOSC AAI (``POST /token``, refresh_token or client_credentials
  grants) and expire.

Faults for tests: ``down`` (503 everywhere), ``garbage`` (HTML), ``slow`` seconds before each answer.
"""
from __future__ import annotations

import json
import secrets
import string
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable

from werkzeug.wrappers import Request, Response

from demo.eosc_validator import V5_VOCABULARY_FIELDS, Invalid, validate, vocabulary

PID_SUFFIX_ALPHABET = string.ascii_letters + string.digits
DENIED = "Access is denied"
SIGN_IN = "Full authentication is required to access this resource"


class Refused(Exception):
    """An answer the catalogue gives instead of the resource (its ServerError body, with ``status``)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class SimulatedCatalogue:
    """One catalogue: providers, service bundles, users and their tokens. Admin actions are methods."""

    def __init__(self, version: str = "5.4.0", catalogue_id: str = "eosc", pid_prefix: str = "21.T15999",
                 token_lifetime: float = 300.0, url_timeout: float = 5.0, check_urls: bool = True):
        self.version = version
        self.major = int(version.split(".")[0])
        self.catalogue_id = catalogue_id
        self.pid_prefix = pid_prefix
        self.token_lifetime = token_lifetime
        self.url_timeout = url_timeout
        self.check_urls = check_urls
        self.providers: dict[str, dict[str, Any]] = {}
        self.bundles: dict[str, dict[str, Any]] = {}
        self.portal_admins: set[str] = set()
        self.access_tokens: dict[str, tuple[str, float]] = {}  # token -> (user, expires at)
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> user
        self.clients: dict[tuple[str, str], str] = {}  # (client id, secret) -> user
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, user) as received
        self.demo_refresh_tokens: dict[str, str] = {}  # provider -> its administrator's, for the demo registry
        self.down = False
        self.garbage = False
        self.slow = 0.0
        self._lock = threading.Lock()
        self.vocabularies = {name: vocabulary(name) for name in (
            "SCIENTIFIC_DOMAIN", "SCIENTIFIC_SUBDOMAIN", "CATEGORY", "SUBCATEGORY", *V5_VOCABULARY_FIELDS.values())}

    # -- set-up and the onboarding team's actions ---------------------------------------------------

    def _state(self, word: str, kind: str = "resource") -> str:
        """A status as this version spells it: v5 ``approved resource``, v6 ``approved``."""
        return word if self.major >= 6 else f"{word} {kind}"

    def add_provider(self, provider_id: str, name: str, abbreviation: str, *, onboarded: bool = True,
                     admins: tuple[str, ...] = (), website: str | None = None) -> None:
        """A provider; ``onboarded=False``: registered, its first service (the template) not yet submitted."""
        self.providers[provider_id] = {"id": provider_id, "provider": {
            "id": provider_id, "name": name, "abbreviation": abbreviation, "website": website,
            "catalogueId": self.catalogue_id},
            "status": self._state("approved" if onboarded else "pending", "provider"), "active": onboarded,
            "templateStatus": "approved template" if onboarded else "no template status", "admins": set(admins)}

    def add_user(self, user: str, *, admin: bool = False) -> str:
        """A user who may sign in at the AAI; returns a refresh token for them."""
        if admin:
            self.portal_admins.add(user)
        refresh = "rt-" + secrets.token_urlsafe(12)
        self.refresh_tokens[refresh] = user
        return refresh

    def add_client(self, client_id: str, secret: str, user: str) -> None:
        self.clients[(client_id, secret)] = user

    def issue_token(self, user: str) -> str:
        token = "at-" + secrets.token_urlsafe(16)
        self.access_tokens[token] = (user, time.monotonic() + self.token_lifetime)
        return token

    def add(self, resource_id: str, service: dict[str, Any], status: str | None = None,
            active: bool = True, **bundle: Any) -> None:
        """A service already in the catalogue (as if created and reviewed long ago)."""
        self.bundles[resource_id] = {"id": resource_id, "service": {"id": resource_id, **service},
                                     "status": status or self._state("approved"), "active": active,
                                     "suspended": False, "draft": False, "auditState": "Not audited",
                                     "metadata": {"registeredBy": "simulated"}, **bundle}

    def approve(self, resource_id: str) -> None:
        """The onboarding team approves a service; approving a template onboards its provider."""
        bundle = self.bundles[resource_id]
        bundle.update(status=self._state("approved"), active=True)
        provider = self.providers.get(self._owner(bundle["service"]) or "")
        if provider and provider["templateStatus"] == "pending template":
            provider.update(templateStatus="approved template", status=self._state("approved", "provider"),
                            active=True)

    def reject(self, resource_id: str) -> None:
        bundle = self.bundles[resource_id]
        bundle.update(status=self._state("rejected"), active=False)
        provider = self.providers.get(self._owner(bundle["service"]) or "")
        if provider and provider["templateStatus"] == "pending template":
            provider["templateStatus"] = "rejected template"

    def suspend(self, resource_id: str) -> None:
        self.bundles[resource_id].update(suspended=True, active=False)

    def edit(self, resource_id: str, **fields: Any) -> None:
        """An edit made in the catalogue's own portal."""
        self.bundles[resource_id]["service"].update(fields)

    # -- HTTP -----------------------------------------------------------------------------------------

    def __call__(self, request: Request) -> Response:
        if self.slow:
            time.sleep(self.slow)
        if self.down:
            return Response("maintenance", status=503)
        if self.garbage:
            return Response("<html><body>EOSC portal</body></html>", content_type="text/html")
        user = self._user(request)
        self.requests.append((request.method, request.path, user if isinstance(user, str) else None))
        if isinstance(user, Response):
            return user
        try:
            with self._lock:
                return self._route(request, user)
        except Invalid as exc:
            return _error(str(exc), 400, request)
        except Refused as exc:
            return _error(exc.message, exc.status, request)

    def _user(self, request: Request) -> str | None | Response:
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        token = header.removeprefix("Bearer ").strip()
        found = self.access_tokens.get(token)
        if found is None or found[1] < time.monotonic():
            return _error("Invalid or expired token", 401, request)
        return found[0]

    def _route(self, request: Request, user: str | None) -> Response:
        path, method = request.path, request.method
        if method == "POST" and path == "/token":
            return self._token(request)
        if method == "GET" and path == "/actuator/info":
            return _json({"build": {"version": self.version, "name": "resource-catalogue"}})
        if method == "GET" and path == "/service/all":
            return self._all(request)
        if method == "GET" and path.startswith("/provider/"):
            return self._provider(path.removeprefix("/provider/"), user, request)
        if method == "GET" and path.startswith("/serviceBundle/"):
            return self._bundle(path.removeprefix("/serviceBundle/"), user, request)
        if method == "GET" and self.major >= 6 and path.startswith("/service/bundle/"):
            return self._bundle(path.removeprefix("/service/bundle/"), user, request)
        if method == "GET" and self.major < 6 and path.startswith("/service/byProvider/"):
            return self._by_provider(path.removeprefix("/service/byProvider/"), user, request)
        if method == "POST" and path == "/service/validate":  # open to anyone, as upstream
            validate(self, _body(request))
            return Response(status=200)
        if method == "POST" and path == "/service":
            return self._create(_body(request), user, request)
        if method == "PUT" and path == "/service":
            return self._update(_body(request), user, request)
        if method == "GET" and path.startswith("/service/"):
            return self._bare(path.removeprefix("/service/"), user, request)
        return _error("Not found", 404, request)

    def _token(self, request: Request) -> Response:
        form = request.form
        grant = form.get("grant_type")
        if grant == "refresh_token" and form.get("refresh_token") in self.refresh_tokens:
            user = self.refresh_tokens.pop(form["refresh_token"])
            rotated = "rt-" + secrets.token_urlsafe(12)
            self.refresh_tokens[rotated] = user
            return _json({"access_token": self.issue_token(user), "token_type": "Bearer",
                          "expires_in": int(self.token_lifetime), "refresh_token": rotated})
        if grant == "client_credentials" and (form.get("client_id"), form.get("client_secret")) in self.clients:
            user = self.clients[(form["client_id"], form["client_secret"])]
            return _json({"access_token": self.issue_token(user), "token_type": "Bearer",
                          "expires_in": int(self.token_lifetime)})
        return _json({"error": "invalid_grant", "error_description": "Token is not active"}, 400)

    def _can_admin(self, user: str | None, provider_id: str | None) -> bool:
        if user is None:
            return False
        provider = self.providers.get(provider_id or "")
        return user in self.portal_admins or bool(provider and user in provider["admins"])

    def _owner(self, service: dict[str, Any]) -> str | None:
        return service.get("resourceOwner" if self.major >= 6 else "resourceOrganisation")

    def _check_admin(self, user: str | None, provider_id: str | None) -> None:
        """As the catalogue: 401 to a reader signed out, 403 to one who does not administer ``provider_id``."""
        if user is None:
            raise Refused(401, SIGN_IN)
        if not self._can_admin(user, provider_id):
            raise Refused(403, DENIED)

    def _stored(self, resource_id: str) -> dict[str, Any]:
        """The bundle of ``resource_id``; 404 when there is none."""
        bundle = self.bundles.get(resource_id)
        if bundle is None:
            raise Refused(404, f"Resource with id '{resource_id}' does not exist.")
        return bundle

    def _all(self, request: Request) -> Response:
        return _page([b["service"] for b in sorted(self.bundles.values(), key=lambda b: b["id"])
                      if b["active"] and b["status"] == self._state("approved")], request)

    def _provider(self, provider_id: str, user: str | None, request: Request) -> Response:
        bundle_read = provider_id.startswith("bundle/")
        provider_id = provider_id.removeprefix("bundle/")
        provider = self.providers.get(provider_id)
        if provider is None:
            return _error(f"Provider with id '{provider_id}' does not exist.", 404, request)
        if bundle_read:
            if not self._can_admin(user, provider_id):
                raise Refused(403, DENIED)
            return _json({k: v for k, v in provider.items() if k != "admins"})
        if not provider["active"] and not self._can_admin(user, provider_id):
            raise Refused(403, DENIED)
        return _json(provider["provider"])

    def _bare(self, resource_id: str, user: str | None, request: Request) -> Response:
        bundle = self._stored(resource_id)
        if not bundle["active"] and not self._can_admin(user, self._owner(bundle["service"])):
            raise Refused(403, DENIED)  # hidden from everyone else, signed in or not
        return _json(bundle["service"])

    def _bundle(self, resource_id: str, user: str | None, request: Request) -> Response:
        bundle = self._stored(resource_id)
        self._check_admin(user, self._owner(bundle["service"]))
        return _json(bundle)

    def _by_provider(self, provider_id: str, user: str | None, request: Request) -> Response:
        self._check_admin(user, provider_id)
        return _page([b for b in sorted(self.bundles.values(), key=lambda b: b["id"])
                      if self._owner(b["service"]) == provider_id], request)

    def _create(self, service: dict[str, Any], user: str | None, request: Request) -> Response:
        if user is None:
            raise Refused(401, SIGN_IN)
        owner = self._owner(service)
        provider = self.providers.get(owner or "")
        if provider is None:
            raise Invalid(f"Provider with id '{owner}' does not exist.")
        if not self._can_admin(user, owner):
            raise Refused(403, DENIED)
        siblings = [b for b in self.bundles.values() if self._owner(b["service"]) == owner]
        onboarded = provider["active"] and provider["status"] == self._state("approved", "provider")
        if not onboarded:
            if self.major >= 6 or provider["templateStatus"] not in ("no template status", "rejected template"):
                raise Refused(403, DENIED)
            if siblings and provider["templateStatus"] == "no template status":
                return _error("You have already created a Service Template.", 409, request)
        service = {**service, "id": f"{self.pid_prefix}/{_suffix()}", "catalogueId": self.catalogue_id}
        validate(self, service)
        if not onboarded:
            provider["templateStatus"] = "pending template"
        now = datetime.now(timezone.utc).isoformat()
        self.bundles[service["id"]] = {
            "id": service["id"], "service": service, "status": self._state("approved" if onboarded else "pending"),
            "active": onboarded, "suspended": False, "draft": False, "auditState": "Not audited",
            "metadata": {"registeredBy": user, "registeredAt": now, "modifiedBy": user, "modifiedAt": now}}
        return _json(service, 201)

    def _update(self, service: dict[str, Any], user: str | None, request: Request) -> Response:
        if user is None:
            raise Refused(401, SIGN_IN)
        bundle = self._stored(str(service.get("id")))
        self._check_admin(user, self._owner(bundle["service"]))
        stored_version = bundle["service"].get("version")
        if stored_version is not None and service.get("version") != stored_version:
            return _error(f"Version conflict: the resource is at version '{stored_version}', the update carries "
                          f"'{service.get('version')}'.", 409, request)
        service = {**service, "catalogueId": bundle["service"].get("catalogueId", self.catalogue_id)}
        validate(self, service)
        bundle["service"] = service
        bundle["metadata"] = {**bundle["metadata"], "modifiedBy": user,
                              "modifiedAt": datetime.now(timezone.utc).isoformat()}
        return _json(service)

def website(pages: dict[str, int], slow: dict[str, float] | None = None) -> Callable[[Request], Response]:
    """A facility's public website on loopback: ``path -> status`` (a login-protected app answers 401), and
    ``path -> seconds`` it takes to answer."""

    def handle(request: Request) -> Response:
        time.sleep((slow or {}).get(request.path, 0.0))
        status = pages.get(request.path, 404)
        body = b"" if request.method == "HEAD" else b"<html>simulated page</html>"
        return Response(body, status=status, content_type="text/html")

    return handle


def _suffix() -> str:
    return "".join(secrets.choice(PID_SUFFIX_ALPHABET) for _ in range(6))


def _body(request: Request) -> Any:
    body = request.get_json(silent=True)
    if body is None:
        raise Invalid("Required request body is missing or is not JSON")
    return body


def _page(items: list[Any], request: Request) -> Response:
    """One page of ``items`` as the catalogue's paging (``from``, ``quantity``) cuts it."""
    start, quantity = int(request.args.get("from", 0)), int(request.args.get("quantity", 10))
    page = items[start:start + quantity]
    return _json({"total": len(items), "from": start, "to": start + len(page), "results": page, "facets": []})


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


def _error(message: str, status: int, request: Request) -> Response:
    # the catalogue's ServerError body
    return _json({"url": request.url, "error": message, "status": status}, status)
