"""A simulated federation on loopback, for ``make demo`` and the tests: facility systems that answer
like a PaNOSC Search API, a JupyterHub REST API, a VISA server, a BinderHub and a desktop gateway.

Everything here is labelled simulated and listens on 127.0.0.1 only.
"""
from __future__ import annotations

import html
import json
import logging
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from urllib.parse import unquote

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from demo import panosc_filter_sim
from demo.catalogue import generate
from demo.eosc_catalogue import SimulatedCatalogue
from demo.visa_sim import SimulatedVisa

Handler = Callable[[Request], Response]

def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


def panosc_search_api(facility: str, records: list[dict[str, Any]] | None = None, delay: float = 0.0) -> Handler:
    """A facility's PaNOSC Search API over ``records`` (default: 300 generated ones), answering the
    filter language (where, include scopes as inner joins, query, limit/skip, order) after ``delay`` s."""
    records = generate(facility, 300) if records is None else records
    by_pid = {r["pid"]: r for r in records}

    def handle(request: Request) -> Response:
        if delay:
            time.sleep(delay)
        path = request.path.rstrip("/") or "/"
        try:
            if path == "/":
                return _json({"facility": facility, "api_version": "simulated", "simulated": True})
            if path == "/api/Datasets/count":
                where = panosc_filter_sim.read_json(request.args.get("where"))
                return _json({"count": sum(1 for r in records if panosc_filter_sim.where_holds(where, r))})
            if path == "/api/Datasets":
                return _json(panosc_filter_sim.find(records, panosc_filter_sim.read_json(request.args.get("filter"))))
            if path.startswith("/api/Datasets/"):
                pid = unquote(path.removeprefix("/api/Datasets/"))
                if pid in by_pid:
                    include = panosc_filter_sim.includes(panosc_filter_sim.read_json(request.args.get("filter")).get("include"))
                    return _json(panosc_filter_sim.project(by_pid[pid], include))
                return _panosc_error(404, f'Unknown "Dataset" id "{pid}".')
        except panosc_filter_sim.SimulatedError as exc:
            return _panosc_error(exc.status, exc.message)
        return _panosc_error(404, f"Shared class not found for {path}")

    return handle


def _panosc_error(status: int, message: str) -> Response:
    name = "Error" if status != 400 else "BadRequestError"
    return _json({"error": {"statusCode": status, "name": name, "message": message}}, status)


def jupyterhub(version: str = "5.2.1", fail_status: int | None = None, token: str = "sim-hub-token",
               spawn_seconds: float = 2.0) -> Handler:
    """A JupyterHub REST API: version, users, named servers that become ready after ``spawn_seconds``."""
    users: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def handle(request: Request) -> Response:
        if fail_status is not None:
            return Response("simulated failure", status=fail_status)
        path = request.path
        if path == "/hub/api/":
            return _json({"version": version})
        if path.startswith("/user/"):
            return _lab_page(users, lock, [unquote(p) for p in path.removeprefix("/user/").split("/") if p])
        if request.headers.get("Authorization") != f"token {token}":
            return _json({"status": 403, "message": "Action is not authorized"}, 403)
        parts = [unquote(p) for p in path.removeprefix("/hub/api/").split("/") if p]
        with lock:
            if parts[:1] != ["users"] or len(parts) < 2:
                return _json({"status": 404, "message": "Not Found"}, 404)
            name = parts[1]
            if len(parts) == 2:
                if request.method == "POST":
                    if name in users:
                        return _json({"status": 409, "message": f"User {name} already exists"}, 409)
                    users[name] = {}
                    return _json({"name": name, "servers": {}}, 201)
                if name not in users:
                    return _json({"status": 404, "message": "Not Found"}, 404)
                now = time.monotonic()
                servers = {s: {"name": s, "ready": now >= info["ready_at"], "pending": None if now >= info["ready_at"]
                               else "spawn", "url": f"/user/{name}/{s}/", "user_options": info["options"]}
                           for s, info in users[name].items()}
                return _json({"name": name, "servers": servers})
            server = parts[3] if len(parts) > 3 else ""
            if request.method == "POST":
                if server in users.get(name, {}):
                    return _json({"status": 400, "message": f"{name}:{server} is already running"}, 400)
                users.setdefault(name, {})[server] = {"ready_at": time.monotonic() + spawn_seconds,
                                                      "options": request.get_json(silent=True) or {}}
                return Response(status=202)
            if request.method == "DELETE":
                users.get(name, {}).pop(server, None)
                return Response(status=204)
        return _json({"status": 404, "message": "Not Found"}, 404)

    return handle


def _lab_page(users: dict[str, dict[str, Any]], lock: threading.Lock, parts: list[str]) -> Response:
    """What the browser finds at a simulated server's URL: a page standing in for JupyterLab, naming the
    dataset and options the broker started it with (a real hub would show JupyterLab itself)."""
    name, server = (parts + ["", ""])[:2]
    with lock:
        info = users.get(name, {}).get(server)
    if info is None or time.monotonic() < info["ready_at"]:
        body = "<h1>No such server</h1><p>It is not running (or not yet): go back to the broker's session page.</p>"
        return Response(_lab_html(body), status=404 if info is None else 503, mimetype="text/html")
    options = "".join(f"<dt>{html.escape(str(k))}</dt><dd><code>{html.escape(json.dumps(v))}</code></dd>"
                      for k, v in sorted(info["options"].items()))
    body = (f"<p class='sim'>Simulated JupyterHub (PaN Broker demo) — a real hub would open JupyterLab here.</p>"
            f"<h1>JupyterLab: {html.escape(name)}/{html.escape(server)}</h1>"
            f"<p>The server is running with these options from the broker:</p><dl>{options}</dl>")
    return Response(_lab_html(body), mimetype="text/html")


def _lab_html(body: str) -> str:
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>JupyterLab (simulated)</title>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'></head>"
            "<body style='font-family: system-ui, sans-serif; margin: 2rem; max-width: 48rem'>"
            f"<main>{body}</main></body></html>")


def visa(facility: str) -> Handler:
    return SimulatedVisa(facility)


def binderhub(build_seconds: float = 1.5) -> Handler:
    """A BinderHub: ``/health``, the ``/v2/<provider>/<spec>`` page, and the build-and-launch event stream
    ``/build/<provider>/<spec>`` (waiting, fetching, building, pushing, built, launching, ready with the
    server's URL and token), whose servers answer under ``/jupyter/user/<name>/`` to their token only.
    A spec naming a repository ``does-not-exist`` fails as an unresolvable ref does."""
    servers: dict[str, str] = {}  # user name -> token

    def stream(base: str, spec: str):  # noqa: ANN202 - a generator of event-stream lines
        def event(**data: Any) -> str:
            return f"data: {json.dumps(data)}\n\n"

        step = build_seconds / 6
        yield event(phase="waiting", message="Waiting for build to start...")
        time.sleep(step)
        if "does-not-exist" in spec:
            yield event(phase="failed", message=f"Could not resolve ref for {spec}. Double check your URL.")
            return
        yield event(phase="fetching", message=f"Fetching {spec}...")
        time.sleep(step)
        for line in ("Step 1/3 : FROM buildpack-deps:jammy", "Step 2/3 : RUN pip install -r requirements.txt",
                     "Step 3/3 : CMD jupyter lab"):
            yield event(phase="building", message=line + "\n")
            time.sleep(step)
        yield event(phase="pushing", message="Pushing image", progress={"layer-1": "Pushed"})
        yield event(phase="built", message="Built image, launching...", imageName=f"sim/{spec.replace('/', '-')}")
        yield ":heartbeat\n\n"
        yield event(phase="launching", message="Launching server...")
        time.sleep(step)
        name, token = f"{(spec.split('/') + [''] * 3)[2] or 'binder'}-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
        servers[name] = token
        yield event(phase="ready", message=f"server running at {base}/jupyter/user/{name}/",
                    url=f"{base}/jupyter/user/{name}/", token=token, image=f"sim/{spec}", repo_url=spec)

    def handle(request: Request) -> Response:
        path = request.path
        if path == "/health":
            return _json({"ok": True, "checks": [{"service": "Hub", "ok": True}, {"service": "Docker registry",
                                                                                  "ok": True}]})
        if path.startswith("/build/") and path.count("/") >= 4:
            return Response((chunk.encode() for chunk in stream(request.host_url.rstrip("/"), path.removeprefix("/build/"))),
                            content_type="text/event-stream", headers={"Cache-Control": "no-cache"},
                            direct_passthrough=True)
        if path.startswith("/jupyter/user/"):
            name = path.split("/")[3]
            if name in servers and request.args.get("token") == servers[name]:
                return Response(f"<!doctype html><title>JupyterLab (simulated Binder)</title><h1>{html.escape(name)}"
                                f"</h1>", content_type="text/html")
            return Response("403: Forbidden", status=403)
        if path.startswith("/v2/"):
            return Response(f"<!doctype html><title>Binder (simulated)</title><h1>Starting "
                            f"{html.escape(path.removeprefix('/v2/'))}</h1>", content_type="text/html")
        return Response("simulated BinderHub", content_type="text/plain")

    return handle


def desktop_gateway(name: str) -> Handler:
    def handle(request: Request) -> Response:
        return Response(f"<!doctype html><title>{name} (simulated)</title><h1>{name} (simulated)</h1>",
                        content_type="text/html")

    return handle


@dataclass
class SimulatedSystem:
    name: str
    handler: Handler
    server: BaseWSGIServer | None = None
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"


POLL_SECONDS = 0.05  # how soon a simulated server sees it is asked to stop (werkzeug's default: 0.5 s)


def serve_app(app: Callable[..., Any], name: str) -> tuple[BaseWSGIServer, threading.Thread]:
    """``app`` served on a free loopback port by a thread of its own."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, name=name,
                              daemon=True)
    thread.start()
    return server, thread


def stop_app(server: BaseWSGIServer) -> None:
    server.shutdown()
    server.server_close()


@dataclass
class Federation:
    """The simulated systems, each on its own loopback port, started and stopped together."""

    systems: dict[str, SimulatedSystem] = field(default_factory=dict)

    def add(self, name: str, handler: Handler) -> None:
        self.systems[name] = SimulatedSystem(name, handler)

    def start(self) -> "Federation":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per simulated request
        for system in self.systems.values():
            system.server, system.thread = serve_app(Request.application(system.handler), f"sim-{system.name}")
        return self

    def stop(self) -> None:
        for system in self.systems.values():
            if system.server:
                stop_app(system.server)

    def url(self, name: str) -> str:
        return self.systems[name].url

    def __enter__(self) -> "Federation":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def demo_federation() -> Federation:
    federation = Federation()
    for facility in ("sim-ill", "sim-esrf", "sim-ess", "sim-european-xfel"):
        federation.add(f"{facility}-search", panosc_search_api(facility))
    federation.add("sim-ill-visa", visa("sim-ill"))
    federation.add("sim-ill-jupyterhub", jupyterhub())
    federation.add("sim-esrf-jupyterhub", jupyterhub())
    federation.add("sim-esrf-guacamole", desktop_gateway("Guacamole"))
    federation.add("sim-ess-jupyterhub", jupyterhub(fail_status=503))  # the deliberately broken one
    federation.add("sim-egi-binder", binderhub())
    federation.add("sim-eosc", demo_catalogue())
    for kind, simulator in joining().items():
        federation.add(f"sim-{kind}", simulator.peer().handler)
    return federation


def joining() -> dict[str, Any]:
    """The simulators (``demo/simulators/``) that bring their kind into the demo (``DEMO_SERVICE``), by kind."""
    from demo.simulators import simulators  # its modules build on the handlers here

    return {kind: module for kind, module in simulators().items() if hasattr(module, "DEMO_SERVICE")}


def _joined_services(registry: dict[str, Any], federation: Federation) -> dict[str, Any]:
    """``registry`` with a service of each joining kind at the facility its simulator names."""
    for kind, simulator in joining().items():
        if f"sim-{kind}" not in federation.systems:
            continue
        service = dict(simulator.DEMO_SERVICE)
        at = service.pop("facility")
        facility = next(f for f in registry["facilities"] if f["id"] == at)
        peer = simulator.peer()
        facility.setdefault("services", []).append({
            "id": f"{facility['id']}-{kind}", "kind": kind, "base_url": federation.url(f"sim-{kind}"),
            "connector_config": peer.config, **({"credential": peer.credential} if peer.credential else {}),
            **service})
    return registry


def demo_catalogue() -> SimulatedCatalogue:
    """The simulated EOSC catalogue: ILL and ESRF as approved providers, each with an administrator whose
    refresh token the demo registry holds, and some of the demo's services (one with drifted metadata)."""
    catalogue = SimulatedCatalogue()
    for provider, name, admin in (("21.T15999/SIMILL", "ILL (simulated)", "admin@sim-ill"),
                                  ("21.T15999/SIMESRF", "ESRF (simulated)", "admin@sim-esrf")):
        catalogue.add_provider(provider, name, name.split()[0], admins=(admin,))
        catalogue.demo_refresh_tokens[provider] = catalogue.add_user(admin)
    ill, esrf = {"resourceOrganisation": "21.T15999/SIMILL"}, {"resourceOrganisation": "21.T15999/SIMESRF"}
    catalogue.add("21.T15999/sim-ill-visa", {**ill, "name": "ILL VISA (simulated)",
                                             "webpage": "http://127.0.0.1/visa",
                                             "lifeCycleStatus": "life_cycle_status-production"})
    catalogue.add("21.T15999/sim-ill-jupyterhub", {**ill, "name": "ILL JupyterHub (simulated)",
                                                   "lifeCycleStatus": "life_cycle_status-beta"},
                  status="pending resource", active=False)
    catalogue.add("21.T15999/sim-esrf-jupyterhub", {**esrf, "name": "ESRF Jupyter notebooks",
                                                    "lifeCycleStatus": "life_cycle_status-production"})
    return catalogue


def demo_registry(federation: Federation) -> dict[str, Any]:
    """The demo's registry, in the seed-file format, pointing at the running simulators."""
    u = federation.url
    eosc = federation.systems["sim-eosc"].handler.demo_refresh_tokens if "sim-eosc" in federation.systems else {}
    return _joined_services({"facilities": [
        {"id": "sim-ill", "name": "ILL (simulated)", "country": "FR", "accepted_issuers": ["demo-idp", "umbrellaid"],
         **({"eosc_provider_id": "21.T15999/SIMILL", "eosc_credential": eosc["21.T15999/SIMILL"]} if eosc else {}),
         "services": [
             {"id": "sim-ill-visa", "kind": "visa", "title": "ILL VISA (simulated)", "base_url": u("sim-ill-visa"),
              "launch_mode": "deeplink", "capabilities": {"max_cpus": 16, "max_memory_gb": 128,
                                                          "interfaces": ["desktop", "jupyterlab"]},
              "eosc": {"status": "registered", "resource_id": "21.T15999/sim-ill-visa"}},
             {"id": "sim-ill-jupyterhub", "kind": "jupyterhub", "title": "ILL JupyterHub (simulated)",
              "base_url": u("sim-ill-jupyterhub"), "launch_mode": "api", "credential": "sim-hub-token",
              "capabilities": {"max_cpus": 8, "max_memory_gb": 32, "interfaces": ["jupyterlab"]},
              "eosc": {"status": "in-progress", "resource_id": "21.T15999/sim-ill-jupyterhub"}}],
         "search_endpoints": [{"id": "sim-ill-search", "kind": "panosc-search-api", "base_url": u("sim-ill-search"),
                               "harvest_schedule": "0 * * * *"}]},
        {"id": "sim-esrf", "name": "ESRF (simulated)", "country": "FR", "accepted_issuers": ["demo-idp"],
         **({"eosc_provider_id": "21.T15999/SIMESRF", "eosc_credential": eosc["21.T15999/SIMESRF"]} if eosc else {}),
         "services": [
             {"id": "sim-esrf-jupyterhub", "kind": "jupyterhub", "title": "ESRF JupyterHub (simulated)",
              "base_url": u("sim-esrf-jupyterhub"), "launch_mode": "api", "credential": "sim-hub-token",
              "capabilities": {"gpu": True, "partitions": [{"id": "x86"}, {"id": "power9-gpu", "gpu": True}],
                               "interfaces": ["jupyterlab"]}, "connector_config": {"spawner": "jupyterhub_moss"},
              "eosc": {"status": "in-progress", "resource_id": "21.T15999/sim-esrf-jupyterhub"}},
             {"id": "sim-esrf-guacamole", "kind": "remote-desktop", "title": "ESRF Guacamole (simulated)",
              "base_url": u("sim-esrf-guacamole"), "capabilities": {"protocols": ["guacamole"]}}],
         "search_endpoints": [{"id": "sim-esrf-search", "kind": "panosc-search-api",
                               "base_url": u("sim-esrf-search")}]},
        {"id": "sim-ess", "name": "ESS (simulated)", "country": "SE", "accepted_issuers": ["demo-idp"],
         "services": [
             {"id": "sim-ess-jupyterhub", "kind": "jupyterhub",
              "title": "ESS JupyterHub (simulated, deliberately broken)", "base_url": u("sim-ess-jupyterhub"),
              "launch_mode": "deeplink"}],
         "search_endpoints": [{"id": "sim-ess-search", "kind": "panosc-search-api", "base_url": u("sim-ess-search")}]},
        {"id": "sim-european-xfel", "name": "European XFEL (simulated)", "country": "DE",
         "accepted_issuers": ["demo-idp", "umbrellaid"],
         "search_endpoints": [{"id": "sim-european-xfel-search", "kind": "panosc-search-api",
                               "base_url": u("sim-european-xfel-search"), "harvest_schedule": "30 * * * *"}]},
        {"id": "sim-egi", "name": "EGI (simulated)", "country": "NL", "accepted_issuers": ["demo-idp", "umbrellaid"],
         "federation_wide": True,
         "services": [
             {"id": "sim-egi-binder", "kind": "binderhub", "title": "EGI Binder (simulated)",
              "base_url": u("sim-egi-binder"), "launch_mode": "api", "lifecycle": "pilot",
              "connector_config": {"default_repository": "gh/panosc-eu/panosc-notebooks/HEAD"}}]},
    ]}, federation)
