"""A facility on a bad day (demo/faults.py: refused, hung, 5xx, garbage, oversized, dripping at 1 byte/s,
redirecting elsewhere, empty): each fault ends a call within its deadline, is counted by the breaker
when retrying it would only repeat it, and costs only that facility's answers; calls to one facility run
concurrently up to a bound."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from broker.authz import Principal
from broker.registry_kinds import KINDS
from panmodel.datasets import SourceState
from broker.search.service import parse_query
from broker.settings import loopback_networks
from connectors.errors import (
    CircuitOpen,
    EndpointBusy,
    UpstreamBadResponse,
    UpstreamTimeout,
    UpstreamTooLarge,
    UpstreamUnavailable,
)
from connectors.http import HttpClient, HttpLimits, json_body
from connectors.ssrf import AddressPolicy
from demo import federation as sim
from demo.catalogue import generate
from demo.faults import FaultServer
from tests.conftest import make_settings
from tests.loopback import serve, slow

ACTOR = Principal("test", admin=True)


def client(**limits) -> HttpClient:  # noqa: ANN003
    values = dict(connect_timeout=0.5, read_timeout=1.0, total_timeout=1.5, retries=0, breaker_fail_max=2,
                  breaker_reset_seconds=60, max_response_bytes=100_000)
    values.update(limits)
    return HttpClient(AddressPolicy(loopback_networks()), HttpLimits(**values))


# mode -> (what a caller of get() + json_body() sees, whether the breaker counts it)
FAULTS = {
    "refuse": (UpstreamUnavailable, True),
    "hang": (UpstreamTimeout, True),
    "5xx": (None, True),  # handed back as a response (the caller reads the status), counted
    "oversize": (UpstreamTooLarge, True),
    "drip": (UpstreamTimeout, True),
    "garbage": (UpstreamBadResponse, False),  # the peer answers: retrying soon will not help, nor hurt it
    "redirect": (UpstreamBadResponse, False),
    "empty": (None, False),
}


@pytest.mark.parametrize("mode", sorted(FAULTS))
def test_each_fault_ends_within_the_deadline_and_repeating_ones_open_the_circuit(mode):  # noqa: ANN001
    raised, counted = FAULTS[mode]
    http = client()
    with FaultServer(mode) as facility:
        for _ in range(2):
            started = time.monotonic()
            if raised is None:
                json_body(http.get(facility.url + "/Datasets"))
            else:
                with pytest.raises(raised):
                    json_body(http.get(facility.url + "/Datasets"))
            assert time.monotonic() - started < 1.5 + 0.5, f"{mode} held the call past its deadline"
        asked = facility.requests
        if counted:
            with pytest.raises(CircuitOpen):
                http.get(facility.url + "/Datasets")
            assert facility.requests == asked  # not downloaded again
        else:
            assert http.breakers.breaker(facility.url).current_state == "closed"  # the origin names the breaker


def test_a_drip_of_headers_is_cut_by_the_watchdog_even_when_each_byte_is_in_time():
    http = client(read_timeout=5.0, total_timeout=1.0)  # every byte arrives well within the read timeout
    with FaultServer("drip", rate=4.0) as facility:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            http.get(facility.url)
        assert time.monotonic() - started < 1.6


def test_a_body_under_the_minimum_rate_is_a_timeout_before_the_deadline():
    http = client(read_timeout=5.0, total_timeout=20.0, min_bytes_per_second=1000, min_rate_grace_seconds=0.5)
    with FaultServer("drip", rate=200.0) as facility:  # 200 B/s: headers in < 1 s, then too slow
        http_started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            http.get(facility.url)
        assert time.monotonic() - http_started < 3


def test_calls_to_one_facility_run_concurrently():
    """pybreaker holds its lock for the whole of ``call``: through it, eight calls took eight times one."""
    http = client(total_timeout=5.0, read_timeout=5.0)
    with serve(slow(1.0, "[]")) as (url, hits):
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: http.get(url).status_code, range(8)))
        elapsed = time.monotonic() - started
    assert answers == [200] * 8 and hits.count == 8
    assert elapsed < 3.0, f"8 concurrent 1 s calls took {elapsed:.1f} s"


def test_calls_beyond_the_per_facility_bound_are_refused_at_once_without_being_sent():
    http = client(endpoint_concurrency=2, total_timeout=2.0, read_timeout=2.0)
    with FaultServer("hang") as facility:
        threads = [threading.Thread(target=lambda: pytest.raises(UpstreamTimeout, http.get, facility.url))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 1
        while facility.requests < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        with pytest.raises(EndpointBusy):
            http.get(facility.url)
        assert time.monotonic() - started < 0.1 and facility.requests == 2
        for thread in threads:
            thread.join()
    assert http.breakers.in_flight(facility.url) == 0


def test_a_hung_and_a_dripping_facility_cost_only_their_own_answers_in_live_search(tmp_path):  # noqa: ANN001
    from panbroker.app import build_broker

    broker = build_broker(make_settings(tmp_path, search_deadline_seconds=1.0, breaker_fail_max=1000))
    with sim.Federation() as fed, FaultServer("hang") as hung, FaultServer("drip") as drip:
        fed.add("ok", sim.panosc_search_api("sim-ill", generate("sim-ill", 40)))
        fed.start()
        for facility, url in {"ok": fed.url("ok"), "hung": hung.url, "drip": drip.url}.items():
            broker.registry.create(ACTOR, KINDS.facility, {"id": facility, "name": facility, "country": "FR"})
            broker.registry.create(ACTOR, KINDS.search_endpoint, {
                "id": f"{facility}-search", "facility_id": facility, "kind": "panosc-search-api", "base_url": url})

        def search(_: int) -> tuple[float, dict]:
            started = time.monotonic()
            result = broker.search.search(parse_query({"mode": "live", "size": 5}))
            return time.monotonic() - started, {s.facility: s.status for s in result.sources}

        with ThreadPoolExecutor(12) as pool:
            outcomes = list(pool.map(search, range(24)))
    assert all(status["ok"] is SourceState.OK for _, status in outcomes), outcomes
    assert all(status["hung"] is not SourceState.OK and status["drip"] is not SourceState.OK for _, status in outcomes)
    assert max(elapsed for elapsed, _ in outcomes) < 1.0 + 0.5
    broker.index.close()


def test_a_health_round_reports_every_faulty_facility_down_within_the_probe_timeout(tmp_path):  # noqa: ANN001
    from panbroker.app import build_broker
    from demo.faults import MODES

    broker = build_broker(make_settings(tmp_path, health_timeout_seconds=1.0))
    servers = {mode: FaultServer(mode) for mode in MODES if mode != "empty"}
    try:
        broker.registry.create(ACTOR, KINDS.facility, {"id": "fac", "name": "Facility", "country": "FR"})
        for mode, server in servers.items():
            broker.registry.create(ACTOR, KINDS.search_endpoint, {
                "id": mode, "facility_id": "fac", "kind": "panosc-search-api", "base_url": server.url})
        started = time.monotonic()
        outcomes = {o.id: o for o in broker.health.check_all()}
        elapsed = time.monotonic() - started
    finally:
        for server in servers.values():
            server.close()
    assert {mode: o.status for mode, o in outcomes.items()} == {mode: "down" for mode in servers}, outcomes
    assert all(o.error for o in outcomes.values())
    assert elapsed < 1.0 + 1.0, f"a round with hung and dripping facilities took {elapsed:.1f} s"
    broker.index.close()
