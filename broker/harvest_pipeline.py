"""A harvest's stages run side by side: pages are fetched in one thread and mapped (decoded, made into
``Dataset``s, then into what the index and the OAI-PMH feed take) in another, or in a pool of processes,
while the caller imports the previous ones. Bounded queues sit between the stages and a bounded number of
pages is in the pool, so a harvest of millions holds a few pages at a time, whatever the source's size;
pages come out in order; a stage that fails stops the others and its error reaches the caller.
"""
from __future__ import annotations

import functools
import gc
import multiprocessing
import os
import queue
import select
import sys
import threading
import time
from collections import deque
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import msgspec

from broker.oai.records import Entry, entry
from connectors import connector_for
from connectors.capabilities import Harvester
from connectors.errors import UpstreamError
from connectors.http import HttpClient
from panmodel.states import HarvestStage

DEPTH = 4  # pages waiting between two stages
GC_EVERY = 50_000  # allocations between the young generation's collections while harvesting (Python: 700)


SWITCH_SECONDS = 0.0001  # how often the interpreter hands the GIL over while harvesting (Python: 0.005)


class _HarvestTuning:
    """The interpreter as a harvest runs best in it, for as long as any harvest of the process runs:
    - the young generation collected less often: a harvest allocates millions of small objects that live on,
      and the default cadence collected them again and again (half the mapping time, measured);
    - the GIL handed over every 0.1 ms: the index writer gives it up twice a dataset while tantivy works,
      and waited for another thread's whole 5 ms slice to get it back (beside one busy thread, an add took
      3.9 ms instead of 26 µs; a harvest of 60,000 ran at 2,450 datasets/s, and at 3,050 with 0.1 ms)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._harvests = 0
        self._before: tuple[tuple[int, ...], float] = ((), 0.0)

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._harvests == 0:
                self._before = (gc.get_threshold(), sys.getswitchinterval())
                gc.set_threshold(max(self._before[0][0], GC_EVERY), *self._before[0][1:])
                sys.setswitchinterval(min(self._before[1], SWITCH_SECONDS))
            self._harvests += 1
        try:
            yield
        finally:
            with self._lock:
                self._harvests -= 1
                if self._harvests == 0:
                    gc.set_threshold(*self._before[0])
                    sys.setswitchinterval(self._before[1])


harvest_tuning = _HarvestTuning()


@dataclass
class MappedPage:
    """One source page, mapped: what the import stage needs of it (``pids``, ``entries`` and ``documents``
    align: one per dataset)."""

    pids: list[str]
    entries: list[Entry]  # for the OAI-PMH feed
    documents: list[Any]  # for the index (its ``prepare``)
    gathered: int  # items listed (deletion notices excluded)
    removed: list[str] = field(default_factory=list)  # pids an incremental source says it deleted
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (item, stage, error)
    resume: str | None = None  # where a harvest resumes after this page


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


_END = object()


class Pipeline:
    """``pages`` read in one thread, each turned into a ``MappedPage`` by ``map_page`` in another (or, given
    ``pool``, in its processes: ``map_page`` must pickle then); iterate to get them in order. ``close`` (or
    leaving a ``with``) stops both threads."""

    def __init__(self, pages: Iterable[Any], map_page: Callable[[Any], MappedPage], depth: int = DEPTH,
                 pool: Executor | None = None):
        self._stop = threading.Event()
        self._fetched: queue.Queue = queue.Queue(depth)
        self._mapped: queue.Queue = queue.Queue(depth)
        fetched = self._drain(self._fetched)
        mapping = (self._run, (fetched, self._mapped, map_page)) if pool is None else \
            (self._run, (_in_pool(pool, map_page, fetched, depth), self._mapped, None))
        self._threads = [threading.Thread(target=self._run, args=(iter(pages), self._fetched, None),
                                          name="harvest-fetch", daemon=True),
                         threading.Thread(target=mapping[0], args=mapping[1], name="harvest-map", daemon=True)]
        for thread in self._threads:
            thread.start()

    def __iter__(self) -> Iterator[MappedPage]:
        return self._drain(self._mapped)

    def _drain(self, source: queue.Queue) -> Iterator[Any]:
        while True:
            item = self._get(source)
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item

    def _run(self, items: Iterator[Any], out: queue.Queue, transform: Callable[[Any], Any] | None) -> None:
        try:
            for item in items:
                if not self._put(out, transform(item) if transform else item):
                    return
            self._put(out, _END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put(out, _Failed(exc))

    def _put(self, out: queue.Queue, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, source: queue.Queue) -> Any:
        while True:
            try:
                return source.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return _END

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _in_pool(pool: Executor, map_page: Callable[[Any], MappedPage], pages: Iterator[Any],
             depth: int) -> Iterator[MappedPage]:
    """``map_page`` of each page in ``pool``'s processes, at most ``depth`` pages there at once, in order."""
    pending: deque = deque()
    try:
        for page in pages:
            pending.append(pool.submit(map_page, page))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def map_page(connector: Harvester, page: Any, facility: str, endpoint_id: str,
             prepare: Callable[[list[Any], list[bytes]], list[Any]], client: HttpClient | None = None) -> MappedPage:
    """Fetch (where the connector fetches items one by one), decode and map one gathered page, and make
    its datasets into what the index (``prepare``) and the OAI-PMH feed take."""
    encoded = getattr(page, "encoded", None)
    items = connector.decode(encoded) if encoded is not None else page
    removed = [item["deleted"] for item in items if isinstance(item, dict) and "deleted" in item]
    items = [item for item in items if not (isinstance(item, dict) and "deleted" in item)]
    errors: list[tuple[str, str, str]] = []
    if connector.fetches():  # a source whose listings carry whole records keeps them as they are
        fetched = []
        for item in items:
            try:
                fetched.append(connector.fetch(client, item))
            except UpstreamError as exc:
                errors.append((_item_id(item), HarvestStage.FETCH.value, exc.detail))
    else:
        fetched = items
    datasets = []
    for item in fetched:
        try:
            datasets.append(connector.to_dataset(item, facility, endpoint_id))
        except UpstreamError as exc:
            errors.append((_item_id(item), HarvestStage.IMPORT.value, exc.detail))
    encoded = [msgspec.json.encode(d) for d in datasets]  # the index's document and the feed's digest hold it
    return MappedPage([d.pid for d in datasets], [entry(d, e) for d, e in zip(datasets, encoded)],
                      prepare(datasets, encoded), len(items),
                      removed, errors, getattr(page, "resume", None))


@contextmanager
def mapping_pool(processes: int) -> Iterator[ProcessPoolExecutor | None]:
    """``processes`` processes to map pages in (None for 0), stopped on leaving. They are forked from a
    fork server (a clean process that preloaded this module), never from the caller, whose threads, locks
    and database connections a fork would copy half-held."""
    if processes <= 0:
        yield None
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "connectors.panosc_search"])
    pool = ProcessPoolExecutor(processes, mp_context=context, initializer=_start_mapping_process,
                               initargs=(os.getpid(),))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _start_mapping_process(harvester: int) -> None:
    gc.set_threshold(GC_EVERY, *gc.get_threshold()[1:])  # as ``harvest_tuning``, for the process's life
    threading.Thread(target=_exit_with, args=(harvester,), name="harvester-watch", daemon=True).start()


def _exit_with(harvester: int) -> None:
    """End this mapping process when the process it maps for ends: a harvester killed (-9) cannot stop its
    pool, whose processes would otherwise wait for pages for ever (and keep the fork server alive)."""
    try:
        watch = os.pidfd_open(harvester)
    except (AttributeError, OSError):  # gone already, or no pidfd here: look every second
        while _alive(harvester):
            time.sleep(1)
    else:
        select.select([watch], [], [])
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def pool_mapper(kind: str, facility: str, endpoint_id: str,
                prepare: Callable[[list[Any], list[bytes]], list[Any]]) -> Callable[[Any], MappedPage]:
    """``map_page`` for a mapping process: picklable, it finds the connector there by its kind."""
    return functools.partial(_map_elsewhere, kind, facility, endpoint_id, prepare)


def _map_elsewhere(kind: str, facility: str, endpoint_id: str, prepare: Callable[[list[Any], list[bytes]], list[Any]],
                   page: Any) -> MappedPage:
    return map_page(connector_for(kind), page, facility, endpoint_id, prepare)


def _item_id(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("pid") or item.get("id") or "?")
    return str(getattr(item, "pid", None) or item)[:100]
