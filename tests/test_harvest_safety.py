"""A harvest never wipes a source on one bad answer: deleting more than the allowed share (or all) stops
as `suspect` and keeps the index until an operator confirms; jobs a dead process left `running` are failed
and run again when the worker starts; a process that does not write the index queues its harvests."""
from __future__ import annotations

import time

from broker.authz import Principal
from broker.registry_kinds import KINDS
from broker.registry_service import Precondition
from panbroker.worker import make_scheduler
from demo import federation as sim
from demo.catalogue import generate
from demo.faults import FaultServer
from registry.models import HarvestJob
from tests.conftest import ADMIN

ACTOR = Principal("test", admin=True)


def register(broker, url: str) -> None:  # noqa: ANN001
    broker.registry.create(ACTOR, KINDS.facility, {"id": "ill", "name": "ILL", "country": "FR"})
    broker.registry.create(ACTOR, KINDS.search_endpoint, {"id": "ill-search", "facility_id": "ill",
                                                          "kind": "panosc-search-api", "base_url": url})


def test_an_empty_answer_is_suspect_and_deletes_nothing_until_confirmed(sqlite_broker, sqlite_client):  # noqa: ANN001
    records = generate("sim-ill", 50)
    with sim.Federation() as fed, FaultServer("empty") as empty:
        fed.add("ill", sim.panosc_search_api("sim-ill", records))
        fed.start()
        register(sqlite_broker, fed.url("ill"))
        assert sqlite_broker.harvest.run("ill-search")["imported"] == 50
        sqlite_broker.registry.update(ACTOR, KINDS.search_endpoint, "ill-search", {"base_url": empty.url},
                                      Precondition(1, True), partial=True)  # the facility now answers []
        job = sqlite_broker.harvest.run("ill-search")
        assert job["state"] == "suspect" and job["deleted"] == 0 and "any of its 50 datasets" in job["error"]
        assert sqlite_broker.index.count() == 50  # the facility is still there
        again = sqlite_broker.harvest.run("ill-search")
        assert again["state"] == "suspect" and sqlite_broker.index.count() == 50
        confirmed = sqlite_client.post("/api/v1/harvest/jobs", json={"endpoint_id": "ill-search",
                                                                     "confirm_deletions": True}, headers=ADMIN)
    assert confirmed.status_code == 201 and confirmed.json()["state"] == "succeeded"
    assert confirmed.json()["deleted"] == 50 and sqlite_broker.index.count() == 0


def test_losing_more_than_the_allowed_share_is_suspect_and_less_is_applied(sqlite_broker):  # noqa: ANN001
    records = generate("sim-ill", 50)
    with sim.Federation() as fed:
        fed.add("ill", sim.panosc_search_api("sim-ill", records))
        fed.start()
        register(sqlite_broker, fed.url("ill"))
        sqlite_broker.harvest.run("ill-search")
        del records[:5]  # 10%: a facility retracting a few datasets
        assert sqlite_broker.harvest.run("ill-search")["deleted"] == 5
        del records[:15]  # 15 of 45: 33%
        job = sqlite_broker.harvest.run("ill-search")
        assert job["state"] == "suspect" and "15 of 45" in job["error"] and sqlite_broker.index.count() == 45
        assert sqlite_broker.harvest.run("ill-search", confirm_deletions=True)["deleted"] == 15
    assert sqlite_broker.index.count() == 30


def test_a_job_left_running_by_a_dead_process_is_failed_and_run_again_at_start(sqlite_broker):  # noqa: ANN001
    with sim.Federation() as fed:
        fed.add("ill", sim.panosc_search_api("sim-ill", generate("sim-ill", 20)))
        fed.start()
        register(sqlite_broker, fed.url("ill"))
        with sqlite_broker.store.session() as session:
            session.add(HarvestJob(endpoint_id="ill-search", state="running"))  # its process was killed
        scheduler = make_scheduler(sqlite_broker, background=True)
        scheduler.start()
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                states = [j["state"] for j in sqlite_broker.harvest.jobs("ill-search")]
                if "succeeded" in states:
                    break
                time.sleep(0.2)
        finally:
            scheduler.shutdown(wait=True)
    jobs = sqlite_broker.harvest.jobs("ill-search")
    assert [j["state"] for j in jobs] == ["succeeded", "failed"], jobs
    assert "interrupted" in jobs[1]["error"] and sqlite_broker.index.count() == 20


def test_a_process_that_does_not_write_the_index_queues_the_harvest_for_the_worker(sqlite_broker, sqlite_client):  # noqa: ANN001
    with sim.Federation() as fed:
        fed.add("ill", sim.panosc_search_api("sim-ill", generate("sim-ill", 20)))
        fed.start()
        register(sqlite_broker, fed.url("ill"))
        sqlite_broker.harvest.runs_here = False  # a web worker process of `serve --workers N`
        queued = sqlite_client.post("/api/v1/harvest/jobs", json={"endpoint_id": "ill-search"}, headers=ADMIN)
        assert queued.status_code == 202 and queued.json()["state"] == "queued"
        assert queued.headers["location"] == f"/api/v1/harvest/jobs/{queued.json()['id']}"
        assert sqlite_broker.index.count() == 0
        [done] = sqlite_broker.harvest.run_queued()  # what the worker does every two seconds
    assert done["id"] == queued.json()["id"] and done["state"] == "succeeded" and sqlite_broker.index.count() == 20
