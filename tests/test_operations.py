"""Operating the broker: `panbroker serve --workers`, settings errors in one line, a busy port refused
before anything is announced, Ctrl-C obeyed, JSON logs with request ids, a quiet scheduler, and API writes
carried by the session cookie refused from other sites."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from broker import logs
from broker.authz import Principal
from broker.registry_kinds import KINDS
from demo.federation import free_port
from tests.loopback import answers_within

CLI = Path(sys.executable).with_name("panbroker")


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PANBROKER_DATA_DIR": str(tmp_path / "data"), "PANBROKER_LOG_LEVEL": "WARNING", **extra}


def serve_now(tmp_path: Path, *args: str, **settings: str):  # noqa: ANN201 - click's Result
    from click.testing import CliRunner

    from panbroker.cli import main

    return CliRunner().invoke(main, ["serve", *args], env=env_for(tmp_path, **settings), catch_exceptions=False)


@pytest.mark.parametrize("setting, value, says", [
    ("PANBROKER_PORT", "eighty", "PANBROKER_PORT"), ("PANBROKER_OIDC_ISSUERS", '[{"name": ', "PANBROKER_OIDC_ISSUERS"),
    ("PANBROKER_LOG_FORMAT", "xml", "PANBROKER_LOG_FORMAT"), ("PANBROKER_ALLOWED_NETWORKS", "10.0.0/33", "ALLOWED"),
])
def test_a_bad_setting_is_one_line_and_touches_nothing(tmp_path, setting, value, says):  # noqa: ANN001
    done = serve_now(tmp_path, **{setting: value})
    assert done.exit_code == 1 and done.stderr.startswith("error: ") and says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "data" / "panbroker.db").exists()


def test_a_busy_port_is_refused_before_the_url_is_announced(tmp_path, caplog):  # noqa: ANN001
    import socket

    from broker import datalock

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = serve_now(tmp_path, "--port", str(port))
    datalock.release(tmp_path / "data")
    assert done.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "PaN Broker on" not in caplog.text + done.output


@pytest.mark.slow
def test_serve_with_two_workers_answers_refuses_a_second_broker_and_stops_on_ctrl_c(tmp_path):  # noqa: ANN001
    port = free_port()
    env = env_for(tmp_path, PANBROKER_LOG_LEVEL="INFO", PANBROKER_HEALTH_INTERVAL_SECONDS="3600")
    server = subprocess.Popen([str(CLI), "serve", "--port", str(port), "--workers", "2"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert answers_within(f"http://127.0.0.1:{port}/api/v1/facilities", 30)
        assert all(requests.get(f"http://127.0.0.1:{port}/api/v1/facilities", timeout=5).ok for _ in range(10))
        second = subprocess.run([str(CLI), "serve", "--port", str(free_port())], env=env_for(tmp_path),
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "in use by another panbroker (panbroker serve, pid" in second.stderr
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode is not None
    assert "2 worker processes" in output and "Traceback" not in output
    assert "Running job" not in output and "executed successfully" not in output  # the scheduler is quiet
    mode = (tmp_path / "data" / "panbroker.db").stat().st_mode
    assert mode & 0o077 == 0, oct(mode)


def test_json_logs_carry_the_request_id(sqlite_broker, capsys):  # noqa: ANN001
    from panbroker.app import create_app

    app = create_app(broker=sqlite_broker)
    logs.configure("INFO", "json")
    try:
        sqlite_broker.registry.create(Principal("t", admin=True), KINDS.facility,
                                      {"id": "ill", "name": "ILL", "country": "FR"})
        sqlite_broker.registry.create(Principal("t", admin=True), KINDS.search_endpoint, {
            "id": "gone", "facility_id": "ill", "kind": "panosc-search-api", "base_url": f"http://127.0.0.1:{free_port()}"})
        client = app.test_client()
        from tests.conftest import ADMIN

        response = client.post("/api/v1/harvest/jobs", json={"endpoint_id": "gone"},
                               headers={**ADMIN, "X-Request-Id": "req-7f3a"})
        assert response.headers["x-request-id"] == "req-7f3a"
        assert len(client.get("/api/v1/facilities").headers["x-request-id"]) == 32  # given one when none is sent
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
        harvest = [entry for entry in lines if entry["logger"] == "broker.harvest"]
        assert harvest and harvest[0]["request_id"] == "req-7f3a" and harvest[0]["level"] == "INFO"
        assert not logging.getLogger("apscheduler").isEnabledFor(logging.INFO)
    finally:
        logs.configure("WARNING", "text")


def test_api_writes_carried_by_the_session_cookie_must_come_from_this_site(sqlite_broker):  # noqa: ANN001
    from panbroker.app import create_app

    person = sqlite_broker.people.create(Principal("t", admin=True), {"display_name": "C", "identities": [
        {"issuer": "idp", "subject": "c"}]})
    client = create_app(broker=sqlite_broker).test_client()
    client.cookies.set("panbroker_session", sqlite_broker.auth.sessions.open(person["id"], "idp"))
    body = {"name": "script"}
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        refused = client.post("/api/v1/me/tokens", json=body, headers=headers)
        assert refused.status_code == 403 and "another site" in refused.json()["detail"], refused.text
    assert client.get("/api/v1/me/tokens").json()["items"] == []
    assert client.post("/api/v1/me/tokens", json=body, headers={"Origin": "http://testserver"}).status_code == 201
    assert client.post("/api/v1/me/tokens", json=body).status_code == 201  # no Origin: not a browser page
