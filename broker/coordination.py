"""Coordination of several workers through the store of record (no other moving part).

- A scheduled job runs once per schedule slot across every worker: the worker whose row for
  (job, slot) is inserted first runs it, the others skip that slot.
- Work that must not run twice at once (a harvest of one endpoint) is held under a lock: a PostgreSQL
  session advisory lock on a connection of its own, which the server releases when the holder dies,
  however it dies; on SQLite (one process runs the jobs) a lock of this process.
- Schema migrations run under a lock too (``registry.store.migrate``).
"""
from __future__ import annotations

import logging
import math
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Iterator

from sqlalchemy import delete, text
from sqlalchemy.exc import IntegrityError

from panmodel.clock import utcnow
from registry.models import ScheduledRun
from registry.store import Store, lock_key

log = logging.getLogger(__name__)
KEEP_RUNS = timedelta(days=7)  # claims older than this are pruned


def interval_slot(seconds: float, now: datetime | None = None) -> datetime:
    """The slot of an interval job: time cut into ``seconds``-long windows from the epoch, the same in
    every worker whenever each started."""
    stamp = (now or utcnow()).timestamp()
    return datetime.fromtimestamp(math.floor(stamp / seconds) * seconds, timezone.utc)


def minute_slot(now: datetime | None = None) -> datetime:
    """The slot of a cron job (crontab's resolution is the minute)."""
    return (now or utcnow()).replace(second=0, microsecond=0)


class Coordinator:
    def __init__(self, store: Store, worker: str):
        self.store = store
        self.worker = worker
        self.postgres = store.engine.dialect.name == "postgresql"
        self._local: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def claim(self, job_id: str, slot: datetime) -> bool:
        """True for the one worker that runs ``job_id`` in ``slot``."""
        try:
            with self.store.session() as session:
                session.add(ScheduledRun(job_id=job_id, slot_at=slot, worker=self.worker))
        except IntegrityError:
            return False
        return True

    def prune(self) -> None:
        with self.store.session() as session:
            session.execute(delete(ScheduledRun).where(ScheduledRun.slot_at < utcnow() - KEEP_RUNS))

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Hold ``name`` for the block (True), or learn that another holds it (False), without waiting."""
        if not self.postgres:
            with self._guard:
                lock = self._local.setdefault(name, threading.Lock())
            got = lock.acquire(blocking=False)
            try:
                yield got
            finally:
                if got:
                    lock.release()
            return
        with self.store.engine.connect() as connection:
            got = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(name)}).scalar())
            connection.commit()  # the lock is the session's, not the transaction's
            try:
                yield got
            finally:
                if got:
                    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(name)})
                    connection.commit()

    def held_elsewhere(self, name: str) -> bool:
        """Whether a live process holds ``name`` now."""
        with self.exclusive(name) as got:
            return not got


__all__ = ["Coordinator", "interval_slot", "minute_slot"]
