"""Health checks against loopback systems that answer like the real kinds, and against broken ones."""
from __future__ import annotations

import time

from panbroker.app import build_broker
from broker.authz import Principal
from broker.registry_kinds import KINDS
from demo import federation as sim
from panmodel.states import TargetType
from tests.conftest import ADMIN, make_settings
from tests.loopback import ok_json, serve, slow

ADMIN_PRINCIPAL = Principal("test", admin=True)


def register(broker, services=(), endpoints=()):  # noqa: ANN001, ANN201
    broker.registry.create(ADMIN_PRINCIPAL, KINDS.facility, {"id": "fac", "name": "Facility", "country": "FR"})
    for sid, kind, url, extra in services:
        broker.registry.create(ADMIN_PRINCIPAL, KINDS.service, {"id": sid, "facility_id": "fac", "kind": kind,
                                                               "title": sid, "base_url": url, **extra})
    for eid, kind, url in endpoints:
        broker.registry.create(ADMIN_PRINCIPAL, KINDS.search_endpoint, {"id": eid, "facility_id": "fac",
                                                                       "kind": kind, "base_url": url})


def statuses(outcomes):  # noqa: ANN001, ANN201
    return {o.id: o.status for o in outcomes}


def test_each_kind_is_probed_with_its_own_cheap_call(broker):  # noqa: ANN001
    with sim.Federation() as fed:
        fed.add("hub", sim.jupyterhub())
        fed.add("visa", sim.visa("fac"))
        fed.add("binder", sim.binderhub())
        fed.add("desk", sim.desktop_gateway("FastX"))
        fed.add("search", sim.panosc_search_api("sim-ill"))
        fed.start()
        register(broker, services=[("hub", "jupyterhub", fed.url("hub"), {}),
                                   ("visa", "visa", fed.url("visa"), {}),
                                   ("binder", "binderhub", fed.url("binder"), {}),
                                   ("desk", "remote-desktop", fed.url("desk"), {})],
                 endpoints=[("search", "panosc-search-api", fed.url("search"))])
        outcomes = broker.health.check_all()
    assert statuses(outcomes) == {"hub": "up", "visa": "up", "binder": "up", "desk": "up", "search": "up"}
    assert all(o.latency_ms is not None and o.latency_ms >= 0 for o in outcomes)


def test_wrong_answers_mark_an_endpoint_down_with_the_reason(broker):  # noqa: ANN001
    with serve(ok_json("<html>login</html>")) as (html_url, _), serve(ok_json("{}", 503)) as (failing_url, _):
        register(broker, services=[("hub-html", "jupyterhub", html_url, {}),
                                   ("hub-503", "jupyterhub", failing_url, {})],
                 endpoints=[("search-html", "panosc-search-api", html_url)])
        by_id = {o.id: o for o in broker.health.check_all()}
    assert by_id["hub-html"].status == "down" and "expected JSON" in by_id["hub-html"].error
    assert by_id["hub-503"].status == "down" and "503" in by_id["hub-503"].error
    assert by_id["search-html"].status == "down"


def test_a_slow_endpoint_does_not_hold_up_the_others(tmp_path):  # noqa: ANN001
    broker = build_broker(make_settings(tmp_path, health_timeout_seconds=0.5, http_read_timeout=0.5))
    with serve(slow(3)) as (slow_url, _), serve(ok_json()) as (fast_url, _):
        register(broker, services=[("slow", "jupyterhub", slow_url, {}), ("fast", "jupyterhub", fast_url, {})])
        started = time.monotonic()
        outcomes = statuses(broker.health.check_all())
        elapsed = time.monotonic() - started
    assert outcomes == {"slow": "down", "fast": "up"}
    assert elapsed < 2.5


def test_addresses_refused_by_the_ssrf_policy_are_marked_blocked_and_not_contacted(tmp_path):  # noqa: ANN001
    broker = build_broker(make_settings(tmp_path, allowed_networks=()))
    with serve(ok_json()) as (url, hits):
        # registered as a name (not an IP literal), so only the check at call time can stop it
        register(broker, services=[("hub", "jupyterhub", url.replace("127.0.0.1", "localhost"), {})])
        outcome = broker.health.check_all()[0]
    assert outcome.status == "blocked" and "SSRF" in outcome.error
    assert hits.count == 0


def test_a_service_without_url_is_unknown_not_down(broker):  # noqa: ANN001
    register(broker, services=[("planned", "visa", None, {"lifecycle": "planned"})])
    outcome = broker.health.check_all()[0]
    assert outcome.status == "unknown" and "no URL" in outcome.error


def test_results_are_recorded_history_is_bounded_and_versions_untouched(tmp_path):  # noqa: ANN001
    broker = build_broker(make_settings(tmp_path, health_history=3))
    with serve(ok_json()) as (url, _):
        register(broker, services=[("hub", "jupyterhub", url, {})])
        for _ in range(5):
            broker.health.check_all()
    service = broker.registry.get(KINDS.service, "hub")
    assert service["health"]["status"] == "up" and service["health"]["checked_at"]
    assert service["version"] == 1  # a health result is not an operator's edit
    assert len(broker.health.history(TargetType.SERVICE, "hub", 50)) == 3


def test_health_api_summary_history_and_manual_round(sqlite_client, sqlite_broker):  # noqa: ANN001
    with serve(ok_json()) as (url, _), serve(ok_json("{}", 500)) as (bad_url, _):
        register(sqlite_broker, services=[("hub", "jupyterhub", url, {}), ("bad", "jupyterhub", bad_url, {})])
        assert sqlite_client.post("/api/v1/health").status_code == 401
        ran = sqlite_client.post("/api/v1/health", headers=ADMIN)
    assert ran.status_code == 200 and ran.json()["checked"] == 2
    summary = sqlite_client.get("/api/v1/health").json()
    assert summary["counts"] == {"up": 1, "down": 1}
    history = sqlite_client.get("/api/v1/services/bad/health").json()["items"]
    assert history[0]["status"] == "down" and "500" in history[0]["error"]
    assert sqlite_client.get("/api/v1/services?status=down").json()["items"][0]["id"] == "bad"
    assert sqlite_client.get("/api/v1/services/nope/health").status_code == 404


def test_the_scheduler_runs_rounds_at_the_interval_never_two_at_once(sqlite_broker):  # noqa: ANN001
    from panbroker.worker import make_scheduler

    scheduler = make_scheduler(sqlite_broker, background=True)
    scheduler.start(paused=True)
    try:
        job = scheduler.get_job("health-checks")
        assert job.trigger.interval.total_seconds() == sqlite_broker.settings.health_interval_seconds
        assert job.max_instances == 1 and job.coalesce is True
        assert job.args[-1] == sqlite_broker.health.check_all  # once per slot across workers
    finally:
        scheduler.shutdown(wait=False)
