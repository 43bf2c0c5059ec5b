"""A harvest's stages run side by side: pages are fetched (HTTP and decoding) in one thread and mapped into
``Dataset``s in another while the caller indexes the previous ones. Bounded queues sit between the stages,
so a harvest of millions holds a few pages at a time, whatever the source's size; a stage that fails
stops the others and its error reaches the caller.
"""
from __future__ import annotations

import gc
import queue
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from broker.search.model import Dataset

DEPTH = 4  # pages waiting between two stages
GC_EVERY = 50_000  # allocations between the young generation's collections while harvesting (Python: 700)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect the young generation less often: a harvest allocates millions of small objects that live
    on, and the default cadence collected them again and again (half the mapping time, measured)."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], GC_EVERY), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


@dataclass
class MappedPage:
    """One source page, mapped: what the import stage needs of it."""

    datasets: list[Dataset]
    gathered: int  # items listed (deletion notices excluded)
    removed: list[str] = field(default_factory=list)  # pids an incremental source says it deleted
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (item, stage, error)
    resume: str | None = None  # where a harvest resumes after this page


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


_END = object()


class Pipeline:
    """``pages`` read in one thread, each turned into a ``MappedPage`` by ``map_page`` in another; iterate
    to get them in order. ``close`` (or leaving a ``with``) stops both threads."""

    def __init__(self, pages: Iterable[Any], map_page: Callable[[Any], MappedPage], depth: int = DEPTH):
        self._stop = threading.Event()
        self._fetched: queue.Queue = queue.Queue(depth)
        self._mapped: queue.Queue = queue.Queue(depth)
        self._threads = [threading.Thread(target=self._run, args=(iter(pages), self._fetched, None),
                                          name="harvest-fetch", daemon=True),
                         threading.Thread(target=self._run, args=(self._drain(self._fetched), self._mapped, map_page),
                                          name="harvest-map", daemon=True)]
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
