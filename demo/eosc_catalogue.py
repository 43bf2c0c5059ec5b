"""A simulated EOSC Resource Catalogue (v5 API shape) on loopback, for the demo and the tests.

Serves ``GET /service/{prefix}/{suffix}`` and v4 ``GET /service/{id}`` as service bundles
(``{"service": {...}, "status": "approved resource", "active": true}``), ``GET /service/all`` as a
Browsing page, and ``POST /service/validate``, ``POST /service``, ``PUT /service`` behind a bearer token.
"""
from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Request, Response

REQUIRED = ("name", "abbreviation", "resourceOrganisation", "webpage", "description")


class SimulatedCatalogue:
    def __init__(self, token: str = "eosc-sim-token"):
        self.token = token
        self.bundles: dict[str, dict[str, Any]] = {}
        self.providers: dict[str, dict[str, Any]] = {}
        self.down = False  # answer 503 to everything
        self.garbage = False  # answer HTML instead of JSON

    def add(self, resource_id: str, service: dict[str, Any], status: str = "approved resource",
            active: bool = True) -> None:
        self.bundles[resource_id] = {"id": resource_id, "service": {"id": resource_id, **service},
                                     "status": status, "active": active, "metadata": {"registeredBy": "simulated"}}

    def add_provider(self, provider_id: str, name: str, abbreviation: str, status: str = "approved provider") -> None:
        self.providers[provider_id] = {"provider": {"id": provider_id, "name": name, "abbreviation": abbreviation},
                                       "status": status, "active": True}

    def __call__(self, request: Request) -> Response:
        if self.down:
            return Response("maintenance", status=503)
        if self.garbage:
            return Response("<html><body>EOSC portal</body></html>", content_type="text/html")
        path = request.path
        if request.method == "GET" and path == "/service/all":
            start, quantity = int(request.args.get("from", 0)), int(request.args.get("quantity", 10))
            items = [b["service"] for b in sorted(self.bundles.values(), key=lambda b: b["id"])]
            page = items[start:start + quantity]
            return _json({"total": len(items), "from": start, "to": start + len(page), "results": page, "facets": []})
        if request.method == "GET" and path.startswith("/provider/"):
            provider = self.providers.get(path.removeprefix("/provider/"))
            return _json(provider, 200) if provider else _json({"error": "provider not found"}, 404)
        if request.method == "GET" and path.startswith("/service/"):
            resource_id = path.removeprefix("/service/")
            bundle = self.bundles.get(resource_id)
            if bundle is None:
                return _json({"error": f"Resource with id '{resource_id}' does not exist"}, 404)
            return _json(bundle)
        if path in ("/service/validate", "/service") and request.method in ("POST", "PUT"):
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return _json({"error": "unauthorized"}, 401)
            profile = request.get_json(silent=True) or {}
            missing = [f for f in REQUIRED if not profile.get(f)]
            if missing:
                return _json({"error": f"missing fields: {', '.join(missing)}"}, 400)
            if path == "/service/validate":
                return _json(True)
            resource_id = profile.get("id") or f"21.T15999/{profile['abbreviation']}"
            existing = self.bundles.get(resource_id)
            self.add(resource_id, {k: v for k, v in profile.items() if k != "id"},
                     status=existing["status"] if existing else "pending resource")
            return _json(self.bundles[resource_id]["service"], 200 if request.method == "PUT" else 201)
        return _json({"error": "not found"}, 404)


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")
