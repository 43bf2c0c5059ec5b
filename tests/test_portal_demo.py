"""Demo pieces the portal leads to: the simulated hub's Open lands on a page (not its API's 403)."""
from __future__ import annotations

import time

import requests

from demo import federation as sim


def test_the_simulated_hubs_server_url_shows_a_page_with_the_brokers_options():
    federation = sim.Federation()
    federation.add("hub", sim.jupyterhub(spawn_seconds=0.5))
    federation.start()
    try:
        base, auth = federation.url("hub"), {"Authorization": "token sim-hub-token"}
        assert requests.get(f"{base}/user/alice/pb-1/", timeout=5).status_code == 404  # not started
        requests.post(f"{base}/hub/api/users/alice", headers=auth, timeout=5)
        requests.post(f"{base}/hub/api/users/alice/servers/pb-1", headers=auth, timeout=5,
                      json={"dataset": "10.5291/ILL-DATA.9-13-612/0001", "cpus": 2})
        starting = requests.get(f"{base}/user/alice/pb-1/", timeout=5)
        assert starting.status_code == 503 and "not yet" in starting.text
        time.sleep(0.6)
        page = requests.get(f"{base}/user/alice/pb-1/lab", timeout=5)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert "JupyterLab" in page.text and "10.5291/ILL-DATA.9-13-612/0001" in page.text and "Simulated" in page.text
        assert "<script" not in page.text and "http" not in page.text.split("</head>")[1]  # nothing from elsewhere
    finally:
        federation.stop()
