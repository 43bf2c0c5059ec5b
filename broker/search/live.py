"""Live fan-out: every selected facility's Search API asked at once, under one deadline.

Facilities are asked only for what they all apply the same way (access, dates, pids and the words as
``query``); every record that comes back is checked against the whole request (``matching``), so a
facility that ignores part of a filter never makes a non-match look like a match. A facility is paged
until the answer has enough of its matches or it has none left; one that cannot be read to that point
within the deadline is reported incomplete, and the answer partial.

Paging is global: for page p of size s every facility is asked for its first p*s matches, and the
merged list is cut at [offset, offset+s]. By date when sorting by date (or without words), otherwise by
the broker's own word score (facility scores are not comparable, and the reference's are all 0), then
by each facility's own rank. Duplicates (same pid or DOI) are merged.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import msgspec

from broker.search.matching import (
    matches_filters,
    might_match,
    needs_checking,
    query_words,
    text_score,
    year_bounds,
)
from panmodel.datasets import Dataset, FacetBucket, SearchRequest, SearchResult, Sort, SourceState, SourceStatus
from panmodel.techniques import panet
from connectors import connector_for
from connectors.errors import CircuitOpen, UpstreamError, UpstreamTimeout
from connectors.http import HttpClient

log = logging.getLogger(__name__)

COUNT_TTL_SECONDS = 10.0  # a facility's total may lag this much behind it
MIN_PAGE = 100  # records asked per call while a facility's answer still needs checking
MAX_PAGE = 1000  # LoopBack implementations' own ceiling
#: relations a live answer shows and checks (files can be long and are left to the dataset's page)
LIVE_RELATIONS = ("techniques", "instrument", "parameters", "samples", "documents", "document")


@dataclass(frozen=True)
class LiveSource:
    endpoint_id: str
    facility: str
    kind: str
    base_url: str


@dataclass(frozen=True)
class _Answer:
    datasets: list[tuple[float, Dataset]]  # (word score, dataset) in the facility's order
    complete: bool  # every match the window needs was read (or the facility has no more)
    exhausted: bool  # the facility has no further records for this filter
    note: str | None = None


def to_filter(request: SearchRequest) -> dict[str, Any]:
    """The LoopBack ``where`` every implementation applies alike: access, creation dates, pids."""
    conditions: list[dict[str, Any]] = []
    if request.is_public is not None:
        conditions.append({"isPublic": request.is_public})
    if request.years:
        low, high = year_bounds(request.years.low, request.years.high)
        if low and high:
            conditions.append({"creationDate": {"between": [low, high]}})
        elif low:
            conditions.append({"creationDate": {"gte": low}})
        elif high:
            conditions.append({"creationDate": {"lte": high}})
    if request.pids:
        conditions.append({"pid": {"inq": list(request.pids)}})
    if not conditions:
        return {}
    return conditions[0] if len(conditions) == 1 else {"and": conditions}


class LiveSearch:
    def __init__(self, http: HttpClient, *, deadline: float):
        self.http = http
        self.deadline = deadline
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="fan-out")
        self._counts: dict[tuple[str, str], tuple[float, Future]] = {}
        self._counts_lock = threading.Lock()
        self._reads: dict[tuple[LiveSource, SearchRequest, int], Future] = {}  # facility reads under way
        self._reads_lock = threading.RLock()

    def search(self, request: SearchRequest, sources: list[LiveSource]) -> SearchResult:
        started = time.monotonic()
        window = request.offset + request.limit
        where = to_filter(request)
        checked = needs_checking(request)
        answers_f = {s.facility: self._answer_future(s, request, where, window, started) for s in sources}
        # a facility's own count is the total only when it applies every condition itself
        counts_f = {} if checked else {s.facility: self._count_future(s, where, started) for s in sources}
        done, _ = wait([*answers_f.values(), *counts_f.values()], timeout=self.deadline)
        answers: dict[str, _Answer] = {}
        statuses: list[SourceStatus] = []
        totals: list[tuple[int, bool]] = []  # (facility total, exact)
        for source in sources:
            future = answers_f[source.facility]
            if future not in done:
                statuses.append(SourceStatus(source.facility, SourceState.TIMEOUT, round(self.deadline * 1000, 1),
                                             error=f"no answer within the {self.deadline:g} s deadline",
                                             complete=False))
                totals.append((0, False))
                continue
            state, answer, error, latency = future.result()
            count = _result(counts_f.get(source.facility), done)
            if answer is None:
                statuses.append(SourceStatus(source.facility, state, latency, None, error, complete=False))
                totals.append((0, False))
                continue
            answers[source.facility] = answer
            total, exact = ((len(answer.datasets), True) if answer.exhausted
                            else (count, True) if count is not None and answer.complete
                            else (len(answer.datasets), False))
            totals.append((total, exact))
            statuses.append(SourceStatus(source.facility, state, latency, total if exact else None,
                                         answer.note, complete=answer.complete))
        ranked = bool(request.q.strip()) and request.sort is Sort.RELEVANCE
        items, duplicates = merge([answers[s.facility].datasets for s in sources if s.facility in answers],
                                  request.sort, ranked)
        exact = all(e for _, e in totals) and duplicates == 0
        total = max(len(items), sum(t for t, _ in totals) - duplicates)
        page = items[request.offset:request.offset + request.limit]
        return SearchResult(page, total, facets_of(items, request.facets), sorted(statuses, key=lambda s: s.facility),
                            total_exact=exact, facets_exact=False)

    def _remaining(self, started: float) -> float:
        return self.deadline - (time.monotonic() - started)

    def _answer_future(self, source: LiveSource, request: SearchRequest, where: dict[str, Any], window: int,
                       started: float) -> Future:
        """The facility's answer to ``request``: searches that ask the same of it at the same moment share
        one read (a burst of one search asked the facility once, not once a user, and did not run into its
        bound of calls in flight). Only reads under way are shared: an answer is never kept."""
        key = (source, request, window)
        with self._reads_lock:
            future = self._reads.get(key)
            if future is None:
                future = self._reads[key] = self._pool.submit(self._gather, source, request, where, window, started)
                future.add_done_callback(lambda done, key=key: self._forget_read(key, done))
            return future

    def _forget_read(self, key: tuple[LiveSource, SearchRequest, int], future: Future) -> None:
        with self._reads_lock:
            if self._reads.get(key) is future:
                del self._reads[key]

    def _count_future(self, source: LiveSource, where: dict[str, Any], started: float) -> Future:
        """The facility's count for ``where``: one call shared by the searches that ask at once, and reused
        for COUNT_TTL_SECONDS (paging through a search, or a burst of the same search, costs one count)."""
        key = (source.base_url, json.dumps(where, sort_keys=True))
        now = time.monotonic()
        with self._counts_lock:
            known = self._counts.get(key)
            if known and (not known[1].done() or now - known[0] < COUNT_TTL_SECONDS) and not (
                    known[1].done() and known[1].result() is None):
                return known[1]
            future = self._pool.submit(self._count, source, where, started)
            self._counts[key] = (now, future)
            if len(self._counts) > 10_000:  # forget the oldest half; counts are cheap to ask again
                for old in sorted(self._counts, key=lambda k: self._counts[k][0])[:5_000]:
                    del self._counts[old]
            return future

    def _count(self, source: LiveSource, where: dict[str, Any], started: float) -> int | None:
        try:
            return connector_for(source.kind).count(self.http, source.base_url, where,
                                                    max(0.05, self._remaining(started)))
        except UpstreamError:
            return None

    def _gather(self, source: LiveSource, request: SearchRequest, where: dict[str, Any], window: int,
                started: float) -> tuple[SourceState, _Answer | None, str | None, float]:
        try:
            answer = self._read(source, request, where, window, started)
            state, error = SourceState.OK, None
        except CircuitOpen as exc:
            state, answer, error = SourceState.SKIPPED, None, exc.detail
        except UpstreamTimeout as exc:
            state, answer, error = SourceState.TIMEOUT, None, exc.detail
        except UpstreamError as exc:
            state, answer, error = SourceState.ERROR, None, exc.detail
        except Exception as exc:  # noqa: BLE001 - one facility's answer the broker failed to read is that facility's error
            log.exception("live search: reading %s's answer failed", source.facility)
            state, answer, error = SourceState.ERROR, None, f"the broker could not read its answer ({type(exc).__name__})"
        return state, answer, error, round((time.monotonic() - started) * 1000, 1)

    def _read(self, source: LiveSource, request: SearchRequest, where: dict[str, Any], window: int,
              started: float) -> _Answer:
        """The facility's matches, paged until the window has enough of them or the facility none left."""
        connector = connector_for(source.kind)
        checked = needs_checking(request)
        size = min(MAX_PAGE, max(window, MIN_PAGE) if checked else window)
        if self._remaining(started) <= 0.05:  # queued behind hung facilities until the answer was given up
            return _Answer([], False, False, _incomplete(0, 0, 0, "the deadline"))
        include = connector.include(self.http, source.base_url, max(0.05, self._remaining(started)), LIVE_RELATIONS)
        flt: dict[str, Any] = {"limit": size, "include": include}
        if where:
            flt["where"] = where
        if request.q.strip():
            flt["query"] = request.q.strip()
        if request.sort is Sort.OLDEST:
            flt["order"] = "creationDate ASC"
        elif request.sort is Sort.NEWEST or not request.q.strip():
            flt["order"] = "creationDate DESC"
        found: list[tuple[float, Dataset]] = []
        skip, dropped, unusable, words_note = 0, 0, 0, ""
        words = query_words(request.q)
        might_hold = _MightHold(words, request.any_term)
        while True:
            remaining = self._remaining(started)
            if remaining <= 0.05:
                return _Answer(found, False, False, _incomplete(len(found), skip, dropped, "the deadline"))
            # a connector that can leaves each record encoded until it is kept (``find_raw``)
            find = getattr(connector, "find_raw", connector.find)
            records = find(self.http, source.base_url, {**flt, "skip": skip, "limit": size}, remaining)
            scored = bool(request.q.strip()) and _scored(records, connector)  # scores mean nothing without words
            for record in records:
                if words and not scored and not might_hold(record):
                    dropped += 1  # cheaper than mapping every record of a facility that ignores the words
                    continue
                if isinstance(record, msgspec.Raw):
                    record = connector.decode_record(record)
                try:
                    dataset = connector.to_dataset(record, source.facility, source.endpoint_id)
                except UpstreamError:
                    unusable += 1  # one unusable record does not void the facility's answer
                    continue
                score = text_score(request, dataset)
                if scored and request.q.strip():
                    score = max(score, 0.5)  # the facility matched the words, maybe in fields not sent
                if score <= 0 or not matches_filters(request, dataset):
                    dropped += 1
                    continue
                found.append((score, dataset))
            skip += len(records)
            exhausted = len(records) < size
            if request.q.strip() and not scored:
                words_note = ("the facility does not rank by words (its scores are 0): the broker matched them in "
                              "each dataset's own fields (title, samples, techniques, instrument)")
            if exhausted or len(found) >= window:
                note = "; ".join(filter(None, [
                    words_note, f"{dropped} of {skip} records sent did not match and were left out" if dropped else "",
                    f"{unusable} unusable records skipped" if unusable else ""])) or None
                return _Answer(found, True, exhausted, note)
            size = MAX_PAGE if checked else size  # the next pages in as few calls as the facility allows


def _raw_text(record: Any) -> str:
    """Every string in a raw record (a superset of the fields the words are matched in), for a cheap pre-check."""
    if isinstance(record, str):
        return record
    if isinstance(record, dict):
        return " ".join(_raw_text(v) for v in record.values())
    if isinstance(record, list):
        return " ".join(_raw_text(v) for v in record)
    return ""


# the only characters beyond ASCII whose lower case holds an ASCII letter: KELVIN SIGN (k), İ (i + dot);
# their leading bytes are looked for first (one byte is found many times faster than a sequence)
_KELVIN, _DOTTED_I = "\u212a".encode(), "\u0130".encode()


def _lowers_to_ascii(data: bytes) -> bool:
    return (_KELVIN[:1] in data and _KELVIN in data) or (_DOTTED_I[:1] in data and _DOTTED_I in data)


class _MightHold:
    """``might_match`` of a record, cheaply: one still encoded is searched for each word's stem in its
    lowercased text (a word the record holds has its stem there), which costs a fraction of listing its
    words. For words in ASCII its bytes are lowercased as they are, without decoding (bytes lower ASCII
    letters only, and no other character lowers to one but the two checked); one with escapes
    (``\\u00e9``: its text is not its words) is decoded first."""

    def __init__(self, terms: list[str], any_term: bool):
        self.terms, self.any_term = terms, any_term
        self.combine = any if any_term else all
        self.ascii = tuple(t.encode() for t in terms) if all(t.isascii() for t in terms) else None

    def __call__(self, record: Any) -> bool:
        if isinstance(record, msgspec.Raw):
            data = bytes(record)
            if b"\\" not in data:
                if self.ascii is not None and (data.isascii() or not _lowers_to_ascii(data)):
                    lowered_bytes = data.lower()
                    return self.combine(term in lowered_bytes for term in self.ascii)
                lowered = data.decode().lower()
                return self.combine(term in lowered for term in self.terms)
            record = msgspec.json.decode(data)
        return might_match(self.terms, self.any_term, _raw_text(record))


SCORED_LOOK = 5  # records read for a score: a facility that ranks sends its best first


def _scored(records: list[Any], connector: Any) -> bool:
    """True when the facility ranked by the words: one of its first records carries a positive score."""
    scores = (connector.score_of(r) if isinstance(r, msgspec.Raw) else r.get("score") if isinstance(r, dict) else None
              for r in records[:SCORED_LOOK])
    return any(isinstance(score, (int, float)) and score > 0 for score in scores)


def _incomplete(found: int, read: int, dropped: int, why: str) -> str:
    return (f"incomplete: {found} matches among the first {read} records ({dropped} did not match); "
            f"reading further was stopped by {why}")


def _result(future: Future | None, done: set) -> Any:
    return future.result() if future is not None and future in done else None


def facets_of(datasets: list[Dataset], names: tuple[str, ...]) -> dict[str, list[FacetBucket]]:
    """Facet counts over the datasets the facilities sent (a live answer has no index to count in)."""
    values = {
        "facility": lambda d: [d.facility], "instrument": lambda d: [d.instrument] if d.instrument else [],
        "technique": lambda d: [t.iri for t in d.techniques if t.iri], "year": lambda d: [str(d.year)] if d.year else [],
        "access": lambda d: ["public" if d.is_public else "embargoed"],
    }
    facets = {}
    for name in names:
        counts = Counter(v for d in datasets for v in values[name](d))
        ordered = (sorted(counts.items(), reverse=True) if name == "year"
                   else sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        facets[name] = [FacetBucket(v, c, panet().label(v) if name == "technique" else None) for v, c in ordered]
    return facets


def merge(lists: list[list[tuple[float, Dataset]]], sort: Sort, ranked: bool) -> tuple[list[Dataset], int]:
    """One ranking of several facilities' ordered answers, duplicates merged; returns (items, duplicates)."""
    if not ranked:
        newest = sort is not Sort.OLDEST
        ordered = sorted((d for answer in lists for _, d in answer),
                         key=lambda d: (_stamp(d) * (-1 if newest else 1), d.facility, d.pid))
    else:
        ordered = [d for _, _, _, d in sorted((-score, rank, i, d) for i, answer in enumerate(lists)
                                              for rank, (score, d) in enumerate(answer))]
    seen: set[str] = set()
    merged = []
    for dataset in ordered:
        keys = {dataset.pid.lower(), *([dataset.doi.lower()] if dataset.doi else [])}
        if keys & seen:
            continue
        seen |= keys
        merged.append(dataset)
    return merged, len(ordered) - len(merged)


def _stamp(dataset: Dataset) -> float:
    return dataset.creation_date.timestamp() if dataset.creation_date else 0.0
