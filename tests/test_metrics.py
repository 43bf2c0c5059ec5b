"""Prometheus metrics at /metrics: request latency by route template and status, outbound calls by facility
and outcome, circuit breaker state, harvests and launches — each seen to move — and /metrics itself closed
to everyone but the networks and the token the settings allow."""
from __future__ import annotations

import re
import socket
import time
import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest
import requests
from prometheus_client import REGISTRY

from panbroker.app import build_broker, create_app
from broker.authz import Principal
from broker.api.metrics import exposition
from broker.registry_kinds import KINDS
from connectors.errors import CircuitOpen, UpstreamUnavailable
from registry.models import HarvestJob, Launch, Person
from tests.conftest import make_settings

ACTOR = Principal("test", admin=True)
TOKEN = "metrics-token-for-tests-3c1d"
SCRAPE = {"Authorization": f"Bearer {TOKEN}"}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def site(tmp_path):  # noqa: ANN001, ANN201
    settings = make_settings(tmp_path, metrics_token=TOKEN, breaker_fail_max=2, http_retries=0)
    broker = build_broker(settings)
    broker.registry.create(ACTOR, KINDS.facility, {"id": "ill", "name": "ILL", "country": "FR"})
    return broker, create_app(broker=broker).test_client()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@contextmanager
def outbound_calls_counted(count: int, facility: str, outcome: str) -> Iterator[None]:
    """The block adds ``count`` outbound calls of ``facility`` with ``outcome`` to the counter."""
    before = sample("panbroker_outbound_calls_total", facility=facility, outcome=outcome)
    yield
    assert sample("panbroker_outbound_calls_total", facility=facility, outcome=outcome) == before + count


def test_each_request_is_timed_under_its_route_template_and_status(site):  # noqa: ANN001
    _broker, client = site
    labels = {"method": "GET", "route": "/api/v1/facilities/<facility_id>", "status": "200"}
    missing = {**labels, "status": "404"}
    before, before_404 = (sample("panbroker_http_request_duration_seconds_count", **labels),
                          sample("panbroker_http_request_duration_seconds_count", **missing))
    assert client.get("/api/v1/facilities/ill").status_code == 200
    assert client.get("/api/v1/facilities/esrf").status_code == 404
    assert sample("panbroker_http_request_duration_seconds_count", **labels) == before + 1
    assert sample("panbroker_http_request_duration_seconds_count", **missing) == before_404 + 1
    text = client.get("/metrics", headers=SCRAPE).text
    assert 'panbroker_http_request_duration_seconds_bucket{le="0.005",method="GET",' \
           'route="/api/v1/facilities/<facility_id>",status="200"}' in text


def test_failed_outbound_calls_are_counted_for_their_facility_and_open_its_breaker(site):  # noqa: ANN001
    broker, _client = site
    port = closed_port()
    broker.registry.create(ACTOR, KINDS.service, {"id": "ill-hub", "facility_id": "ill", "kind": "jupyterhub",
                                                  "title": "ILL hub", "base_url": f"http://127.0.0.1:{port}"})
    endpoint = f"http://127.0.0.1:{port}"
    with outbound_calls_counted(2, "ill", "unavailable"):
        for _ in range(2):  # breaker_fail_max
            with pytest.raises(UpstreamUnavailable):
                broker.http.get(f"{endpoint}/hub/api")
    assert sample("panbroker_circuit_breaker_state", facility="ill", endpoint=endpoint) == 2  # open
    with outbound_calls_counted(1, "ill", "circuit_open"), pytest.raises(CircuitOpen):
        broker.http.get(f"{endpoint}/hub/api")


def test_calls_to_endpoints_no_facility_registered_are_counted_as_other(site):  # noqa: ANN001
    broker, _client = site
    with outbound_calls_counted(1, "other", "unavailable"), pytest.raises(UpstreamUnavailable):
        broker.http.get(f"http://127.0.0.1:{closed_port()}/token")


def test_harvests_and_launches_are_read_from_the_store_at_each_scrape(site):  # noqa: ANN001
    broker, client = site
    broker.registry.create(ACTOR, KINDS.search_endpoint, {"id": "ill-search", "facility_id": "ill",
                                                          "kind": "panosc-search-api", "base_url": "https://ill.example/api"})
    with broker.store.session() as session:
        session.add_all([HarvestJob(endpoint_id="ill-search", state="succeeded", imported=120, deleted=3),
                         HarvestJob(endpoint_id="ill-search", state="partial", imported=7, failed=2),
                         Person(id="p1", display_name="Olga")])
        session.flush()
        for state in ("ready", "ready", "failed"):
            session.add(Launch(id=str(uuid.uuid4()), person_id="p1", idempotency_key=str(uuid.uuid4()),
                               fingerprint="f", request={}, dataset_pid="10.5291/ILL-DATA.1", facility_id="ill",
                               state=state))
    text = client.get("/metrics", headers=SCRAPE).text
    assert 'panbroker_harvest_jobs{facility="ill",state="succeeded"} 1.0' in text
    assert 'panbroker_harvest_datasets{facility="ill",outcome="imported"} 127.0' in text
    assert 'panbroker_harvest_datasets{facility="ill",outcome="failed"} 2.0' in text
    assert 'panbroker_launches{facility="ill",state="ready"} 2.0' in text
    assert 'panbroker_launches{facility="ill",state="failed"} 1.0' in text
    assert exposition(broker.store).count(b"# TYPE panbroker_launches gauge") == 1


def test_metrics_are_refused_without_the_token_from_outside_the_allowed_networks(site):  # noqa: ANN001
    _broker, client = site  # the test client's address is no IP: outside every network
    refused = client.get("/metrics")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "PANBROKER_METRICS_TOKEN" in refused.json()["detail"] and TOKEN not in refused.text
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/metrics", headers=SCRAPE).status_code == 200


def test_a_malformed_metrics_network_setting_is_refused_at_start(tmp_path):  # noqa: ANN001
    from panmodel.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="PANBROKER_METRICS_NETWORKS"):
        create_app(make_settings(tmp_path, metrics_networks="10.0.0.0/33"))


@pytest.mark.slow  # several server processes
def test_several_workers_answer_for_all_of_them_in_multiprocess_mode(tmp_path, monkeypatch):  # noqa: ANN001
    """`serve --workers 2` with PROMETHEUS_MULTIPROC_DIR: whichever worker a scrape reaches counts every
    request either worker answered (loopback may scrape without the token)."""
    from tests.loopback import panbroker_serving

    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_999999999.db").write_bytes(b"")  # a file of a process long gone: pruned at start
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    monkeypatch.setenv("PANBROKER_WORKERS", "2")
    build_broker(make_settings(tmp_path)).store.engine.dispose()
    with panbroker_serving(tmp_path / "data") as base:
        sent, deadline = 0, time.monotonic() + 30
        while len(set(folder.glob("histogram_*.db"))) < 2 or sent < 40:  # until both workers answered some
            assert time.monotonic() < deadline, "one worker answered every request"
            with requests.Session() as fresh:  # a new connection each time
                assert fresh.get(f"{base}/healthz", timeout=10).status_code == 200
            sent += 1
        seen = set()
        for _ in range(6):
            with requests.Session() as fresh:
                text = fresh.get(f"{base}/metrics", timeout=10).text
            seen.update(float(n) for n in re.findall(
                r'panbroker_http_request_duration_seconds_count\{method="GET",route="/healthz",status="200"\} (\S+)',
                text))
    assert not (folder / "counter_999999999.db").exists()
    assert seen and min(seen) >= sent, (seen, sent)  # every scrape counted both workers' requests


def test_an_unreadable_store_does_not_fail_the_outbound_call_it_counts(site, monkeypatch):  # noqa: ANN001
    broker, _client = site

    def broken() -> int:
        raise OSError("database unreachable")

    monkeypatch.setattr(broker.store, "registry_stamp", broken)
    before = sample("panbroker_outbound_calls_total", facility="other", outcome="unavailable")
    with pytest.raises(UpstreamUnavailable):  # the call's own fault, not the metrics' one
        broker.http.get(f"http://127.0.0.1:{closed_port()}/x")
    assert sample("panbroker_outbound_calls_total", facility="other", outcome="unavailable") == before + 1
