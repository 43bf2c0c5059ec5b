"""Launches into a compute service on a bad day (demo/faults.py): a hub that refuses, hangs, drips, answers
5xx, garbage or a redirect elsewhere. Each launch ends failed with a plain reason within its start timeout,
and a launch into a healthy service beside it is not held up."""
from __future__ import annotations

import time

import pytest

from panbroker.app import build_broker
from broker.authz import Principal
from broker.registry_kinds import KINDS
from panmodel.datasets import Dataset
from demo.faults import FaultServer
from tests.conftest import make_settings

pytestmark = pytest.mark.slow  # each launch waits out its start timeout

ADMIN = Principal("test", admin=True)
START_TIMEOUT = 10


@pytest.fixture
def broker(tmp_path):  # noqa: ANN001, ANN201
    built = build_broker(make_settings(tmp_path, http_read_timeout=2.0, http_total_timeout=3.0))
    built.registry.create(ADMIN, KINDS.facility, {"id": "ill", "name": "ILL", "country": "FR",
                                                  "accepted_issuers": ["ill-idp"]})
    built.registry.create(ADMIN, KINDS.service, {"id": "ill-visa", "facility_id": "ill", "kind": "visa",
                                                 "title": "ILL VISA", "base_url": "https://visa.ill.example"})
    built.index.upsert([Dataset(pid="ill/1", facility="ill", title="SANS of lysozyme", source="ill-search")])
    built.index.commit()
    yield built
    built.index.close()


@pytest.mark.parametrize("mode", ["refuse", "hang", "drip", "5xx", "garbage", "redirect"])
def test_a_launch_into_a_faulty_hub_fails_plainly_within_its_start_timeout(broker, mode):  # noqa: ANN001
    with FaultServer(mode, rate=1.0) as hub:
        broker.registry.create(ADMIN, KINDS.service, {
            "id": "ill-hub", "facility_id": "ill", "kind": "jupyterhub", "title": "ILL hub", "base_url": hub.url,
            "launch_mode": "api", "credential": "hub-token",
            "connector_config": {"start_timeout_seconds": START_TIMEOUT}})
        created = broker.people.create(ADMIN, {"display_name": "Ada", "identities": [
            {"issuer": "ill-idp", "subject": "ada"}]})
        ada = Principal(f"person:{created['id']}")
        launch, _ = broker.launches.create(ada, f"fault-{mode}", {"dataset": "ill/1", "kind": "jupyterhub"})
        beside, _ = broker.launches.create(ada, f"visa-{mode}", {"dataset": "ill/1", "kind": "visa"})
        started = time.monotonic()
        slowest_step = 0.0
        state = launch
        while time.monotonic() - started < START_TIMEOUT + 15:
            step = time.monotonic()
            broker.launch_runner.advance()
            slowest_step = max(slowest_step, time.monotonic() - step)
            state = broker.launches.get(ada, launch["id"])
            if state["state"] in ("failed", "ready", "cancelled", "stopped"):
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        other = broker.launches.get(ada, beside["id"])
    assert state["state"] == "failed", state
    assert elapsed < START_TIMEOUT + 12, elapsed
    reason = (state.get("error") or "").lower()
    assert reason and "traceback" not in reason and "errno" not in reason, reason
    assert slowest_step < 2.0, f"the worker's loop waited {slowest_step:.1f} s on the faulty hub"
    assert other["state"] == "ready" and other["url"].startswith("https://visa.ill.example")
