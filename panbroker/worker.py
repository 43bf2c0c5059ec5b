"""The scheduler: runs the periodic jobs (health checks, harvests, EOSC sync, launches).

Any number of workers may run against one PostgreSQL database (``panbroker worker``, or inside
``panbroker serve`` in the embedded default): each scheduled job runs once per schedule slot across them
(``broker.coordination``), a harvest of one endpoint never runs twice at once, and each unfinished launch
is stepped and followed by the one worker holding its lease (``broker.launch.runner``). Web replicas
(``serve --no-worker``) never run jobs.
"""
from __future__ import annotations

import logging
import signal
import sys
from datetime import datetime, timezone
from typing import Any, Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from broker.coordination import Coordinator, interval_slot, minute_slot

log = logging.getLogger(__name__)
ORPHANS_SECONDS = 60  # how often deleted endpoints' datasets are looked for, and harvest schedules re-read


def make_scheduler(broker, *, background: bool) -> BaseScheduler:  # noqa: ANN001 - panbroker.app.Broker
    """A scheduler with the broker's jobs; a round never overlaps the previous one in this process, and
    a slot's round runs in one worker only."""
    coordinator = Coordinator(broker.store, broker.launch_runner.holder)
    cls = BackgroundScheduler if background else BlockingScheduler
    scheduler = cls(timezone=timezone.utc,
                    job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60})
    now = datetime.now(timezone.utc)
    every(scheduler, coordinator, "health-checks", "health checks", broker.health.check_all,
          broker.settings.health_interval_seconds)
    if broker.eosc.client is not None:
        every(scheduler, coordinator, "eosc-sync", "EOSC sync", broker.eosc.sync_all,
              broker.settings.eosc_sync_interval_seconds)
    # every worker runs these: launches are shared out by lease, queued harvests by their state
    scheduler.add_job(broker.launch_runner.advance, "interval", id="launches", name="launches",
                      seconds=broker.settings.launch_poll_seconds, next_run_time=now)
    scheduler.add_job(sync_harvest_schedules, "interval", args=[scheduler, broker, coordinator],
                      id="harvest-schedules", name="harvest schedules", seconds=ORPHANS_SECONDS, next_run_time=now)
    scheduler.add_job(broker.harvest.run_queued, "interval", args=[lambda e: coordinator.exclusive(f"harvest:{e}")],
                      id="queued-harvests", name="queued harvests", seconds=2, next_run_time=now)
    # left running by a process that died (not by a live worker that still harvests it)
    for endpoint_id in broker.harvest.recover_interrupted(lambda e: coordinator.held_elsewhere(f"harvest:{e}")):
        scheduler.add_job(_harvest, args=[broker, coordinator, endpoint_id, ""], kwargs={"once": False},
                          id=f"retry:{endpoint_id}", name=f"harvest {endpoint_id} (interrupted)", next_run_time=now)
    return scheduler


def every(scheduler: BaseScheduler, coordinator: Coordinator, job_id: str, name: str, func: Callable[[], Any],
          seconds: float) -> None:
    """``func`` every ``seconds``, once per ``seconds``-long slot across all workers."""
    scheduler.add_job(run_once, "interval", args=[coordinator, job_id, seconds, func], id=job_id, name=name,
                      seconds=seconds, next_run_time=datetime.now(timezone.utc))


def run_once(coordinator: Coordinator, job_id: str, seconds: float, func: Callable[[], Any]) -> None:
    """``func``, unless another worker ran ``job_id`` in this slot already."""
    if coordinator.claim(job_id, interval_slot(seconds)):
        func()
    else:
        log.debug("%s ran in another worker in this slot", job_id)


def sync_harvest_schedules(scheduler: BaseScheduler, broker, coordinator: Coordinator) -> None:  # noqa: ANN001
    """One cron job per search endpoint with a harvest schedule, in every worker (the slot decides which
    one harvests); follows registry changes. Once per slot, one worker removes the datasets of deleted
    endpoints from the index and prunes old slot claims."""
    from broker.registry_kinds import KINDS

    if coordinator.claim("purge-orphans", interval_slot(ORPHANS_SECONDS)):
        try:
            broker.harvest.purge_orphans()
            coordinator.prune()
        except Exception:  # the index may be busy or down; the next round tries again  # noqa: BLE001
            log.exception("removing the datasets of deleted search endpoints failed")

    wanted = {}
    for endpoint in broker.registry.list(KINDS.search_endpoint, limit=500).items:
        if endpoint["harvest_schedule"]:
            wanted[f"harvest:{endpoint['id']}"] = (endpoint["id"], endpoint["harvest_schedule"])
    for job in scheduler.get_jobs():
        if job.id.startswith("harvest:") and job.id not in wanted:
            job.remove()
    for job_id, (endpoint_id, crontab) in wanted.items():
        existing = scheduler.get_job(job_id)
        if existing is not None and getattr(existing, "kwargs", {}).get("crontab") == crontab:
            continue
        scheduler.add_job(_harvest, CronTrigger.from_crontab(crontab, timezone=timezone.utc), id=job_id,
                          name=f"harvest {endpoint_id}", args=[broker, coordinator, endpoint_id],
                          kwargs={"crontab": crontab}, replace_existing=True)


def _harvest(broker, coordinator: Coordinator, endpoint_id: str, crontab: str = "", once: bool = True) -> None:  # noqa: ANN001
    """A scheduled harvest: by the one worker that claims this minute's slot, while no other harvests the
    endpoint."""
    if once and not coordinator.claim(f"harvest:{endpoint_id}", minute_slot()):
        return
    with coordinator.exclusive(f"harvest:{endpoint_id}") as held:
        if not held:
            log.info("harvest of %s skipped: another worker is harvesting it", endpoint_id)
            return
        try:
            broker.harvest.run(endpoint_id)
        except Exception:  # one endpoint's failure must not stop the scheduler
            log.exception("harvest of %s failed", endpoint_id)


def run_forever(broker) -> None:  # noqa: ANN001
    log.info("worker %s: health checks every %s s", broker.launch_runner.holder, broker.settings.health_interval_seconds)
    scheduler = make_scheduler(broker, background=False)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a clean stop hands its launches over at once
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("worker stopped")
    finally:
        broker.launch_runner.close()
