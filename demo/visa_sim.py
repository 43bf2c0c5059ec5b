"""A simulated VISA server (from its REST API as visa-web uses it; see the reference notes): the
configuration read before login, the new-instance page, and the account API — experiments by proposal
or DOI, plans for experiments, instances that go BUILDING -> STARTING -> ACTIVE — behind bearer tokens."""
from __future__ import annotations

import html
import json
import threading
import time
import uuid
from typing import Any

from werkzeug.wrappers import Request, Response


class SimulatedVisa:
    def __init__(self, facility: str, *, users: dict[str, str] | None = None,
                 experiments: list[dict[str, Any]] | None = None, build_seconds: float = 1.0):
        self.facility = facility
        self.users = users or {}  # bearer token -> user id
        self.experiments = experiments or []  # {"id", "proposal", "doi", "users": [...]}
        self.plans = [{"id": 1, "flavour": {"name": "small", "cpu": 2, "memory": 8192}, "image": {"name": "Ubuntu"}},
                      {"id": 2, "flavour": {"name": "large", "cpu": 16, "memory": 131072}, "image": {"name": "Ubuntu"}}]
        self.instances: dict[str, dict[str, Any]] = {}
        self.build_seconds = build_seconds
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        path = request.path
        if path == "/api/configuration":
            return _json({"data": {"version": "3.8.2-simulated", "login": {"issuer": "simulated"},
                                   "contactEmail": f"visa@{self.facility}.invalid"}})
        if path == "/instances/new":
            proposals, dois = (html.escape(request.args.get(k, "")) for k in ("proposals", "dois"))
            return Response(f"<!doctype html><title>New instance (simulated VISA)</title>"
                            f"<h1>Simulated VISA of {self.facility}</h1>"
                            f"<p>New instance for proposals <b>{proposals}</b>, DOIs <b>{dois}</b></p>",
                            content_type="text/html")
        if not path.startswith("/api/"):
            return Response("<!doctype html><title>VISA (simulated)</title>", content_type="text/html")
        user = self.users.get(request.headers.get("Authorization", "").removeprefix("Bearer "))
        if user is None:
            return _json({"errors": ["unauthorized"]}, 401)
        with self.lock:
            return self._api(request, user)

    def _api(self, request: Request, user: str) -> Response:
        path, method = request.path.removeprefix("/api"), request.method
        mine = [e for e in self.experiments if user in e["users"]]
        if path == "/account/experiments":
            wanted_p, wanted_d = set(request.args.getlist("proposal")), set(request.args.getlist("doi"))
            found = [e for e in mine if e["proposal"] in wanted_p or e["doi"] in wanted_d]
            return _json({"data": [{"id": e["id"], "proposal": {"identifier": e["proposal"]}, "doi": e["doi"]}
                                   for e in found], "_metadata": {"count": len(found), "page": 1, "limit": 25}})
        if path == "/plans":
            return _json({"data": self.plans})
        if path == "/account/instances" and method == "GET":
            return _json({"data": [self._show(i) for i in self.instances.values() if i["owner"] == user]})
        if path == "/account/instances" and method == "POST":
            body = request.get_json(silent=True) or {}
            ids = {e["id"] for e in mine}
            if not body.get("acceptedTerms") or not body.get("name") or not body.get("planId"):
                return _json({"errors": ["name, planId and acceptedTerms are required"]}, 400)
            if not set(body.get("experiments", [])) <= ids:
                return _json({"errors": ["Not authorized to associate instance to requested experiments"]}, 401)
            uid = uuid.uuid4().hex[:8]
            self.instances[uid] = {"uid": uid, "name": body["name"], "owner": user, "plan": body["planId"],
                                   "created": time.monotonic()}
            return _json({"data": self._show(self.instances[uid])})
        parts = path.split("/")
        if len(parts) >= 4 and parts[1:3] == ["account", "instances"] and parts[3] in self.instances:
            instance = self.instances[parts[3]]
            if instance["owner"] != user:
                return _json({"errors": ["not found"]}, 404)
            if parts[4:] == ["state"]:
                return _json({"data": {"state": self._state(instance)}})
            if method == "DELETE":
                del self.instances[parts[3]]
                return _json({"data": True})
            return _json({"data": self._show(instance)})
        return _json({"errors": ["not found"]}, 404)

    def _state(self, instance: dict[str, Any]) -> str:
        age = time.monotonic() - instance["created"]
        return "BUILDING" if age < self.build_seconds / 2 else "STARTING" if age < self.build_seconds else "ACTIVE"

    def _show(self, instance: dict[str, Any]) -> dict[str, Any]:
        return {"id": hash(instance["uid"]) % 10_000, "uid": instance["uid"], "name": instance["name"],
                "state": self._state(instance), "plan": {"id": instance["plan"]}}


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")
