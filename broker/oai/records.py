"""The OAI-PMH feed's memory: when each published dataset last changed, and which were deleted and when.

The harvest tells it what it imported and deleted (``HarvestService``: one ``Batch`` per run, published
after the index commits, so a record's datestamp is never older than the index state a harvester reads).
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

import msgspec
from sqlalchemy import Select, bindparam, select, text
from sqlalchemy.engine import Connection

from panmodel.datasets import Dataset
from panmodel.techniques import PANET_PREFIX
from panmodel.clock import utcnow
from registry.models import OaiRecord
from registry.store import Store, bind_value, run_many, run_rows

CHUNK = 500


def set_specs(dataset: Dataset) -> list[str]:
    """The OAI sets a dataset belongs to: its facility, and each PaNET technique it was measured with (the
    sets ListSets names: the index's technique facet)."""
    iris = dict.fromkeys(t.iri for t in dataset.techniques if t.iri and t.iri.startswith(PANET_PREFIX))
    return [f"facility:{dataset.facility}", *(f"technique:{iri.removeprefix(PANET_PREFIX)}" for iri in iris)]


@dataclass(frozen=True)
class Entry:
    pid: str
    facility: str
    sets: str
    doi: str | None
    digest: str


def entry(dataset: Dataset, encoded: bytes | None = None) -> Entry:
    """The feed's entry of ``dataset`` (``encoded``: its ``msgspec.json.encode``, when the caller has it)."""
    # the record's content less the endpoint it came from, encoded by msgspec (fields in declaration order:
    # deterministic), a tenth of json.dumps of to_dict per record, which a harvest of millions pays
    encoded = msgspec.json.encode(dataset) if encoded is None else encoded
    content = encoded.replace(b',"source":' + msgspec.json.encode(dataset.source), b"", 1)
    digest = hashlib.sha256(content).hexdigest()
    return Entry(dataset.pid, dataset.facility, "|" + "|".join(set_specs(dataset)) + "|", dataset.doi, digest)


class Batch:
    """What one harvest changed, written at once by ``publish``."""

    def __init__(self, log: "RecordLog"):
        self.log = log
        # by pid: a facility can list a pid twice in one harvest (pages that shift while it is read); the
        # last listing wins, as in the index, and the feed gets one row
        self.changed: dict[str, Entry] = {}

    def add(self, datasets: Iterable[Dataset]) -> None:
        """Note the datasets whose content is new or differs from what the feed last published."""
        self.add_entries([entry(d) for d in datasets])

    def add_entries(self, entries: list[Entry]) -> None:
        """``add`` of datasets already made into ``entry``s (by a harvest's mapping processes)."""
        for start in range(0, len(entries), CHUNK):
            chunk = entries[start:start + CHUNK]
            with self.log.store.engine.connect() as connection:
                known = {pid: (digest, bool(deleted)) for pid, digest, deleted in _known(connection, [e.pid for e in chunk])}
            for e in chunk:
                if known.get(e.pid) != (e.digest, False):
                    self.changed[e.pid] = e
                else:  # listed again as the feed already has it
                    self.changed.pop(e.pid, None)

    def publish(self, deleted: Iterable[str] = ()) -> None:
        self.log.write(list(self.changed.values()), deleted)
        self.changed = {}


_TABLE = OaiRecord.__table__
_COLUMNS = ("pid", "facility", "sets", "doi", "digest", "datestamp", "deleted")
# one row per pid whoever wrote it first: two harvests side by side (two endpoints listing a pid, or one
# endpoint twice) may both find a pid new; an upsert, as SQLite (3.24+) and PostgreSQL both write it
_UPSERT = text(f"INSERT INTO {_TABLE.name} ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)}) "
               f"ON CONFLICT (pid) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _COLUMNS[1:])}")


def _known(connection: Connection, pids: list[str]) -> list[Any]:
    """(pid, digest, deleted) of those of ``pids`` the feed has a row for. The statement of each number of pids
    is compiled once, and its rows read through the driver (``run_rows``): a select of 500 literal values,
    built and compiled for each chunk, was a third of a first harvest's time in the feed."""
    return run_rows(connection, _known_statement(len(pids)), {f"p{i}": pid for i, pid in enumerate(pids)})


@functools.lru_cache(maxsize=8)
def _known_statement(count: int) -> Select:
    return select(_TABLE.c.pid, _TABLE.c.digest, _TABLE.c.deleted).where(
        _TABLE.c.pid.in_([bindparam(f"p{i}") for i in range(count)]))


class RecordLog:
    def __init__(self, store: Store):
        self.store = store

    def batch(self) -> Batch:
        return Batch(self)

    def write(self, changed: list[Entry], deleted: Iterable[str], now: datetime | None = None) -> None:
        """Stamp ``changed`` records as changed now and ``deleted`` pids as deleted now."""
        now = now or utcnow()
        # Core statements, a chunk at a time, in one transaction: a first harvest of millions writes a row per
        # dataset, and a commit per chunk was a tenth of its import time (each one a sync to disk)
        # (and the rows go to the driver as they are: ``run_many``; a pid twice is one row, the upsert's)
        with self.store.engine.begin() as connection:
            stamp, live = bind_value(connection, _TABLE.c.datestamp, now), bind_value(connection, _TABLE.c.deleted, False)
            for start in range(0, len(changed), CHUNK):
                run_many(connection, _UPSERT, [{"pid": e.pid, "facility": e.facility, "sets": e.sets, "doi": e.doi,
                                                "digest": e.digest, "datestamp": stamp, "deleted": live}
                                               for e in changed[start:start + CHUNK]])
        gone = list(dict.fromkeys(deleted))
        for start in range(0, len(gone), CHUNK):
            with self.store.session() as session:
                for row in session.scalars(select(OaiRecord).where(OaiRecord.pid.in_(gone[start:start + CHUNK]),
                                                                   OaiRecord.deleted.is_(False))):
                    row.deleted, row.datestamp = True, now
