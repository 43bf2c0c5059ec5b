"""Launches into a real JupyterHub that misbehaves on purpose: slow spawns (longer than the hub's
slow_spawn_timeout, and longer than the broker's start timeout), spawns that fail, a hub at its
concurrent spawn limit (429 with Retry-After), a hub that is down, and the broker killed with
SIGKILL in the middle of a spawn.

The hub's pre-spawn hook reads the launch's ``profile`` option: ``slow-<seconds>`` sleeps that long
before the server starts, ``broken`` makes the spawn fail."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from panbroker.app import build_broker
from broker.authz import Principal
from broker.registry_kinds import KINDS
from panmodel.datasets import Dataset
from demo.federation import free_port
from tests.conftest import make_settings
from tests.jupyterhub_fixture import module_hub
from tests.loopback import answers_within
from tests.test_launch import person, run_to_end

ADMIN = Principal("test", admin=True)

pytestmark = pytest.mark.slow  # a real JupyterHub, spawns that take seconds

MISBEHAVING = '''
import asyncio
async def _pre_spawn(spawner):
    profile = str(spawner.user_options.get("profile", ""))
    if profile == "broken":
        raise RuntimeError("the scratch volume could not be mounted")
    if profile.startswith("slow-"):
        await asyncio.sleep(float(profile.removeprefix("slow-")))
c.Spawner.pre_spawn_hook = _pre_spawn
# (this hub has no spawn_throttle_retry_range option: the setting goes in through tornado_settings)
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 1, "spawn_throttle_retry_range": (1, 3)}
c.JupyterHub.concurrent_spawn_limit = 2
'''


@pytest.fixture(scope="module")
def hub(tmp_path_factory):  # noqa: ANN001, ANN201
    yield from module_hub(tmp_path_factory, MISBEHAVING)


def registered(settings, hub_url: str, token: str, **config):  # noqa: ANN001, ANN003, ANN201
    built = build_broker(settings)
    built.registry.create(ADMIN, KINDS.facility, {"id": "ill", "name": "ILL", "country": "FR",
                                                  "accepted_issuers": ["ill-idp"]})
    built.registry.create(ADMIN, KINDS.service, {
        "id": "ill-hub", "facility_id": "ill", "kind": "jupyterhub", "title": "ILL hub", "base_url": hub_url,
        "launch_mode": "api", "credential": token, "capabilities": {"max_cpus": 8},
        "connector_config": {"start_timeout_seconds": 60, **config}})
    built.index.upsert([Dataset(pid=f"ill/run-{n}", facility="ill", title=f"Run {n}", source="ill-search")
                        for n in range(8)])
    built.index.commit()
    return built


@pytest.fixture
def broker(hub, tmp_path):  # noqa: ANN001, ANN201
    built = registered(make_settings(tmp_path), hub.url, hub.token)
    yield built
    built.index.close()


def launch(broker, who, key: str, dataset: str, profile: str | None = None):  # noqa: ANN001, ANN201
    resources = {"profile": profile} if profile else {}
    return broker.launches.create(who, key, {"dataset": dataset, "resources": resources})[0]


def test_a_spawn_slower_than_the_hubs_slow_spawn_timeout_is_followed_to_ready(broker, hub):  # noqa: ANN001
    ivy = person(broker, "Ivy")
    started = launch(broker, ivy, "slow", "ill/run-0", "slow-4")
    done = run_to_end(broker, started["id"], ivy, seconds=60)
    assert done["state"] == "ready", done
    assert requests.get(done["url"], timeout=5, allow_redirects=False).status_code in (200, 302)
    messages = [e["message"] for e in broker.launches.events(ivy, started["id"])]
    # the hub's own progress stream was followed: its messages reach the user, with a percentage
    assert any("%)" in m for m in messages), messages
    assert len(hub.api("/users/ivy").json()["servers"]) == 1
    broker.launches.cancel(ivy, started["id"])


def test_a_failing_spawn_ends_failed_with_the_hubs_reason(broker):  # noqa: ANN001
    jay = person(broker, "Jay")
    started = launch(broker, jay, "broken", "ill/run-1", "broken")
    done = run_to_end(broker, started["id"], jay, seconds=30)
    assert done["state"] == "failed"
    assert "scratch volume could not be mounted" in done["error"], done["error"]


def test_a_spawn_longer_than_the_start_timeout_fails_and_is_stopped(hub, tmp_path):  # noqa: ANN001
    broker = registered(make_settings(tmp_path), hub.url, hub.token, start_timeout_seconds=10)
    kim = person(broker, "Kim")
    started = launch(broker, kim, "too-slow", "ill/run-2", "slow-25")
    done = run_to_end(broker, started["id"], kim, seconds=40)
    assert done["state"] == "failed" and "did not start the session in time" in done["error"]
    deadline = time.monotonic() + 30  # the broker asked the hub to stop the spawn it gave up on
    while hub.api("/users/kim").json()["servers"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert hub.api("/users/kim").json()["servers"] == {}
    broker.index.close()


def test_a_hub_at_its_spawn_limit_makes_launches_wait_and_lowers_the_bound(hub, tmp_path):  # noqa: ANN001
    """The hub lets 2 spawns run at once and answers 429 with Retry-After to the rest; the broker was
    configured to let 6 in flight, learns from the 429s to send fewer, and every launch ends ready."""
    broker = registered(make_settings(tmp_path), hub.url, hub.token, max_concurrent_spawns=6)
    lee = person(broker, "Lee")
    launches = [launch(broker, lee, f"busy-{n}", f"ill/run-{n}", "slow-3") for n in range(6)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        broker.launch_runner.advance()
        states = [broker.launches.get(lee, x["id"])["state"] for x in launches]
        if all(s in ("ready", "failed") for s in states):
            break
        time.sleep(0.3)
    assert states == ["ready"] * 6, [[e["message"] for e in broker.launches.events(lee, x["id"])]
                                     for x in launches if broker.launches.get(lee, x["id"])["state"] != "ready"]
    messages = [e["message"] for x in launches for e in broker.launches.events(lee, x["id"])]
    assert any("busy" in m for m in messages), messages
    assert broker.launch_runner.bounds.bound("ill-hub", 6) < 6
    assert len(hub.api("/users/lee").json()["servers"]) == 6
    for x in launches:
        broker.launches.cancel(lee, x["id"])
    broker.index.close()


def test_a_hub_that_is_down_ends_failed_naming_the_fault(tmp_path):  # noqa: ANN001
    broker = registered(make_settings(tmp_path), f"http://127.0.0.1:{free_port()}", "unused",
                        start_timeout_seconds=10)
    mia = person(broker, "Mia")
    started = launch(broker, mia, "down", "ill/run-3")
    done = run_to_end(broker, started["id"], mia, seconds=30)
    assert done["state"] == "failed" and "did not start the session in time" in done["error"]
    assert "refused" in done["error"] or "consecutive failures" in done["error"], done["error"]
    broker.index.close()


def test_kill_9_mid_spawn_then_restart_ends_with_one_server_and_one_launch(hub, tmp_path):  # noqa: ANN001
    settings = make_settings(tmp_path)
    prepared = registered(settings, hub.url, hub.token)
    ned = person(prepared, "Ned")
    token = prepared.people.issue_token(ADMIN, ned.subject.removeprefix("person:"), {"name": "t"})["token"]
    prepared.index.close()
    prepared.store.engine.dispose()
    auth = {"Authorization": f"Bearer {token}"}

    env = {**os.environ, "PANBROKER_DATA_DIR": str(settings.data_dir), "PANBROKER_DATABASE_URL":
           settings.effective_database_url, "PANBROKER_LOG_LEVEL": "WARNING", "PANBROKER_LAUNCH_POLL_SECONDS": "1",
           "PANBROKER_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128", "PANBROKER_ADMIN_TOKEN": settings.admin_token}
    base = ""

    def serve() -> subprocess.Popen:
        """The broker as a process; on a port another process took meanwhile, again on another one."""
        nonlocal base
        for attempt in range(3):
            port, log = free_port(), tmp_path / f"serve-{attempt}.log"
            with log.open("wb") as output:
                process = subprocess.Popen([str(Path(sys.executable).with_name("panbroker")), "serve", "--port",
                                            str(port)], env=env, stdout=output, stderr=subprocess.STDOUT)
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60  # a start on a loaded two-core machine took over 20 s
            while time.monotonic() < deadline and process.poll() is None:
                if answers_within(f"{base}/api/v1/health", 1):
                    return process
            process.kill()
            process.wait()
            if "address already in use" not in log.read_text(errors="replace").lower():
                break
        raise AssertionError(f"the broker did not start:\n{log.read_text(errors='replace')[-3000:]}")

    def state(launch_id: str) -> dict:
        return requests.get(f"{base}/api/v1/launches/{launch_id}", headers=auth, timeout=5).json()

    first = serve()
    try:
        created = requests.post(f"{base}/api/v1/launches", headers={**auth, "Idempotency-Key": "crash"}, timeout=10,
                                json={"dataset": "ill/run-4", "resources": {"profile": "slow-6"}})
        assert created.status_code == 201, created.text
        launch_id = created.json()["id"]
        deadline = time.monotonic() + 30
        while state(launch_id)["state"] not in ("submitted", "starting") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert state(launch_id)["state"] in ("submitted", "starting")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    second = serve()
    try:
        deadline = time.monotonic() + 60
        while state(launch_id)["state"] not in ("ready", "failed") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert state(launch_id)["state"] == "ready", state(launch_id)
        again = requests.post(f"{base}/api/v1/launches", headers={**auth, "Idempotency-Key": "crash"}, timeout=10,
                              json={"dataset": "ill/run-4", "resources": {"profile": "slow-6"}})
        assert again.status_code == 200 and again.json()["id"] == launch_id
        assert requests.get(f"{base}/api/v1/launches", headers=auth, timeout=5).json()["total"] == 1
        assert len(hub.api("/users/ned").json()["servers"]) == 1
        requests.delete(f"{base}/api/v1/launches/{launch_id}", headers=auth, timeout=30)
    finally:
        second.terminate()
        second.wait(timeout=15)


def test_a_cancel_during_the_start_is_final_and_the_server_is_gone(broker, hub):  # noqa: ANN001
    """JupyterHub reports an interrupted pending spawn as ready on its progress stream: the cancel,
    recorded first, still wins."""
    ola = person(broker, "Ola")
    started = launch(broker, ola, "cancel", "ill/run-5", "slow-4")
    deadline = time.monotonic() + 20
    while broker.launches.get(ola, started["id"])["state"] != "starting" and time.monotonic() < deadline:
        broker.launch_runner.advance()
        time.sleep(0.2)
    assert broker.launches.get(ola, started["id"])["state"] == "starting"
    assert broker.launches.cancel(ola, started["id"])["state"] == "cancelled"
    for _ in range(20):  # the follower's stream ends; a late "ready" must not revive the launch
        broker.launch_runner.advance()
        time.sleep(0.3)
    broker.launch_runner.wait_for_steps()
    assert broker.launches.get(ola, started["id"])["state"] == "cancelled"
    assert "ready" not in [e["state"] for e in broker.launches.events(ola, started["id"])]
    deadline = time.monotonic() + 15
    while hub.api("/users/ola").json()["servers"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert hub.api("/users/ola").json()["servers"] == {}


def test_a_refused_request_fails_alone_and_leaves_the_admission_bound(broker):  # noqa: ANN001
    """The hub's spawner refuses the request (its pre-spawn hook fails): not overload."""
    pat = person(broker, "Pat")
    for n in range(2):
        done = run_to_end(broker, launch(broker, pat, f"refused-{n}", f"ill/run-{6 + n}", "broken")["id"], pat)
        assert done["state"] == "failed" and "scratch volume" in done["error"]
    assert broker.launch_runner.bounds.bound("ill-hub", 4) == 4
