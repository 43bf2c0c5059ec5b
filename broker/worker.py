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

log = logging.getLogger(__name__)


def make_scheduler(broker, *, background: bool) -> BaseScheduler:  # noqa: ANN001 - broker.app.Broker
    """A scheduler with the broker's jobs; a round never overlaps the previous one."""
    cls = BackgroundScheduler if background else BlockingScheduler
    scheduler = cls(timezone=timezone.utc,
                    job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60})
    scheduler.add_job(broker.health.check_all, "interval", id="health-checks", name="health checks",
                      seconds=broker.settings.health_interval_seconds, next_run_time=datetime.now(timezone.utc))
    return scheduler


def run_forever(broker) -> None:  # noqa: ANN001
    log.info("worker: health checks every %s s", broker.settings.health_interval_seconds)
    scheduler = make_scheduler(broker, background=False)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("worker stopped")
