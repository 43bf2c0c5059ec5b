"""``panbroker serve``: the ASGI app under uvicorn, with the scheduler beside it in the embedded mode."""
from __future__ import annotations

import logging

import uvicorn

from broker.app import Broker, build_broker, create_app
from broker.settings import Settings
from broker.worker import make_scheduler

log = logging.getLogger(__name__)


def run(settings: Settings, host: str, port: int, with_worker: bool, broker: Broker | None = None) -> None:
    broker = broker or build_broker(settings)
    app = create_app(broker=broker)
    scheduler = make_scheduler(broker, background=True) if with_worker else None
    if scheduler:
        scheduler.start()
    log.info("PaN Broker on http://%s:%s (API UI at /api/v1/ui/)%s", host, port,
             " with embedded worker" if scheduler else "")
    try:
        uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(), access_log=False)
    finally:
        if scheduler:
            scheduler.shutdown(wait=False)
