"""The scheduler: runs the periodic jobs (health checks now; harvests and EOSC sync later).

One scheduler per deployment: ``panbroker worker``, or inside ``panbroker serve`` in the embedded
default. Web replicas never run jobs.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger(__name__)


def make_scheduler(broker, *, background: bool) -> BaseScheduler:  # noqa: ANN001 - broker.app.Broker
    """A scheduler with the broker's jobs; a round never overlaps the previous one."""
    cls = BackgroundScheduler if background else BlockingScheduler
    scheduler = cls(timezone=timezone.utc,
                    job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60})
    scheduler.add_job(broker.health.check_all, "interval", id="health-checks", name="health checks",
                      seconds=broker.settings.health_interval_seconds, next_run_time=datetime.now(timezone.utc))
    if broker.eosc.client is not None:
        scheduler.add_job(broker.eosc.sync_all, "interval", id="eosc-sync", name="EOSC sync",
                          seconds=broker.settings.eosc_sync_interval_seconds, next_run_time=datetime.now(timezone.utc))
    scheduler.add_job(broker.launches.advance, "interval", id="launches", name="launches",
                      seconds=broker.settings.launch_poll_seconds, next_run_time=datetime.now(timezone.utc))
    scheduler.add_job(sync_harvest_schedules, "interval", args=[scheduler, broker], id="harvest-schedules",
                      name="harvest schedules", seconds=60, next_run_time=datetime.now(timezone.utc))
    scheduler.add_job(broker.harvest.run_queued, "interval", id="queued-harvests", name="queued harvests",
                      seconds=2, next_run_time=datetime.now(timezone.utc))
    for endpoint_id in broker.harvest.recover_interrupted():  # left running by a process that died
        scheduler.add_job(_harvest, args=[broker, endpoint_id, ""], id=f"retry:{endpoint_id}",
                          name=f"harvest {endpoint_id} (interrupted)", next_run_time=datetime.now(timezone.utc))
    return scheduler


def sync_harvest_schedules(scheduler: BaseScheduler, broker) -> None:  # noqa: ANN001
    """One cron job per search endpoint with a harvest schedule; follows registry changes (and removes the
    datasets of deleted endpoints from the index, which only the worker writes)."""
    from broker.registry_kinds import KINDS

    try:
        broker.harvest.purge_orphans()
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
                          name=f"harvest {endpoint_id}", args=[broker, endpoint_id], kwargs={"crontab": crontab},
                          replace_existing=True)


def _harvest(broker, endpoint_id: str, crontab: str) -> None:  # noqa: ANN001
    try:
        broker.harvest.run(endpoint_id)
    except Exception:  # one endpoint's failure must not stop the scheduler
        log.exception("harvest of %s failed", endpoint_id)


def run_forever(broker) -> None:  # noqa: ANN001
    log.info("worker: health checks every %s s", broker.settings.health_interval_seconds)
    scheduler = make_scheduler(broker, background=False)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("worker stopped")
