"""`make demo` end to end: the broker and the simulated federation as a real process on loopback."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urljoin
from demo.federation import free_port, joining

import pytest
import requests

pytestmark = pytest.mark.slow  # the demo as a real process


def sign_in(web: requests.Session, url: str, login: str) -> requests.Response:
    """Through the demo's OpenID provider's development login and consent pages."""
    response = web.get(url, timeout=10)
    for _ in range(5):
        form = re.search(r'action="([^"]+)"', response.text)
        if not form:
            return response
        prompt = "login" if 'value="login"' in response.text else "consent"
        response = web.post(urljoin(response.url, form.group(1)), timeout=10,
                            data={"prompt": prompt, "login": login, "password": "any"})
    return response



def test_demo_serves_the_api_with_the_federation_registered_and_checked(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "PANBROKER_LOG_LEVEL": "WARNING"}
    cli = Path(sys.executable).with_name("panbroker")
    process = subprocess.Popen([str(cli), "demo", "--port", str(port), "--data-dir", str(tmp_path / "demo")],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        health = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"{base}/api/v1/health", timeout=2).json()
                if "unknown" not in health["counts"]:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        assert health is not None, "the demo did not start"
        # the demo's own services and endpoints, and one service of each kind a simulator brings in (joining())
        assert health["counts"] == {"up": 9 + len(joining()), "down": 1}, health
        down = [i["id"] for i in health["items"] if i["status"] == "down"]
        assert down == ["sim-ess-jupyterhub"]

        services = requests.get(f"{base}/api/v1/services", timeout=5).json()
        assert services["total"] == 6 + len(joining())
        assert all(s["base_url"].startswith("http://127.0.0.1:") for s in services["items"])
        assert requests.get(f"{base}/api/v1/ui/", timeout=5).status_code == 200
        page = requests.get(f"{base}/", timeout=5)  # the landing page: facilities by name, examples that find data
        assert page.status_code == 200 and "ILL (simulated)" in page.text and 'href="/search?q=SANS"' in page.text
        catalogue = requests.get(f"{base}/services", params={"status": "down"}, timeout=5).text
        assert "Not answering" in catalogue and "ESS JupyterHub" in catalogue  # health moved to the catalogue

        search = requests.get(f"{base}/api/v1/datasets", params={"q": "scattering", "size": 50}, timeout=10).json()
        assert {s["facility"] for s in search["sources"]} == {"sim-ill", "sim-esrf", "sim-ess", "sim-european-xfel"}
        assert len({b["value"] for b in search["facets"]["facility"]}) >= 3  # XFEL runs no scattering technique
        assert search["total"] > 50 and not search["partial"]
        live = requests.get(f"{base}/api/v1/datasets", params={"mode": "live"}, timeout=10).json()
        assert live["total"] == 1200 and {s["status"] for s in live["sources"]} == {"ok"}

        # a second demo on the same folder is refused and changes nothing; a command-line harvest asks its worker
        second_port = free_port()
        second = subprocess.run([str(cli), "demo", "--port", str(second_port), "--data-dir", str(tmp_path / "demo")],
                                env=env, capture_output=True, text=True, timeout=30)
        assert second.returncode == 1 and "in use by another panbroker (panbroker demo" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1, second.stderr  # one line, no traceback
        harvest = subprocess.run([str(cli), "harvest", "run", "sim-ill-search"], capture_output=True, text=True,
                                 timeout=60, env={**env, "PANBROKER_DATA_DIR": str(tmp_path / "demo")})
        assert harvest.returncode == 0 and "asking its worker" in harvest.stderr, harvest.stderr + harvest.stdout
        assert "succeeded" in harvest.stdout and "sim-ill-search" in harvest.stdout  # run by the demo's worker
        assert requests.get(f"{base}/api/v1/services", timeout=5).json()["items"] == services["items"]
        loose = [p for p in (tmp_path / "demo").rglob("*") if p.stat().st_mode & 0o077]
        assert loose == [], f"readable by others: {loose[:5]}"

        token = (tmp_path / "demo" / "admin-token").read_text().strip()
        created = requests.post(f"{base}/api/v1/facilities", json={"id": "new", "name": "New", "country": "IT"},
                                headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert created.status_code == 201
        # journey 1 in the demo: a real OpenID sign-in, then analyse a dataset in the simulated ILL hub
        web = requests.Session()
        landed = sign_in(web, f"{base}/auth/login/demo-idp?next=/api/v1/me", "alice")
        assert landed.json()["launch_facilities"] == ["sim-egi", "sim-esrf", "sim-ess", "sim-european-xfel", "sim-ill"]
        dataset = next(d for d in search["items"] if d["facility"] == "sim-ill")
        launch = web.post(f"{base}/api/v1/launches", json={"dataset": dataset["pid"], "kind": "jupyterhub"},
                          headers={"Idempotency-Key": "demo-1"}, timeout=10)
        assert launch.status_code == 201, launch.text
        for _ in range(40):
            state = web.get(f"{base}/api/v1/launches/{launch.json()['id']}", timeout=5).json()
            if state["state"] in ("ready", "failed"):
                break
            time.sleep(0.5)
        assert state["state"] == "ready" and state["url"].startswith("http://127.0.0.1:"), state
        opened = requests.get(state["url"], timeout=5)  # "Open" lands on a page standing in for JupyterLab
        assert opened.status_code == 200 and "JupyterLab" in opened.text and dataset["pid"] in opened.text

        # the portal over the demo: search from the index, a dataset page, the catalogue, an operator
        page = web.get(f"{base}/search", params={"q": "scattering"}, timeout=10)
        assert page.status_code == 200 and "sim-ill" in page.text and "Refine" in page.text
        page = web.get(f"{base}/datasets/{dataset['pid']}", timeout=10)
        assert page.status_code == 200 and "Analyse" in page.text
        assert "EGI Binder (simulated)" in web.get(f"{base}/services", timeout=10).text
        operator = requests.Session()
        landed = sign_in(operator, f"{base}/auth/login/demo-idp?next=/api/v1/me", "op-sim-ill-olga")
        assert landed.json()["operator_of"] == ["sim-ill"]
        console = operator.get(f"{base}/operator", timeout=10)
        assert console.url.endswith("/operator/sim-ill") and "Register a service" in console.text
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    assert "Swagger UI" in output and f"{base}/api/v1/ui/" in output
