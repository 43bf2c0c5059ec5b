"""A real JupyterHub (PyPI jupyterhub + npm configurable-http-proxy) on loopback, with the broker
registered as a service whose token has the admin:users and servers scopes."""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
import requests

from tests.loopback import answers_within

CHP = Path(__file__).resolve().parent.parent / "demo" / "oidc" / "node_modules" / ".bin" / "configurable-http-proxy"
CONFIG = '''
import os
c = get_config()
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(os.environ["HUB_PORT"])
c.JupyterHub.hub_port = int(os.environ["HUB_INTERNAL_PORT"])
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:" + os.environ["PROXY_API_PORT"]
c.ConfigurableHTTPProxy.command = [os.environ["CHP"]]
c.ConfigurableHTTPProxy.pid_file = os.environ["HUB_DIR"] + "/proxy.pid"
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "simple"
c.Spawner.args = ["--allow-root"]
c.Spawner.notebook_dir = os.environ["HUB_DIR"]
c.JupyterHub.allow_named_servers = True
c.JupyterHub.services = [{"name": "panbroker", "api_token": os.environ["BROKER_TOKEN"]}]
c.JupyterHub.load_roles = [{"name": "broker", "scopes": ["admin:users", "servers"], "services": ["panbroker"]}]
c.JupyterHub.db_url = "sqlite:///" + os.environ["HUB_DIR"] + "/hub.sqlite"
c.JupyterHub.cookie_secret_file = os.environ["HUB_DIR"] + "/cookie_secret"
c.JupyterHub.log_level = "WARN"
'''


@dataclass
class RunningHub:
    url: str
    token: str
    process: subprocess.Popen
    workdir: Path | None = None

    def api(self, path: str) -> requests.Response:
        return requests.get(f"{self.url}/hub/api{path}", headers={"Authorization": f"token {self.token}"}, timeout=5)

    def log(self, *words: str) -> str:
        """The hub's log lines naming any of ``words`` (its tail without words), for a failure's message."""
        text = (self.workdir / "hub.log").read_text(errors="replace") if self.workdir else ""
        lines = [line for line in text.splitlines() if any(w in line for w in words)] if words else text.splitlines()
        return "\n".join(lines[-40:])


def _free_ports(n: int) -> list[int]:
    sockets = []
    for _ in range(n):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()
    return ports


def start_hub(workdir: Path, extra_config: str = "", env: dict[str, str] | None = None) -> RunningHub:
    """A hub on loopback; ``extra_config`` is appended to its jupyterhub_config.py, ``env`` added to its
    environment."""
    hub = Path(sys.executable).with_name("jupyterhub")
    if not hub.exists() or not CHP.exists() or shutil.which("node") is None:
        pytest.skip("jupyterhub or configurable-http-proxy is missing (make test installs both): "
                    "JupyterHub launch tests SKIPPED")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "jupyterhub_config.py").write_text(CONFIG + extra_config)
    port, internal, proxy_api = _free_ports(3)
    token = secrets.token_hex(16)
    env = {**os.environ, "HUB_PORT": str(port), "HUB_INTERNAL_PORT": str(internal), "PROXY_API_PORT": str(proxy_api),
           "CHP": str(CHP), "HUB_DIR": str(workdir), "BROKER_TOKEN": token,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    log = open(workdir / "hub.log", "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen([str(hub), "-f", str(workdir / "jupyterhub_config.py")], cwd=workdir, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    if answers_within(f"{url}/hub/api/", 40):
        return RunningHub(url, token, process, workdir)
    process.kill()
    raise RuntimeError("JupyterHub did not start: " + (workdir / "hub.log").read_text()[-2000:])


def stop_hub(hub: RunningHub) -> None:
    hub.process.terminate()
    try:
        hub.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        hub.process.kill()


def module_hub(tmp_path_factory: pytest.TempPathFactory, extra_config: str = "") -> Iterator[RunningHub]:
    """A hub for the tests of one module, stopped after them: ``yield from`` it in a module-scoped fixture."""
    running = start_hub(tmp_path_factory.mktemp("hub"), extra_config)
    yield running
    stop_hub(running)


def hub_if_asked(request: Any) -> Any:
    """The module's real hub for a test that names ``hub`` among its fixtures (those are marked slow);
    otherwise an address where no hub answers, for the tests that never reach one: the fast subset then
    starts no JupyterHub."""
    if "hub" in request.fixturenames:
        return request.getfixturevalue("hub")
    return SimpleNamespace(url="http://127.0.0.1:9", token="no-hub-here")
