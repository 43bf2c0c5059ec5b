"""A simulated Open OnDemand portal with one interactive app, from OnDemand's documentation: the app's form
(form.yml's attributes, shown at ``/pun/sys/dashboard/batch_connect/<app>/session_contexts/new``), its submission
(``session_contexts`` answering 204 in JSON, 422 with the form's errors), "My Interactive Sessions" with one card
per session (Queued, then Starting, then Running with the connection information host, port and password, and
Completed once the wall time is over) and the deletion of a session, which cancels its job. A running app
answers behind the reverse proxy at ``/rnode/<host>/<port>/``. Everything is labelled simulated.
"""
from __future__ import annotations

import html
import json
import secrets
import threading
import time
import uuid
from typing import Any

from werkzeug.wrappers import Request, Response

from demo.simulators import Peer

KIND = "ood"
APP = "sys/jupyter"
#: the app's form.yml: its attributes, as the dashboard permits them
FORM = ("bc_num_hours", "bc_queue", "num_cores", "pb_session_name", "working_dir")
QUEUES = ("batch", "gpu")
DEMO_SERVICE = {"facility": "sim-esrf", "title": "ESRF Open OnDemand (simulated)", "launch_mode": "deeplink",
                "capabilities": {"max_cpus": 28, "interfaces": ["jupyterlab"], "partitions": [{"id": "batch"}]}}


class SimulatedOnDemand:
    def __init__(self, users: dict[str, str] | None = None, queued_seconds: float = 1.0,
                 starting_seconds: float = 1.0):
        self.users = users or {}  # bearer token -> user name
        self.queued, self.starting = queued_seconds, starting_seconds
        self.sessions: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        path = request.path
        if path in ("/", "/pun/sys/dashboard", "/pun/sys/dashboard/"):
            return _page("Open OnDemand (simulated)", "<h1>Dashboard</h1>")
        if path == f"/pun/sys/dashboard/batch_connect/{APP}/session_contexts/new":
            fields = "".join(f'<label>{f}<input name="batch_connect_session_context[{f}]"></label>' for f in FORM)
            return _page("Jupyter (simulated OnDemand)", f"<form method=post>{fields}<button>Launch</button></form>")
        if path.startswith("/rnode/"):
            return self._app(request)
        user = self.users.get(request.headers.get("Authorization", "").removeprefix("Bearer "))
        if user is None:  # mod_auth_openidc sends browsers to sign in; API callers without a token get 401
            return Response("Unauthorized", status=401)
        with self.lock:
            if path == f"/pun/sys/dashboard/batch_connect/{APP}/session_contexts.json" and request.method == "POST":
                return self._submit(request, user)
            if path == "/pun/sys/dashboard/batch_connect/sessions" and request.method == "GET":
                return _page("My Interactive Sessions (simulated)", "".join(
                    self._card(sid, s) for sid, s in self.sessions.items() if s["user"] == user))
            if path.startswith("/pun/sys/dashboard/batch_connect/sessions/") and request.method == "DELETE":
                sid = path.rsplit("/", 1)[-1].removesuffix(".json")
                if self.sessions.get(sid, {}).get("user") != user:
                    return Response(status=404)
                del self.sessions[sid]
                return Response(status=204)
        return Response("Not Found", status=404)

    def _submit(self, request: Request, user: str) -> Response:
        given = {key[len("batch_connect_session_context["):-1]: value for key, value in request.form.items()
                 if key.startswith("batch_connect_session_context[") and key.endswith("]")}
        context = {name: value for name, value in given.items() if name in FORM}  # others are not permitted
        errors: dict[str, list[str]] = {}
        hours = context.get("bc_num_hours", "1")
        if not hours.isdigit() or int(hours) < 1:
            errors["bc_num_hours"] = ["must be a whole number of hours, at least 1"]
        if context.get("bc_queue", "batch") not in QUEUES:
            errors["bc_queue"] = [f"is not a queue of this cluster ({', '.join(QUEUES)})"]
        if errors:
            return Response(json.dumps(errors), status=422, content_type="application/json")
        self.sessions[str(uuid.uuid4())] = {"user": user, "context": context, "submitted": time.monotonic(),
                                            "job_id": str(4000 + len(self.sessions)), "hours": int(hours),
                                            "port": 20000 + len(self.sessions), "password": secrets.token_hex(8)}
        return Response(status=204)

    def _status(self, session: dict[str, Any]) -> str:
        age = time.monotonic() - session["submitted"]
        if age < self.queued:
            return "Queued"
        if age < self.queued + self.starting:
            return "Starting"
        return "Running" if age < session["hours"] * 3600 else "Completed"

    def _card(self, sid: str, session: dict[str, Any]) -> str:
        status, context = self._status(session), session["context"]
        body = "".join(f"<p>{html.escape(k)}: {html.escape(v)}</p>" for k, v in context.items())  # the app's info view
        if status == "Running":
            body += (f'<p>Host: 127.0.0.1</p><form action="/rnode/127.0.0.1/{session["port"]}/login" method=post>'
                     f'<input type=hidden name=password value="{session["password"]}">'
                     "<button>Connect to Jupyter</button></form>")
        return (f'<div id="id_{sid}" class="card session-panel mb-4" data-id="{sid}"><div class="card-heading">'
                f'<h5 class="card-header">Jupyter (simulated) <span>({session["job_id"]})</span>'
                f'<span class="badge">{status}</span></h5></div><div class="card-body">{body}</div></div>')

    def _app(self, request: Request) -> Response:
        port = (request.path.split("/") + [""] * 4)[3]
        known = any(str(s["port"]) == port and self._status(s) == "Running" for s in self.sessions.values())
        if not known:
            return Response("Failed to connect to 127.0.0.1:" + html.escape(port), status=503)
        return _page("JupyterLab (simulated OnDemand session)", f"<h1>Session on port {html.escape(port)}</h1>")


def _page(title: str, body: str) -> Response:
    return Response(f"<!doctype html><title>{html.escape(title)}</title>{body}", content_type="text/html")


def peer() -> Peer:
    portal = SimulatedOnDemand(users={"sim-user-token": "alice"}, queued_seconds=0.3, starting_seconds=0.3)
    return Peer(portal, config={"app": APP, "name_attribute": "pb_session_name", "path_attribute": "working_dir",
                                "cores_attribute": "num_cores", "user_token_issuer": "sim-idp",
                                "data_path_template": "/data/{proposal}"},
                user_token="sim-user-token", resources={"cpus": 2, "partition": "batch"}, proposals=("SIM-1",))
