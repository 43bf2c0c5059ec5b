"""Scale-out on PostgreSQL: replicas and workers coordinated through the database alone.

The primitives (fast): concurrent migrations run once under a lock; a scheduled job's slot is claimed by
one worker; a launch's lease is held by one worker and taken over when it lapses.

The deployment (slow, separate processes on loopback): two ``serve --no-worker`` replicas and two
``panbroker worker`` processes against a real JupyterHub; a launch created on replica A is followed to
ready through replica B's event stream while the worker following it is killed with SIGKILL; a
scheduled harvest runs once across both workers; a rolling restart of the replicas loses no request.

Needs PANBROKER_TEST_DATABASE_URL (each run creates its own databases and drops only those).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
import requests
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from panbroker.app import build_broker
from broker.authz import Principal
from broker.coordination import Coordinator, interval_slot
from broker.registry_kinds import KINDS
from demo import federation as sim
from demo.catalogue import generate
from demo.es_simulator import SimulatedElasticsearch
from registry.models import HarvestJob, Launch, ScheduledRun
from registry.store import make_engine, migrate, schema_is_current
from tests.conftest import PG_URL, make_settings
from tests.jupyterhub_fixture import start_hub, stop_hub
from tests.loopback import answers_within
from tests.test_launch_faults import MISBEHAVING

ADMIN = Principal("test", admin=True)
LEASE_SECONDS = 3
PANBROKER = str(Path(sys.executable).with_name("panbroker"))


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """An empty database of this test's own, dropped after it."""
    if not PG_URL:
        pytest.skip("PANBROKER_TEST_DATABASE_URL is not set: the scale-out tests are SKIPPED")
    name = f"panbroker_scale_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- the primitives ---------------------------------------------------------------------------------
def test_processes_starting_together_migrate_the_schema_once(fresh_database):  # noqa: ANN001
    engines = [make_engine(fresh_database) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:  # without the lock two of them create the same tables and fail
        list(pool.map(migrate, engines))
    assert all(schema_is_current(e) for e in engines)
    for engine in engines:
        engine.dispose()


def test_a_scheduled_slot_is_run_by_one_worker_and_a_lapsed_lease_is_taken_over(fresh_database, tmp_path):  # noqa: ANN001
    one = build_broker(make_settings(tmp_path / "one", fresh_database, launch_lease_seconds=1))
    two = build_broker(make_settings(tmp_path / "two", fresh_database, launch_lease_seconds=1))
    try:
        first, second = Coordinator(one.store, "one"), Coordinator(two.store, "two")
        slot = interval_slot(300)
        assert [first.claim("health-checks", slot), second.claim("health-checks", slot)] == [True, False]
        with first.exclusive("harvest:ill-search") as held, second.exclusive("harvest:ill-search") as also:
            assert held and not also and second.held_elsewhere("harvest:ill-search")
        assert not second.held_elsewhere("harvest:ill-search")  # released with the block

        person_id = one.people.create(ADMIN, {"display_name": "Lea", "identities": [{"issuer": "i", "subject": "lea"}]})["id"]
        with one.store.session() as session:
            session.add(Launch(id="l-1", person_id=person_id, idempotency_key="k", fingerprint="f", request={},
                               dataset_pid="ill/1", state="starting", decision=[]))
        records_one, records_two = one.launches.records, two.launches.records
        assert records_one.claim("l-1", "one", 1) and not records_two.claim("l-1", "two", 1)
        assert records_one.renew({"l-1"}, "one", 1) == {"l-1"}
        time.sleep(1.2)  # "one" stopped renewing (killed)
        assert records_two.claim("l-1", "two", 1)
        assert records_one.renew({"l-1"}, "one", 1) == set()  # "one" learns it lost the launch
    finally:
        for built in (one, two):
            built.index.close()
            built.store.engine.dispose()


# -- the deployment -----------------------------------------------------------------------------------
@dataclass
class Deployment:
    env: dict[str, str]
    tmp: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> None:
        env = {**self.env, "PANBROKER_DATA_DIR": str(self.tmp / name)}
        log = open(self.tmp / f"{name}.log", "a")  # noqa: SIM115 - closed with the process
        self.processes[name] = subprocess.Popen([PANBROKER, *args], env=env, stdout=log, stderr=subprocess.STDOUT)

    def serve(self, name: str) -> None:
        self.ports.setdefault(name, sim.free_port())
        self.start(name, "serve", "--no-worker", "--workers", "1", "--port", str(self.ports[name]))

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def wait_ready(self, name: str) -> None:
        if not answers_within(f"{self.url(name)}/api/v1/health", 90):
            raise AssertionError(f"{name} did not start: " + (self.tmp / f"{name}.log").read_text()[-3000:])

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes[name]
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is None:
                self.stop(name)


def _prepare(database: str, settings_dir: Path, hub, fed, env: dict[str, str]) -> str:  # noqa: ANN001
    """The registry (a hub, a deep-link desktop, a search endpoint harvested every minute) and a person's
    API token."""
    settings = make_settings(settings_dir, database, elasticsearch_url=env["PANBROKER_ELASTICSEARCH_URL"],
                             encryption_keys=env["PANBROKER_ENCRYPTION_KEYS"])
    built = build_broker(settings)  # migrates the fresh database
    reg = built.registry
    reg.create(ADMIN, KINDS.facility, {"id": "ill", "name": "ILL", "country": "FR", "accepted_issuers": ["ill-idp"]})
    reg.create(ADMIN, KINDS.service, {"id": "ill-hub", "facility_id": "ill", "kind": "jupyterhub", "title": "ILL hub",
                                      "base_url": hub.url, "launch_mode": "api", "credential": hub.token,
                                      "capabilities": {"max_cpus": 8}, "connector_config": {"start_timeout_seconds": 60}})
    reg.create(ADMIN, KINDS.service, {"id": "ill-desk", "facility_id": "ill", "kind": "remote-desktop",
                                      "title": "ILL desktop", "base_url": fed.url("desk")})
    reg.create(ADMIN, KINDS.search_endpoint, {"id": "ill-search", "facility_id": "ill", "kind": "panosc-search-api",
                                              "base_url": fed.url("ill"), "harvest_schedule": "* * * * *"})
    person = built.people.create(ADMIN, {"display_name": "Ned", "identities": [{"issuer": "ill-idp", "subject": "ned"}]})
    token = built.people.issue_token(ADMIN, person["id"], {"name": "scale-out"})["token"]
    built.index.close()
    built.store.engine.dispose()
    return token


def _follow_stream(url: str, auth: dict, seen: list[str]) -> None:
    with requests.get(url, headers=auth, stream=True, timeout=(5, 90)) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line and line.startswith("event: "):
                seen.append(line.removeprefix("event: "))


def _with_retry(deployment: Deployment, method: str, path: str, **kwargs) -> requests.Response:  # noqa: ANN003
    """What a client behind a load balancer does: a refused connection or a 502-503 is sent again,
    unchanged (same Idempotency-Key), to the other replica."""
    for attempt in range(40):
        name = ("a", "b")[attempt % 2]
        try:
            response = requests.request(method, deployment.url(name) + path, timeout=15, **kwargs)
        except requests.ConnectionError:
            time.sleep(0.1)
            continue
        if response.status_code not in (502, 503):
            return response
    raise AssertionError(f"{method} {path} never answered")


@pytest.mark.slow
def test_replicas_and_workers_share_launches_harvests_and_survive_kills_and_restarts(fresh_database, tmp_path):  # noqa: ANN001, C901
    hub = start_hub(tmp_path / "hub", MISBEHAVING)
    records = generate("sim-ill", 20)
    fed = sim.Federation()
    fed.add("ill", sim.panosc_search_api("sim-ill", records))
    fed.add("desk", sim.desktop_gateway("Desk"))
    fed.add("es", SimulatedElasticsearch())
    fed.start()
    env = {**os.environ, "PANBROKER_DATABASE_URL": fresh_database, "PANBROKER_ELASTICSEARCH_URL": fed.url("es"),
           "PANBROKER_ENCRYPTION_KEYS": Fernet.generate_key().decode(), "PANBROKER_LOG_LEVEL": "INFO",
           "PANBROKER_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128", "PANBROKER_LAUNCH_POLL_SECONDS": "1",
           "PANBROKER_LAUNCH_LEASE_SECONDS": str(LEASE_SECONDS), "PANBROKER_HTTP_RETRIES": "0"}
    deployment = Deployment(env, tmp_path)
    engine = create_engine(fresh_database)
    try:
        token = _prepare(fresh_database, tmp_path / "setup", hub, fed, env)
        auth = {"Authorization": f"Bearer {token}"}
        for name in ("a", "b"):
            deployment.serve(name)
        for name in ("w1", "w2"):
            deployment.start(name, "worker")
        for name in ("a", "b"):
            deployment.wait_ready(name)

        # a launch created on replica A, followed through replica B's event stream
        created = requests.post(f"{deployment.url('a')}/api/v1/launches", timeout=30, json={
            "dataset": records[0]["pid"], "service_id": "ill-hub", "resources": {"profile": "slow-8"}},
            headers={**auth, "Idempotency-Key": "scale-1"})
        assert created.status_code == 201, created.text
        launch_id = created.json()["id"]
        seen: list[str] = []
        stream = threading.Thread(target=_follow_stream, daemon=True, args=(
            f"{deployment.url('b')}/api/v1/launches/{launch_id}/events?format=sse", auth, seen))
        stream.start()

        def lease() -> tuple[str | None, str]:
            with engine.connect() as conn:
                row = conn.execute(select(Launch.lease_holder, Launch.state).where(Launch.id == launch_id)).one()
            return row.lease_holder, row.state

        deadline = time.monotonic() + 30
        while lease()[1] not in ("starting", "waiting") and time.monotonic() < deadline:
            time.sleep(0.1)
        holder, state = lease()
        assert state in ("starting", "waiting") and holder, (holder, state)
        victim = next(n for n in ("w1", "w2") if f":{deployment.processes[n].pid}:" in holder)
        deployment.stop(victim, signal.SIGKILL)
        killed = time.monotonic()
        while lease()[0] in (holder,) and time.monotonic() < killed + 30:
            time.sleep(0.05)
        taken_over = time.monotonic() - killed
        print(f"\nlapsed lease taken over {taken_over:.2f} s after kill -9 "
              f"(lease {LEASE_SECONDS} s, poll 1 s)")
        assert lease()[0] not in (None, holder) or lease()[1] == "ready"
        assert taken_over < LEASE_SECONDS + 3
        deployment.start(victim, "worker")  # back for the scheduled harvest below: both workers run it
        stream.join(timeout=40)
        assert lease()[1] == "ready", (lease(), seen)
        assert seen[-1] == "ready" and "starting" in seen, seen
        assert len(hub.api("/users/ned").json()["servers"]) == 1  # the take-over started no second server

        # a rolling restart of the replicas loses no request (clients retry idempotently)
        results: list[int] = []
        stop_client = threading.Event()

        def client() -> None:
            n = 0
            while not stop_client.is_set():
                n += 1
                answer = _with_retry(deployment, "POST", "/api/v1/launches", json={
                    "dataset": records[1 + n % 5]["pid"], "service_id": "ill-desk"},
                    headers={**auth, "Idempotency-Key": f"roll-{n}"})
                results.append(answer.status_code)
                results.append(_with_retry(deployment, "GET", f"/api/v1/launches/{answer.json()['id']}",
                                           headers=auth).status_code)

        running = threading.Thread(target=client, daemon=True)
        running.start()
        # new replicas come up beside the old ones, then the old ones stop one after the other
        old = dict(deployment.ports)
        for name in ("a", "b"):
            deployment.ports[f"new-{name}"] = sim.free_port()
            deployment.serve(f"new-{name}")
        for name in ("a", "b"):
            deployment.wait_ready(f"new-{name}")
        for name in ("a", "b"):
            deployment.stop(name)  # SIGTERM: requests in flight are finished, new ones go to the other
            deployment.ports[name] = deployment.ports[f"new-{name}"]
            time.sleep(0.5)
        stop_client.set()
        running.join(timeout=60)
        assert old != {k: deployment.ports[k] for k in old}
        keys = len(results[0::2])
        assert results and set(results[0::2]) <= {200, 201} and set(results[1::2]) == {200}, results
        with engine.connect() as conn:
            rolled = conn.execute(select(func.count()).select_from(Launch).where(
                Launch.idempotency_key.like("roll-%"))).scalar()
        assert rolled == keys  # each request made one launch, retried or not

        # the scheduled harvest: every minute, in one of the two workers
        deadline = time.monotonic() + 75
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                slots = conn.execute(select(ScheduledRun.slot_at).where(ScheduledRun.job_id == "harvest:ill-search")).all()
                harvests = conn.execute(select(func.count()).select_from(HarvestJob).where(
                    HarvestJob.state != "running")).scalar()
            if slots and harvests >= len(slots):
                break
            time.sleep(0.5)
        assert slots and harvests == len(slots), (slots, harvests)
        requests.delete(f"{deployment.url('a')}/api/v1/launches/{launch_id}", headers=auth, timeout=30)
    finally:
        deployment.stop_all()
        fed.stop()
        stop_hub(hub)
        engine.dispose()
        for name in ("w1", "w2", "a", "b"):
            log = tmp_path / f"{name}.log"
            if log.exists() and "Traceback" in log.read_text():
                print(f"--- {name}.log ---\n" + log.read_text()[-4000:])
