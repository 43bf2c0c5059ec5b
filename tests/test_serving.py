"""The serving model under a real server (uvicorn, as `panbroker serve` runs it): event streams hold
no request thread and end when their client goes; per-client limits answer at once with Retry-After;
a lookup asking a hung facility ends by the live deadline."""
from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import uvicorn

from panbroker.app import build_broker, create_app
from broker.authz import Principal
from broker.registry_kinds import KINDS
from demo.faults import FaultServer
from demo.federation import free_port
from registry.models import Launch
from tests.conftest import make_settings
from tests.loopback import answers_within

ADMIN = Principal("test", admin=True)


@pytest.fixture
def served(tmp_path):  # noqa: ANN001, ANN201
    """The broker under uvicorn with only four request threads (a2wsgi's default was ten)."""
    broker = build_broker(make_settings(tmp_path, request_threads=4, search_deadline_seconds=1.0,
                                        max_streams_per_client=3, max_searches_per_client=2))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(broker=broker), host="127.0.0.1", port=port,
                                           log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    assert answers_within(base + "/api/v1/facilities", 15)
    yield broker, base
    server.should_exit = True
    thread.join(timeout=10)
    broker.index.close()


def user_with_a_starting_launch(broker) -> tuple[dict, str]:  # noqa: ANN001
    person = broker.people.create(ADMIN, {"display_name": "S", "identities": [
        {"issuer": "t", "subject": uuid.uuid4().hex}]})
    token = broker.people.issue_token(ADMIN, person["id"], {"name": "t"})["token"]
    launch_id = str(uuid.uuid4())
    with broker.store.session() as session:
        session.add(Launch(id=launch_id, person_id=person["id"], idempotency_key=launch_id, fingerprint="f",
                           request={}, dataset_pid="x", state="starting"))
    return {"Authorization": f"Bearer {token}"}, launch_id


def open_stream(base: str, auth: dict, launch_id: str) -> requests.Response:
    return requests.get(f"{base}/api/v1/launches/{launch_id}/events", headers=auth, stream=True, timeout=5)


def test_open_event_streams_hold_no_request_thread_and_over_the_limit_get_a_fast_429(served):  # noqa: ANN001
    broker, base = served
    users = [user_with_a_starting_launch(broker) for _ in range(5)]
    streams = [open_stream(base, auth, launch) for auth, launch in users for _ in range(3)]  # 15 > 4 threads
    assert all(s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream") for s in streams)
    for _ in range(5):
        started = time.monotonic()
        assert requests.get(f"{base}/api/v1/facilities", timeout=5).status_code == 200
        assert time.monotonic() - started < 0.5
    started = time.monotonic()
    fourth = open_stream(base, *users[0])
    assert fourth.status_code == 429 and int(fourth.headers["retry-after"]) > 0
    assert time.monotonic() - started < 0.5
    for stream in streams[:3]:  # the first user goes away: their streams end and free their places
        stream.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        again = open_stream(base, *users[0])
        if again.status_code == 200:
            break
        time.sleep(0.2)
    assert again.status_code == 200
    for stream in [*streams, again]:
        stream.close()


def test_a_stream_ends_when_the_launch_is_final(served):  # noqa: ANN001
    broker, base = served
    auth, launch_id = user_with_a_starting_launch(broker)
    with broker.store.session() as session:
        session.get(Launch, launch_id).state = "ready"
    started = time.monotonic()
    response = requests.get(f"{base}/api/v1/launches/{launch_id}/events", headers=auth, timeout=5)
    assert response.status_code == 200 and time.monotonic() - started < 2
    assert requests.get(f"{base}/api/v1/launches/{launch_id}/events", timeout=5).status_code == 401
    other, _ = user_with_a_starting_launch(broker)
    assert requests.get(f"{base}/api/v1/launches/{launch_id}/events", headers=other, timeout=5).status_code == 404


def test_lookups_asking_a_hung_facility_end_by_the_deadline_and_one_client_cannot_run_many(served):  # noqa: ANN001
    broker, base = served
    with FaultServer("hang") as hung:
        broker.registry.create(ADMIN, KINDS.facility, {"id": "hung", "name": "Hung", "country": "FR"})
        broker.registry.create(ADMIN, KINDS.search_endpoint, {"id": "hung-search", "facility_id": "hung",
                                                              "kind": "panosc-search-api", "base_url": hung.url})

        def lookup(i: int) -> tuple[int, float]:
            started = time.monotonic()
            status = requests.get(f"{base}/api/v1/datasets/10.5072/unknown-{i}", timeout=10).status_code
            return status, time.monotonic() - started

        with ThreadPoolExecutor(6) as pool:
            outcomes = list(pool.map(lookup, range(6)))
        statuses = sorted(status for status, _ in outcomes)
        assert statuses.count(404) >= 2 and set(statuses) <= {404, 429}, outcomes
        assert 429 in statuses  # two at once per client; the others are told at once
        assert max(elapsed for _, elapsed in outcomes) < 1.0 + 1.0, outcomes
        assert all(elapsed < 0.5 for status, elapsed in outcomes if status == 429)
        started = time.monotonic()
        assert requests.get(f"{base}/api/v1/facilities", timeout=5).status_code == 200
        assert time.monotonic() - started < 0.5
