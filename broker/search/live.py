"""Live fan-out: one query to every selected facility's Search API at once, under one deadline.

Paging is global: for page p of size s every facility is asked for its first p*s matches, and the
merged list is cut at [offset, offset+s]. The merged ranking does not use facility scores (they are
not comparable): by date when sorting by date, otherwise by each facility's own rank, interleaved
(the item ranked r at one facility comes before every item ranked r+1 anywhere), which is stable
from page to page. Duplicates (same pid or DOI) are merged.
"""
from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from broker.search.model import (
    Dataset,
    FacetBucket,
    SearchRequest,
    SearchResult,
    Sort,
    SourceState,
    SourceStatus,
)
from broker.search.techniques import panet
from broker.search.units import INDEXED_PARAMETERS
from connectors import connector_for
from connectors.errors import CircuitOpen, UpstreamError, UpstreamTimeout
from connectors.http import HttpClient


@dataclass(frozen=True)
class LiveSource:
    endpoint_id: str
    facility: str
    kind: str
    base_url: str


@dataclass(frozen=True)
class _Answer:
    datasets: list[Dataset]
    count: int | None


def to_filter(request: SearchRequest, window: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The LoopBack filter (for /Datasets) and where clause (for /count) asking for the first ``window``."""
    where: dict[str, Any] = {}
    conditions: list[dict[str, Any]] = []
    if request.is_public is not None:
        conditions.append({"isPublic": request.is_public})
    if request.years:
        low = f"{int(request.years.low)}-01-01T00:00:00Z" if request.years.low is not None else "0001-01-01"
        high = f"{int(request.years.high)}-12-31T23:59:59Z" if request.years.high is not None else "9999-12-31"
        conditions.append({"creationDate": {"between": [low, high]}})
    if request.pids:
        conditions.append({"pid": {"inq": list(request.pids)}})
    if conditions:
        where = conditions[0] if len(conditions) == 1 else {"and": conditions}
    include: list[dict[str, Any]] = [{"relation": r} for r in ("documents", "instrument", "files")]
    technique_scope = ({"where": {"pid": {"inq": panet().with_descendants(list(request.techniques))}}}
                       if request.techniques else None)
    include.append({"relation": "techniques", **({"scope": technique_scope} if technique_scope else {})})
    if request.instruments:
        include[1] = {"relation": "instrument", "scope": {"where": {"name": {"inq": list(request.instruments)}}}}
    include.append({"relation": "parameters"})
    for name, bounds in request.parameters:
        value = ({"between": [bounds.low, bounds.high]} if bounds.low is not None and bounds.high is not None
                 else {"gte": bounds.low} if bounds.low is not None else {"lte": bounds.high})
        include.append({"relation": "parameters", "scope": {"where": {"and": [
            {"name": name}, {"value": value}, {"unit": INDEXED_PARAMETERS[name]}]}}})
    flt: dict[str, Any] = {"limit": window, "skip": 0, "include": include}
    if where:
        flt["where"] = where
    if request.q.strip():
        flt["query"] = request.q.strip()
    if request.sort is Sort.OLDEST:
        flt["order"] = "creationDate ASC"
    elif request.sort is Sort.NEWEST or not request.q.strip():
        flt["order"] = "creationDate DESC"
    return flt, where


class LiveSearch:
    def __init__(self, http: HttpClient, *, deadline: float):
        self.http = http
        self.deadline = deadline
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="fan-out")

    def search(self, request: SearchRequest, sources: list[LiveSource]) -> SearchResult:
        started = time.monotonic()
        window = request.offset + request.limit
        flt, where = to_filter(request, window)
        futures = {self._pool.submit(self._ask, source, flt, where, request, started): source for source in sources}
        done, _ = wait(futures, timeout=self.deadline)
        answers: dict[str, _Answer] = {}
        statuses: list[SourceStatus] = []
        for future, source in futures.items():
            if future not in done:
                future.cancel()
                statuses.append(SourceStatus(source.facility, SourceState.TIMEOUT, round(self.deadline * 1000, 1),
                                             error=f"no answer within the {self.deadline:g} s deadline"))
                continue
            state, answer, error, latency = future.result()
            if answer is not None:
                answers[source.facility] = answer
            statuses.append(SourceStatus(source.facility, state, latency, answer.count if answer else None, error))
        items, duplicates = merge([answers[s.facility].datasets for s in sources if s.facility in answers],
                                  request.sort, bool(request.q.strip()))
        counts = [a.count for a in answers.values()]
        exact = all(c is not None for c in counts) and not request.q.strip() and duplicates == 0
        total = sum(c for c in counts if c is not None) - duplicates if exact else max(
            len(items), sum(c or len(a.datasets) for c, a in zip(counts, answers.values())) - duplicates)
        page = items[request.offset:request.offset + request.limit]
        return SearchResult(page, total, facets_of(items, request.facets), sorted(statuses, key=lambda s: s.facility),
                            total_exact=exact, facets_exact=False)

    def _ask(self, source: LiveSource, flt: dict[str, Any], where: dict[str, Any], request: SearchRequest,
             started: float) -> tuple[SourceState, _Answer | None, str | None, float]:
        connector = connector_for(source.kind)
        remaining = max(0.05, self.deadline - (time.monotonic() - started))
        try:
            records = connector.find(self.http, source.base_url, flt, remaining)
            count = None
            if not request.q.strip():
                remaining = max(0.05, self.deadline - (time.monotonic() - started))
                count = connector.count(self.http, source.base_url, where, remaining) if not flt_has_scopes(flt) \
                    else None
            datasets = []
            for record in records:
                try:
                    datasets.append(connector.to_dataset(record, source.facility, source.endpoint_id))
                except UpstreamError:
                    continue  # one unusable record does not void the facility's answer
            state, error = SourceState.OK, None
            answer = _Answer(datasets, count)
        except CircuitOpen as exc:
            state, answer, error = SourceState.SKIPPED, None, exc.detail
        except UpstreamTimeout as exc:
            state, answer, error = SourceState.TIMEOUT, None, exc.detail
        except UpstreamError as exc:
            state, answer, error = SourceState.ERROR, None, exc.detail
        return state, answer, error, round((time.monotonic() - started) * 1000, 1)


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


def flt_has_scopes(flt: dict[str, Any]) -> bool:
    """Scoped includes filter datasets, but /count takes only ``where``: its count would be wrong."""
    return any("scope" in i for i in flt.get("include", []))


def merge(lists: list[list[Dataset]], sort: Sort, has_query: bool) -> tuple[list[Dataset], int]:
    """One ranking of several facilities' ordered answers, duplicates merged; returns (items, duplicates)."""
    if sort in (Sort.NEWEST, Sort.OLDEST) or not has_query:
        newest = sort is not Sort.OLDEST
        ordered = sorted((d for answer in lists for d in answer),
                         key=lambda d: (_stamp(d) * (-1 if newest else 1), d.facility, d.pid))
    else:
        ordered = [answer[rank] for rank in range(max(map(len, lists), default=0))
                   for answer in lists if rank < len(answer)]
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
