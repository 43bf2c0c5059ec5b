"""Dataset search: from the harvested index (default) or live from the facilities, with one answer
shape either way, and an honest list of which facilities contributed."""
from __future__ import annotations

import enum
import re
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import select

from panmodel.errors import FieldError, InvalidInput, NotFound
from broker.search.index import FACETS, DatasetIndex
from broker.search.live import LiveSearch, LiveSource
from panmodel.datasets import Dataset, Range, SearchRequest, SearchResult, Sort, SourceState, SourceStatus
from broker.search.synonyms import FACILITIES
from panmodel.techniques import panet
from panmodel.units import COMMON, canonical_name, dimension_of, to_si
from connectors import connector_for, kinds_with
from connectors.base import Capability
from connectors.errors import UpstreamError
from broker.registry_service import deleted_search_endpoints
from panmodel.states import HarvestState
from registry.models import SearchEndpoint
from registry.store import Store

MAX_QUERY_CHARS = 500
MAX_SIZE = 100
PARAMETER = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_]{0,79}):(?P<low>[-+0-9.eE]*)\.\.(?P<high>[-+0-9.eE]*)"
                       r"(?::(?P<unit>.{1,40}))?$")
PARAMETER_VALUE = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_]{0,79})=(?P<value>.{1,200})$")


class Mode(enum.StrEnum):
    INDEX = "index"
    LIVE = "live"


@dataclass(frozen=True)
class Query:
    request: SearchRequest
    mode: Mode
    page: int
    size: int


def parse_query(params: dict[str, Any]) -> Query:
    """Query parameters of ``GET /api/v1/datasets`` as a search, or ``InvalidInput`` naming each bad one."""
    errors: list[FieldError] = []

    def listed(name: str) -> tuple[str, ...]:
        value = params.get(name)
        items = value if isinstance(value, list) else ([value] if value else [])
        return tuple(v for item in items for v in str(item).split(",") if v)

    q = str(params.get("q") or "")
    if len(q) > MAX_QUERY_CHARS:
        errors.append(FieldError("q", f"at most {MAX_QUERY_CHARS} characters"))
    techniques: list[str] = []
    for name in listed("technique"):
        found = panet().resolve(name)
        if not found:
            errors.append(FieldError("technique", f"{name!r} is not a PaNET technique name or IRI"))
        techniques.extend(found)
    parameters, parameter_values = [], []
    for text in listed("parameter"):
        parsed = _parameter(text)
        if isinstance(parsed, FieldError):
            errors.append(parsed)
        elif isinstance(parsed[1], str):
            parameter_values.append(parsed)
        else:
            parameters.append(parsed)
    page, size = _int(params, "page", 1, 1, 10_000, errors), _int(params, "size", 20, 1, MAX_SIZE, errors)
    year_from = _int(params, "year_from", None, 1900, 2200, errors)
    year_to = _int(params, "year_to", None, 1900, 2200, errors)
    sort, mode = _choice(params, "sort", Sort, Sort.RELEVANCE, errors), _choice(params, "mode", Mode, Mode.INDEX, errors)
    if sort is Sort.PID and mode is Mode.LIVE:
        errors.append(FieldError("sort", "pid order is served from the index only"))
    public = params.get("public")
    if public is not None and not isinstance(public, bool):
        lowered = str(public).lower()
        public = True if lowered in ("true", "1", "yes") else False if lowered in ("false", "0", "no") else None
        if public is None:
            errors.append(FieldError("public", "use true or false"))
    facets = listed("facet") or tuple(FACETS)
    errors.extend(FieldError("facet", f"unknown facet {f!r}; use {', '.join(FACETS)}") for f in facets if f not in FACETS)
    if errors:
        raise InvalidInput.from_fields(errors)
    years = Range(year_from, year_to) if year_from is not None or year_to is not None else None
    request = SearchRequest(q=q, facilities=listed("facility"), techniques=tuple(dict.fromkeys(techniques)),
                            instruments=listed("instrument"), years=years, is_public=public,
                            parameters=tuple(parameters), parameter_values=tuple(parameter_values), sort=sort,
                            offset=(page - 1) * size, limit=size,
                            facets=facets)
    return Query(request, mode, page, size)


def _parameter(text: str) -> tuple[str, Range] | tuple[str, str] | FieldError:
    """``name:low..high[:unit]`` (a range, in any unit of the quantity) or ``name=value`` (a text value)."""
    if match := PARAMETER_VALUE.match(text.strip()):
        return canonical_name(match["name"]), match["value"].strip()
    match = PARAMETER.match(text.strip())
    if not match:
        return FieldError("parameter", f"{text!r}: use name:low..high:unit (e.g. sample_temperature:280..300:K) "
                                       "or name=value (e.g. sample_state=solid)")
    try:
        name = canonical_name(match["name"])
        return name, parameter_range(match["low"] or None, match["high"] or None, match["unit"] or COMMON.get(name),
                                     name)
    except ValueError as exc:
        return FieldError("parameter", f"{text!r}: {exc}")


def parameter_range(low: Any, high: Any, unit: str | None, name: str | None = None) -> Range:
    """SI bounds of a parameter range given in ``unit``; ``ValueError`` saying what is wrong (also a unit that
    is not one of the quantity a well-known parameter ``name`` is)."""
    bounds = []
    for raw in (low, high):
        if raw is None:
            bounds.append(None)
            continue
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{raw!r} is not a number") from None
        if number != number or abs(number) == float("inf"):
            raise ValueError(f"{raw!r} is not a finite number")
        bounds.append(to_si(number, unit))  # UnknownUnit is a ValueError naming the unit
    dimension = dimension_of(unit)
    if name in COMMON and dimension != dimension_of(COMMON[name]):
        raise ValueError(f"{unit or 'no unit'} is not a unit of {name} (it is measured in units like {COMMON[name]})")
    if bounds[0] is not None and bounds[1] is not None and bounds[0].value > bounds[1].value:
        raise ValueError(f"the range is reversed: {low} is above {high}")
    return Range(*(b.value if b is not None else None for b in bounds), dimension=dimension)


def _int(params: dict, name: str, default: int | None, low: int, high: int, errors: list) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        errors.append(FieldError(name, "must be an integer"))
        return default
    if not low <= value <= high:
        errors.append(FieldError(name, f"must be between {low} and {high}"))
    return value


def _choice(params: dict, name: str, enum_cls: type, default: Any, errors: list) -> Any:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return enum_cls(raw)
    except ValueError:
        errors.append(FieldError(name, f"use one of {', '.join(m.value for m in enum_cls)}"))
        return default


#: how long an index search reuses the search endpoints and their last harvests it read; a write in this
#: process renews them at once, one in another process (the worker finishing a harvest) within this time
SOURCES_TTL_SECONDS = 1.0
NAMES_TTL_SECONDS = 30.0


@dataclass(frozen=True)
class _Endpoints:
    generation: int
    read_at: float
    rows: list[tuple[str, dict[str, Any] | None]]  # (facility, newest harvest job) of each search endpoint
    orphans: tuple[str, ...] = ()  # endpoints the index still holds datasets of, though they are deleted


class SearchService:
    def __init__(self, store: Store, index: DatasetIndex, live: LiveSearch,
                 latest_harvests: Callable[[], dict[str, dict[str, Any]]]):
        self.store = store
        self.index = index
        self.live = live
        self.latest_harvests = latest_harvests
        self._endpoints: _Endpoints | None = None
        self._live_sources: tuple[int, float, list[LiveSource]] | None = None  # (generation, read at, sources)
        # lookups by pid fan out here; each call ends by the live deadline, so the pool drains quickly
        self._lookups = ThreadPoolExecutor(max_workers=32, thread_name_prefix="lookup")
        self._names_read: tuple[int, float] = (-1, 0.0)

    def sources(self, facilities: tuple[str, ...] = ()) -> list[LiveSource]:
        """The facilities' search endpoints that live search can ask (their connectors have live search),
        read again after a registry write in this process or after ``SOURCES_TTL_SECONDS`` (another replica's): the
        query was a third of the broker's own time in a live search."""
        cached, now = self._live_sources, time.monotonic()
        if not (cached and cached[0] == self.store.registry_generation and now - cached[1] < SOURCES_TTL_SECONDS):
            generation = self.store.registry_generation
            with self.store.session() as session:
                query = select(SearchEndpoint).where(SearchEndpoint.kind.in_(kinds_with(Capability.LIVE_SEARCH)))
                every = [LiveSource(e.id, e.facility_id, e.kind, e.base_url)
                         for e in session.scalars(query.order_by(SearchEndpoint.facility_id, SearchEndpoint.id))]
            cached = self._live_sources = (generation, now, every)
        return [s for s in cached[2] if not facilities or s.facility in facilities]

    def search(self, query: Query) -> SearchResult:
        if query.mode is Mode.LIVE:
            return self.live.search(query.request, self.sources(query.request.facilities))
        request = query.request
        self._know_facility_names()
        wanted = request.facets if "facility" in request.facets else (*request.facets, "facility")
        result = self.index.search(SearchRequest(**{**request.__dict__, "facets": wanted,
                                                    "exclude_sources": self.deleted_sources()}))
        counts = {b.value: b.count for b in result.facets.get("facility", [])}
        facets = {k: v for k, v in result.facets.items() if k in request.facets}
        return SearchResult(result.items, result.total, facets, self._index_sources(request, counts))

    def _know_facility_names(self) -> None:
        """Tell the synonyms the registered facilities' names: read again after a write in this process,
        or after ``NAMES_TTL_SECONDS`` (another replica's)."""
        generation_read, read_at = self._names_read
        now = time.monotonic()
        if generation_read == self.store.generation and now - read_at < NAMES_TTL_SECONDS:
            return
        generation = self.store.generation
        with self.store.session() as session:
            FACILITIES.read(session)
        self._names_read = (generation, now)

    def _harvested_endpoints(self) -> list[tuple[str, dict[str, Any] | None]]:
        """Every search endpoint's facility and newest harvest job, kept until the next write (or for
        ``SOURCES_TTL_SECONDS``): the two queries were a quarter of a one-term search's time."""
        cached, now = self._endpoints, time.monotonic()
        if cached and cached.generation == self.store.generation and now - cached.read_at < SOURCES_TTL_SECONDS:
            return cached.rows
        generation = self.store.generation
        latest = self.latest_harvests()
        with self.store.session() as session:
            endpoints = session.execute(select(SearchEndpoint.id, SearchEndpoint.facility_id)).all()
            deleted = deleted_search_endpoints(session)
        rows = [(facility, latest.get(endpoint_id))
                for endpoint_id, facility in sorted(endpoints, key=lambda e: (e[1], e[0]))]
        orphans = tuple(sorted(self.index.sources() & deleted)) if deleted else ()
        self._endpoints = _Endpoints(generation, now, rows, orphans)
        return rows

    def deleted_sources(self) -> tuple[str, ...]:
        """Search endpoints deleted from the registry whose datasets the worker has not purged yet: searches
        leave them out at once. Read with the endpoints, so as seldom."""
        self._harvested_endpoints()
        return self._endpoints.orphans if self._endpoints else ()

    def _index_sources(self, request: SearchRequest, counts: dict[str, int]) -> list[SourceStatus]:
        statuses = []
        for facility, job in self._harvested_endpoints():
            if request.facilities and facility not in request.facilities:
                continue
            if job is None:
                statuses.append(SourceStatus(facility, SourceState.SKIPPED, None, 0, "not harvested yet"))
            elif job["state"] == HarvestState.FAILED:
                statuses.append(SourceStatus(facility, SourceState.INDEX, None, counts.get(facility, 0),
                                             f"last harvest failed ({job['error']}); results are from the harvest "
                                             "before"))
            else:
                statuses.append(SourceStatus(facility, SourceState.INDEX, None, counts.get(facility, 0)))
        return statuses

    def document(self, pid_or_doi: str, max_datasets: int = 100) -> dict[str, Any]:
        """A proposal or publication, from the datasets that belong to it."""
        result = self.index.search(SearchRequest(documents=(pid_or_doi,), limit=max_datasets, sort=Sort.NEWEST))
        if not result.items:
            raise NotFound(f"no document {pid_or_doi!r} among the harvested datasets")
        key = pid_or_doi.lower()
        document = next(d for d in result.items[0].documents if key in {d.pid.lower(), (d.doi or "").lower()})
        return {"pid": document.pid, "title": document.title, "type": document.type, "doi": document.doi,
                "summary": document.summary, "keywords": list(document.keywords),
                "facilities": sorted({d.facility for d in result.items}), "dataset_count": result.total,
                "datasets": [{"pid": d.pid, "title": d.title, "facility": d.facility,
                              "creation_date": d.creation_date.isoformat() if d.creation_date else None}
                             for d in result.items]}

    def instruments(self, facilities: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Instruments with harvested datasets, and how many."""
        result = self.index.search(SearchRequest(facilities=facilities, limit=1, facets=("instrument",)))
        return [{"name": b.value, "dataset_count": b.count} for b in result.facets.get("instrument", [])]

    def get(self, pid_or_doi: str) -> Dataset:
        """The dataset with this pid or DOI: from the index, else asked of every facility at once."""
        found = self.index.get(pid_or_doi)
        if found is not None:
            return found
        sources = self.sources()
        if sources:  # every facility at once, under the live deadline: the first to know it answers
            deadline = time.monotonic() + self.live.deadline
            pending = {self._lookups.submit(self._live_get, source, pid_or_doi) for source in sources}
            while pending:
                done, pending = wait(pending, timeout=max(0.0, deadline - time.monotonic()),
                                     return_when=FIRST_COMPLETED)
                if not done:
                    break
                found = next((f.result() for f in done if f.result() is not None), None)
                if found is not None:
                    return found
            if pending:
                raise NotFound(f"no dataset {pid_or_doi!r} among the facilities that answered within "
                               f"{self.live.deadline:g} s (not asked in time: {len(pending)})")
        raise NotFound(f"no dataset {pid_or_doi!r} at any registered facility")

    def _live_get(self, source: LiveSource, pid: str) -> Dataset | None:
        connector = connector_for(source.kind)
        try:
            record = connector.get(self.live.http, source.base_url, pid, self.live.deadline)
            return connector.to_dataset(record, source.facility, source.endpoint_id) if record else None
        except UpstreamError:
            return None
