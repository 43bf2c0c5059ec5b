"""``panbroker serve``: the ASGI app under uvicorn, in ``workers`` processes, with the scheduler beside
them (in this, the parent process) in the embedded mode."""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket

import uvicorn

from broker import datalock, index_roles, logs
from broker.api import metrics
from broker.settings import Settings, prometheus_multiproc_dir
from panbroker.app import Broker, build_broker, create_app
from panbroker.worker import make_scheduler
from panmodel.errors import ConfigurationError

log = logging.getLogger(__name__)
GRACEFUL_SHUTDOWN_SECONDS = 5
# uvicorn kills a worker that does not answer its ping within this; its default of 5 s killed workers that
# were still building the app on a busy machine, again and again (measured here at load 10 on 2 cores)
WORKER_HEALTHCHECK_SECONDS = 60
PR_SET_PDEATHSIG = 1  # open event streams are ended after this at Ctrl-C / SIGTERM


def check_bind(host: str, port: int) -> None:
    """Refuse now, in one line, an address the server could not listen on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _die_with_parent() -> None:
    """A web worker must not outlive its parent (killed with -9, it cannot stop them): left alone, the
    workers would go on answering on its port with nobody running the jobs. Linux delivers SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: uvicorn's own supervision is all there is
        return
    if os.getppid() == 1:  # the parent died before the line above
        os._exit(1)


def worker_app():  # noqa: ANN201 - the app of one worker process (uvicorn's factory)
    """A web worker: serves requests, runs no jobs (the parent's scheduler does)."""
    _die_with_parent()
    broker = build_broker(Settings.from_env(), run_migrations=False)
    broker.harvest.runs_here = False  # the parent's worker writes the index: harvests are queued for it
    return create_app(broker=broker)


def run(settings: Settings, host: str, port: int, with_worker: bool, broker: Broker | None = None,
        workers: int | None = None) -> None:
    logs.configure(settings.log_level, settings.log_format)
    workers = settings.workers if workers is None else workers
    if workers < 1:
        raise ConfigurationError(f"--workers must be at least 1, not {workers}")
    if with_worker:
        datalock.hold(settings.data_dir, "panbroker serve")
        index_roles.claim(settings, "panbroker serve")
    else:
        index_roles.check_reader(settings, "panbroker serve --no-worker")
    check_bind(host, port)
    broker = broker or build_broker(settings)
    if metrics.prune_dead_processes():
        log.info("metrics: dropped the multiprocess files of processes that are gone")
    if workers > 1 and not prometheus_multiproc_dir():
        log.warning("%s web workers and no PROMETHEUS_MULTIPROC_DIR: each scrape of /metrics sees one worker's "
                    "counts (set it to an empty folder shared by the broker's processes)", workers)
    broker.harvest.runs_here = with_worker
    datalock.private_files(settings.data_dir)
    scheduler = make_scheduler(broker, background=True) if with_worker else None
    if scheduler:
        scheduler.start()
    log.info("PaN Broker on http://%s:%s (API UI at /api/v1/ui/), %s worker process%s%s", host, port, workers,
             "es" if workers > 1 else "", ", jobs in this process" if scheduler else "")
    options = dict(host=host, port=port, log_level=settings.log_level.lower(), access_log=False,
                   timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, log_config=None)
    try:
        if workers > 1:
            os.environ.setdefault("PANBROKER_DATA_DIR", str(settings.data_dir))
            uvicorn.run("panbroker.server:worker_app", factory=True, workers=workers,
                        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS, **options)
        else:
            uvicorn.run(create_app(broker=broker), **options)
    finally:
        if scheduler:
            scheduler.shutdown(wait=False)
            broker.launch_runner.close()  # another worker takes this one's launches over at once
