"""A simulated federation on loopback, for ``make demo`` and the tests: facility systems that answer
like a PaNOSC Search API, a JupyterHub REST API, a VISA server, a BinderHub and a desktop gateway.

Everything here is labelled simulated and listens on 127.0.0.1 only.
"""
from __future__ import annotations

import html
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

Handler = Callable[[Request], Response]

SAMPLE_DATASETS = {
    "sim-ill": [
        {"pid": "10.5291/ILL-DATA.9-13-612", "title": "SANS of lysozyme in D2O at 295 K", "isPublic": True,
         "creationDate": "2021-03-14T09:12:00Z", "techniques": ["small angle neutron scattering"],
         "instrument": "D22"},
        {"pid": "10.5291/ILL-DATA.5-31-2770", "title": "Inelastic neutron scattering on a frustrated magnet",
         "isPublic": True, "creationDate": "2020-11-02T15:40:00Z", "techniques": ["neutron spectroscopy"],
         "instrument": "IN5"},
    ],
    "sim-esrf": [
        {"pid": "10.15151/ESRF-ES-513893234", "title": "SAXS of lysozyme solutions, concentration series",
         "isPublic": True, "creationDate": "2022-06-21T11:05:00Z", "techniques": ["small angle X-ray scattering"],
         "instrument": "BM29"},
    ],
    "sim-ess": [
        {"pid": "20.500.12269/sim-ess-0001", "title": "SANS commissioning data, silver behenate standard",
         "isPublic": True, "creationDate": "2024-01-09T08:00:00Z", "techniques": ["small angle neutron scattering"],
         "instrument": "LoKI"},
    ],
}


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


def panosc_search_api(facility: str) -> Handler:
    datasets = SAMPLE_DATASETS.get(facility, [])

    def handle(request: Request) -> Response:
        if request.path == "/":
            return _json({"facility": facility, "api_version": "simulated", "simulated": True})
        if request.path == "/api/Datasets/count":
            return _json({"count": len(datasets)})
        if request.path == "/api/Datasets":
            return _json(datasets)
        return _json({"error": {"statusCode": 404, "name": "Error", "message": "Unknown path"}}, 404)

    return handle


def jupyterhub(version: str = "5.2.1", fail_status: int | None = None) -> Handler:
    def handle(request: Request) -> Response:
        if fail_status is not None:
            return Response("simulated failure", status=fail_status)
        if request.path == "/hub/api/":
            return _json({"version": version})
        if request.path == "/hub/api/info":
            return _json({"version": version, "spawner": {"class": "simulated"}}, 200)
        return _json({"status": 404, "message": "Not Found"}, 404)

    return handle


def visa(facility: str) -> Handler:
    def handle(request: Request) -> Response:
        if request.path == "/api/configuration":
            return _json({"data": {"version": "3.8.2-simulated", "login": {"issuer": "simulated"},
                                   "contactEmail": f"visa@{facility}.invalid"}})
        if request.path == "/instances/new":
            proposals = html.escape(request.args.get("proposals", ""))
            dois = html.escape(request.args.get("dois", ""))
            return Response(
                f"<!doctype html><title>New instance (simulated VISA)</title><h1>Simulated VISA of {facility}</h1>"
                f"<p>New instance for proposals <b>{proposals}</b>, DOIs <b>{dois}</b></p>",
                content_type="text/html")
        return _json({"errors": ["not found"]}, 404)

    return handle


def binderhub() -> Handler:
    def handle(request: Request) -> Response:
        if request.path == "/health":
            return _json({"ok": True, "checks": [{"service": "Hub", "ok": True}]})
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


@dataclass
class Federation:
    """The simulated systems, each on its own loopback port, started and stopped together."""

    systems: dict[str, SimulatedSystem] = field(default_factory=dict)

    def add(self, name: str, handler: Handler) -> None:
        self.systems[name] = SimulatedSystem(name, handler)

    def start(self) -> "Federation":
        for system in self.systems.values():
            app = Request.application(system.handler)
            system.server = make_server("127.0.0.1", 0, app, threaded=True)
            system.thread = threading.Thread(target=system.server.serve_forever, name=f"sim-{system.name}",
                                             daemon=True)
            system.thread.start()
        return self

    def stop(self) -> None:
        for system in self.systems.values():
            if system.server:
                system.server.shutdown()
                system.server.server_close()

    def url(self, name: str) -> str:
        return self.systems[name].url

    def __enter__(self) -> "Federation":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def demo_federation() -> Federation:
    federation = Federation()
    for facility in ("sim-ill", "sim-esrf", "sim-ess"):
        federation.add(f"{facility}-search", panosc_search_api(facility))
    federation.add("sim-ill-visa", visa("sim-ill"))
    federation.add("sim-ill-jupyterhub", jupyterhub())
    federation.add("sim-esrf-jupyterhub", jupyterhub())
    federation.add("sim-esrf-guacamole", desktop_gateway("Guacamole"))
    federation.add("sim-ess-jupyterhub", jupyterhub(fail_status=503))  # the deliberately broken one
    federation.add("sim-egi-binder", binderhub())
    return federation


def demo_registry(federation: Federation) -> dict[str, Any]:
    """The demo's registry, in the seed-file format, pointing at the running simulators."""
    u = federation.url
    return {"facilities": [
        {"id": "sim-ill", "name": "ILL (simulated)", "country": "FR", "accepted_issuers": ["demo-idp", "umbrellaid"],
         "services": [
             {"id": "sim-ill-visa", "kind": "visa", "title": "ILL VISA (simulated)", "base_url": u("sim-ill-visa"),
              "launch_mode": "deeplink", "capabilities": {"max_cpus": 16, "max_memory_gb": 128,
                                                          "interfaces": ["desktop", "jupyterlab"]},
              "eosc": {"status": "registered", "resource_id": "sim.ill-visa"}},
             {"id": "sim-ill-jupyterhub", "kind": "jupyterhub", "title": "ILL JupyterHub (simulated)",
              "base_url": u("sim-ill-jupyterhub"), "launch_mode": "api",
              "capabilities": {"max_cpus": 8, "max_memory_gb": 32, "interfaces": ["jupyterlab"]},
              "eosc": {"status": "in-progress"}}],
         "search_endpoints": [{"id": "sim-ill-search", "kind": "panosc-search-api", "base_url": u("sim-ill-search"),
                               "harvest_schedule": "0 * * * *"}]},
        {"id": "sim-esrf", "name": "ESRF (simulated)", "country": "FR", "accepted_issuers": ["demo-idp"],
         "services": [
             {"id": "sim-esrf-jupyterhub", "kind": "jupyterhub", "title": "ESRF JupyterHub (simulated)",
              "base_url": u("sim-esrf-jupyterhub"), "launch_mode": "api",
              "capabilities": {"gpu": True, "partitions": [{"id": "x86"}, {"id": "power9-gpu", "gpu": True}],
                               "interfaces": ["jupyterlab"]}, "connector_config": {"spawner": "jupyterhub_moss"},
              "eosc": {"status": "registered"}},
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
        {"id": "sim-egi", "name": "EGI (simulated)", "country": "NL", "accepted_issuers": ["umbrellaid"],
         "services": [
             {"id": "sim-egi-binder", "kind": "binderhub", "title": "EGI Binder (simulated)",
              "base_url": u("sim-egi-binder"), "launch_mode": "api", "lifecycle": "pilot"}]},
    ]}
