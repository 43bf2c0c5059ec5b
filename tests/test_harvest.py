"""Harvesting simulated PaNOSC Search APIs into the index: incremental state, deletions, per-item
errors with their stage, a failing facility isolated."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from broker.authz import Principal
from broker.registry_kinds import KINDS
from demo import federation as sim
from demo.catalogue import generate
from tests.conftest import ADMIN

ACTOR = Principal("test", admin=True)


def register(broker, endpoints):  # noqa: ANN001, ANN201
    for facility, url in endpoints.items():
        broker.registry.create(ACTOR, KINDS.facility, {"id": facility, "name": facility, "country": "FR"})
        broker.registry.create(ACTOR, KINDS.search_endpoint, {"id": f"{facility}-search", "facility_id": facility,
                                                              "kind": "panosc-search-api", "base_url": url,
                                                              "connector_config": {"page_size": 40}})


@pytest.fixture
def records():  # noqa: ANN201
    return generate("sim-ill", 120)


def test_a_harvest_gathers_fetches_and_imports_every_dataset(sqlite_broker, records):  # noqa: ANN001
    with sim.Federation() as fed:
        fed.add("ill", sim.panosc_search_api("sim-ill", records))
        fed.start()
        register(sqlite_broker, {"ill": fed.url("ill")})
        job = sqlite_broker.harvest.run("ill-search")
    assert job["state"] == "succeeded"
    assert (job["gathered"], job["imported"], job["deleted"], job["failed"]) == (120, 120, 0, 0)
    assert job["gathered_at"] and job["fetched_at"] and job["finished_at"]
    assert sqlite_broker.index.count() == 120
    stored = sqlite_broker.index.get(records[0]["pid"])
    assert stored.facility == "ill" and stored.instrument == records[0]["instrument"]["name"]
    assert stored.documents[0].doi == records[0]["documents"][0]["doi"]
    assert stored.techniques[0].iri == records[0]["techniques"][0]["pid"]


def test_datasets_gone_from_the_source_are_deleted_and_changes_updated(sqlite_broker, records):  # noqa: ANN001
    with sim.Federation() as fed:
        fed.add("ill", sim.panosc_search_api("sim-ill", records))
        fed.start()
        register(sqlite_broker, {"ill": fed.url("ill")})
        sqlite_broker.harvest.run("ill-search")
        removed = records.pop(5)
        records[0]["title"] = "Retitled by the facility"
        job = sqlite_broker.harvest.run("ill-search")
    assert job["deleted"] == 1 and job["imported"] == 119
    assert sqlite_broker.index.get(removed["pid"]) is None
    assert sqlite_broker.index.get(records[0]["pid"]).title == "Retitled by the facility"


def test_bad_records_are_recorded_with_their_stage_and_the_rest_imported(sqlite_broker, records):  # noqa: ANN001
    records[3] = {"pid": "broken-1", "isPublic": "perhaps"}  # no title, bad flag
    with sim.Federation() as fed:
        fed.add("ill", sim.panosc_search_api("sim-ill", records))
        fed.start()
        register(sqlite_broker, {"ill": fed.url("ill")})
        job = sqlite_broker.harvest.run("ill-search")
    assert job["state"] == "partial" and job["imported"] == 119 and job["failed"] == 1
    assert job["errors"][0]["item"] == "broken-1" and job["errors"][0]["stage"] == "import"


@pytest.mark.parametrize("processes", [0, 1])
def test_a_record_with_a_lone_surrogate_is_an_error_of_its_own_and_the_rest_imported(sqlite_broker, records,
                                                                                    processes):  # noqa: ANN001
    """JSON may escape half of a UTF-16 pair (``"\\ud800"``): text no encoder takes. It failed the whole
    harvest (UnicodeEncodeError out of the OAI feed's entry) before the reader refused the record."""
    sqlite_broker.harvest.processes = processes
    records[7]["title"] = "Spectra \ud800 of nothing"  # the simulator's JSON escapes it as \ud800
    with sim.Federation() as fed:
        fed.add("ill", sim.panosc_search_api("sim-ill", records))
        fed.start()
        register(sqlite_broker, {"ill": fed.url("ill")})
        job = sqlite_broker.harvest.run("ill-search")
    assert job["state"] == "partial" and (job["imported"], job["failed"]) == (119, 1), job
    assert job["errors"][0]["item"] == records[7]["pid"] and "not valid Unicode" in job["errors"][0]["error"]
    assert sqlite_broker.index.get(records[7]["pid"]) is None and sqlite_broker.index.count() == 119


def test_a_failing_facility_fails_its_own_job_only_and_the_index_keeps_its_data(sqlite_broker, records):  # noqa: ANN001
    healthy = True

    def flaky(request):  # noqa: ANN001, ANN202
        if healthy:
            return sim.panosc_search_api("sim-ill", records)(request)
        return sim.Response("<html>maintenance</html>", status=503)

    with sim.Federation() as fed:
        fed.add("ill", flaky)
        fed.add("ess", sim.panosc_search_api("sim-ess", generate("sim-ess", 30)))
        fed.start()
        register(sqlite_broker, {"ill": fed.url("ill"), "ess": fed.url("ess")})
        sqlite_broker.harvest.run_all()
        healthy = False
        jobs = {j["endpoint_id"]: j for j in sqlite_broker.harvest.run_all()}
    assert jobs["ill-search"]["state"] == "failed" and "gather" in jobs["ill-search"]["error"]
    assert jobs["ess-search"]["state"] == "succeeded"
    assert sqlite_broker.index.count() == 150  # nothing of ILL was deleted


@pytest.mark.slow
def test_harvest_api_and_cli(sqlite_client, sqlite_broker, records, tmp_path, monkeypatch):  # noqa: ANN001
    with sim.Federation() as fed:
        fed.add("ill", sim.panosc_search_api("sim-ill", records))
        fed.start()
        register(sqlite_broker, {"ill": fed.url("ill")})
        assert sqlite_client.post("/api/v1/harvest/jobs", json={"endpoint_id": "ill-search"}).status_code == 401
        unknown = sqlite_client.post("/api/v1/harvest/jobs", json={"endpoint_id": "nope"}, headers=ADMIN)
        assert unknown.status_code == 422
        created = sqlite_client.post("/api/v1/harvest/jobs", json={"endpoint_id": "ill-search"}, headers=ADMIN)
        assert created.status_code == 201 and created.json()["imported"] == 120
    listed = sqlite_client.get("/api/v1/harvest/jobs?endpoint=ill-search").json()["items"]
    assert listed[0]["id"] == created.json()["id"]
    assert sqlite_client.get(f"/api/v1/harvest/jobs/{listed[0]['id']}").json()["state"] == "succeeded"
    assert sqlite_client.get("/api/v1/harvest/jobs/9999").status_code == 404

    sqlite_broker.index.close()  # the CLI process takes the index writer
    monkeypatch.setenv("PANBROKER_DATA_DIR", str(sqlite_broker.settings.data_dir))
    monkeypatch.setenv("PANBROKER_ALLOWED_NETWORKS", "127.0.0.0/8")
    from panbroker.cli import main

    status = CliRunner().invoke(main, ["harvest", "status"], catch_exceptions=False)
    assert status.exit_code == 0 and "ill-search" in status.output and "succeeded" in status.output


def test_the_latest_job_of_every_endpoint_is_found_however_many_jobs_came_after(broker):  # noqa: ANN001
    """Every index search reads it: an endpoint harvested long ago is not 'not harvested yet'."""
    from registry.models import HarvestJob

    register(broker, {"ill": "https://search.ill.example", "esrf": "https://search.esrf.example"})
    with broker.store.session() as session:
        session.add(HarvestJob(endpoint_id="esrf-search", state="failed", error="HTTP 502"))
        session.add_all(HarvestJob(endpoint_id="ill-search", state="finished") for _ in range(1500))
    latest = broker.harvest.latest()
    assert latest["esrf-search"]["state"] == "failed" and latest["esrf-search"]["error"] == "HTTP 502"
    assert latest["ill-search"]["id"] == max(job["id"] for job in broker.harvest.jobs("ill-search", limit=5))


def test_odd_but_readable_records_are_imported_and_answered_live(sqlite_broker, records):  # noqa: ANN001
    """Values a facility may send that are JSON but unusual. An integer of 400 digits as a parameter value
    raised OverflowError in the unit conversion: it failed the whole harvest, and live search answered 500."""
    from broker.search.service import parse_query

    odd = {"huge": {"parameters": [{"name": "sample_temperature", "value": 10**400, "unit": "K"}]},
           "long title": {"title": "x" * 100_000}, "control": {"title": "\x00 nul \x1b escape"},
           "unit": {"parameters": [{"name": "t", "value": 3, "unit": "u" * 5000}]},
           "pid": {"pid": "odd 1/with?&=#"}}
    for n, changes in enumerate(odd.values()):
        records[n] = {**records[n], **changes}
    with sim.Federation() as fed:
        fed.add("ill", sim.panosc_search_api("sim-ill", records))
        fed.start()
        register(sqlite_broker, {"ill": fed.url("ill")})
        job = sqlite_broker.harvest.run("ill-search")
        live = sqlite_broker.search.search(parse_query({"mode": "live", "size": 100}))
    assert job["state"] == "succeeded" and job["imported"] == 120, job
    huge = sqlite_broker.index.get(records[0]["pid"]).parameters[0]
    assert huge.value == 10**400 and huge.si_value is None  # kept as sent, not compared in SI
    assert sqlite_broker.index.get("odd 1/with?&=#") is not None
    assert len(live.items) == 100 and live.total == 120 and not live.partial


def test_a_fault_of_the_broker_itself_fails_the_job_with_its_reason_and_keeps_what_was_imported(sqlite_broker, records,
                                                                                              monkeypatch):  # noqa: ANN001
    """An exception the harvest did not expect (a mapping bug, a database fault) ended the call and left the
    job "running" until the next start; now the job fails with its reason and what was imported stays."""
    from connectors.panosc_search import PanoscSearchConnector

    mapped, last = PanoscSearchConnector.to_dataset, max(r["pid"] for r in records)  # pages come in pid order

    def fails_on_the_last_page(record, facility, source):  # noqa: ANN001, ANN202
        if getattr(record, "pid", None) == last:
            raise OverflowError("a value the mapping did not expect")
        return mapped(record, facility, source)

    sqlite_broker.harvest.processes = 0  # mapped here, where the patch is
    monkeypatch.setattr(PanoscSearchConnector, "to_dataset", staticmethod(fails_on_the_last_page))
    with sim.Federation() as fed:
        fed.add("ill", sim.panosc_search_api("sim-ill", records))
        fed.start()
        register(sqlite_broker, {"ill": fed.url("ill")})
        job = sqlite_broker.harvest.run("ill-search")
    assert job["state"] == "failed" and "the broker failed (OverflowError: a value" in job["error"], job
    assert sqlite_broker.index.count() == job["imported"] == 80  # the pages before it (of 40) stay imported



def test_a_pid_a_first_harvest_meets_twice_is_one_dataset_its_last_listing(sqlite_broker, records):  # noqa: ANN001
    """A first harvest adds the pids it meets for the first time without looking for an older version; a pid
    the source lists twice (on one page, or across a page boundary: pages of 40) is still replaced, not doubled."""
    ordered = sorted(records, key=lambda r: r["pid"])
    # listed again right after itself: on the same page, and (one place later, for the copy before it) on the next
    within, across = ordered[10], ordered[38]
    records += [{**within, "title": "Listed again on the same page"}, {**across, "title": "Listed again on the next page"}]
    with sim.Federation() as fed:
        fed.add("ill", sim.panosc_search_api("sim-ill", records))
        fed.start()
        register(sqlite_broker, {"ill": fed.url("ill")})
        job = sqlite_broker.harvest.run("ill-search")
        assert job["state"] == "succeeded" and job["gathered"] == 122
        assert sqlite_broker.index.count() == 120
        assert sqlite_broker.index.get(within["pid"]).title == "Listed again on the same page"
        assert sqlite_broker.index.get(across["pid"]).title == "Listed again on the next page"
        records[0]["title"] = "Retitled by the facility"  # the next harvest replaces what the first one added
        assert sqlite_broker.harvest.run("ill-search")["state"] == "succeeded"
    assert sqlite_broker.index.count() == 120
    assert sqlite_broker.index.get(records[0]["pid"]).title == "Retitled by the facility"


def test_a_harvest_counts_every_failed_record_and_keeps_the_first_few(sqlite_broker, records, monkeypatch):  # noqa: ANN001
    """A source whose records all fail holds no list of every error in memory: the job counts them all and
    keeps the first MAX_ERRORS_KEPT."""
    monkeypatch.setattr("broker.harvest.MAX_ERRORS_KEPT", 5)
    for n in range(0, 120, 2):  # 60 bad records over the pages of 40
        records[n] = {"pid": f"broken-{n:03d}"}
    with sim.Federation() as fed:
        fed.add("ill", sim.panosc_search_api("sim-ill", records))
        fed.start()
        register(sqlite_broker, {"ill": fed.url("ill")})
        job = sqlite_broker.harvest.run("ill-search")
    assert job["state"] == "partial" and (job["imported"], job["failed"]) == (60, 60)
    assert sorted(e["item"] for e in job["errors"]) == [f"broken-{n:03d}" for n in range(0, 10, 2)]


def test_first_harvests_side_by_side_never_double_a_pid_both_list(sqlite_broker, records):  # noqa: ANN001
    """Two endpoints' first harvests running at once in one process (a worker's scheduler runs them side by
    side), both listing the same pids: neither sees the other's datasets before they are committed, so neither
    may add them without a look-up of an older version. Each pid ends in the index once."""
    import threading

    with sim.Federation() as fed:
        fed.add("ill", sim.panosc_search_api("sim-ill", records, delay=0.15))
        fed.add("esrf", sim.panosc_search_api("sim-esrf", records, delay=0.1))
        fed.start()
        register(sqlite_broker, {"ill": fed.url("ill"), "esrf": fed.url("esrf")})
        jobs = {}
        slow = threading.Thread(target=lambda: jobs.update(ill=sqlite_broker.harvest.run("ill-search")))
        slow.start()
        jobs["esrf"] = sqlite_broker.harvest.run("esrf-search")
        slow.join(timeout=60)
    assert sqlite_broker.index.count() == 120, "a pid both endpoints list is in the index once"
    assert set(jobs) == {"ill", "esrf"} and {job["state"] for job in jobs.values()} <= {"succeeded", "partial"}


def test_a_harvest_starting_while_another_commits_its_last_pages_never_doubles_a_pid(sqlite_broker, records,
                                                                                     monkeypatch):  # noqa: ANN001
    """The window the harvests side by side left open: the other harvest starts just before the first one's last
    commit, when the first one's datasets are in the index but not yet visible. A harvest counts as running until
    its last commit, so the later one looks its pids up (and replaces those datasets) instead of doubling them."""
    commit, nested = sqlite_broker.index.commit, {}

    def commit_after_the_other_started() -> None:
        if not nested:  # once: the other harvest's own commits go through here too
            nested["started"] = True
            nested["job"] = sqlite_broker.harvest.run("ill-search")
        commit()

    with sim.Federation() as fed:
        fed.add("ill", sim.panosc_search_api("sim-ill", records))
        fed.add("esrf", sim.panosc_search_api("sim-esrf", records))
        fed.start()
        register(sqlite_broker, {"ill": fed.url("ill"), "esrf": fed.url("esrf")})
        monkeypatch.setattr(sqlite_broker.index, "commit", commit_after_the_other_started)
        first = sqlite_broker.harvest.run("esrf-search")
    assert sqlite_broker.index.count() == 120, "a pid both endpoints list is in the index once"
    assert first["state"] != "running" and nested["job"]["state"] != "running"
