"""The pids one harvest has met, in memory that hardly grows with them: a harvest of millions kept each pid
as a string in a set (about 120 bytes a dataset, 120 MB at a million); this keeps each one's 64-bit hash
(8 bytes) and a one-hash Bloom filter of them (4 bytes).

Two hashes alike are two pids alike to it (about 3 in 100 million at a million pids, by the birthday
bound): a dataset gone from the source whose hash is a seen one's would stay in the index until the next
complete harvest. The filter's false positives (about 3 %) only cost a look-up that was not needed.

And which harvests of the process overlap (``RunningHarvests``).
"""
from __future__ import annotations

import threading
from array import array
from collections import Counter
from contextlib import contextmanager
from typing import Iterable, Iterator

BITS_PER_PID = 32  # the filter doubles before it holds fewer bits a pid than this
FIRST_BITS = 1 << 20


class SeenPids:
    def __init__(self) -> None:
        self._hashes = array("q")
        self._bits = bytearray(FIRST_BITS // 8)
        self._mask = FIRST_BITS - 1

    def __len__(self) -> int:
        """The number of distinct pids met (of distinct hashes: see the module's note)."""
        return len(set(self._hashes))

    def first_met(self, pids: list[str]) -> set[str]:
        """Those of ``pids`` (one page, before ``add``) surely met for the first time: not met before and
        listed once on the page."""
        bits, mask = self._bits, self._mask
        first = {pid for pid in pids if not bits[(at := hash(pid) & mask) >> 3] >> (at & 7) & 1}
        if len(set(pids)) != len(pids):
            first -= {pid for pid, times in Counter(pids).items() if times > 1}
        return first

    def add(self, pids: list[str]) -> None:
        hashes = [hash(pid) for pid in pids]  # a str caches its hash: computed once whoever asks
        self._hashes.extend(hashes)
        if len(self._hashes) * BITS_PER_PID > len(self._bits) * 8:
            size = len(self._bits) * 8
            while len(self._hashes) * BITS_PER_PID > size:
                size *= 2
            self._bits, self._mask = bytearray(size // 8), size - 1
            hashes = self._hashes
        _set(self._bits, self._mask, hashes)

    def missing(self, held: Iterable[str]) -> set[str]:
        """Those of ``held`` never met."""
        met = set(self._hashes)
        return {pid for pid in held if hash(pid) not in met}


def _set(bits: bytearray, mask: int, hashes: Iterable[int]) -> None:
    for value in hashes:
        at = value & mask
        bits[at >> 3] |= 1 << (at & 7)


class RunningHarvests:
    """The harvests running in this process (a worker's scheduler runs endpoints' harvests side by side),
    for the one thing a first harvest may only do alone: add datasets without a look-up of an older version.
    Another harvest started meanwhile may add the same pids, which neither sees in the index before it
    commits: a harvest is ``alone`` while no other runs and none started after it. ``lock`` is held from that
    question until the page it answers for is in the index, so no harvest starts in between."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._running = 0
        self._started = 0

    @contextmanager
    def running(self) -> Iterator[int]:
        """Count a harvest as running; yields its number, for ``alone``."""
        with self.lock:
            self._running += 1
            self._started += 1
            number = self._started
        try:
            yield number
        finally:
            with self.lock:
                self._running -= 1

    def alone(self, number: int) -> bool:
        """Whether harvest ``number`` has run alone so far (ask holding ``lock``)."""
        return self._running == 1 and self._started == number
