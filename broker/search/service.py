"""Dataset search: from the harvested index (default) or live from the facilities, with one answer
shape either way, and an honest list of which facilities contributed."""
from __future__ import annotations

import enum
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import select

from broker.errors import FieldError, InvalidInput, NotFound
from broker.search.index import FACETS, DatasetIndex
from broker.search.live import LiveSearch, LiveSource
from broker.search.model import Dataset, Range, SearchRequest, SearchResult, Sort, SourceState, SourceStatus
from broker.search.synonyms import FACILITIES
from broker.search.techniques import panet
from broker.search.units import INDEXED_PARAMETERS, UnknownUnit, to_si
from connectors import connector_for
from connectors.errors import UpstreamError
from registry.models import SearchEndpoint, SearchKind
from registry.store import Store

MAX_QUERY_CHARS = 500
MAX_SIZE = 100
PARAMETER = re.compile(r"^(?P<name>[a-z_]+):(?P<low>[-+0-9.eE]*)\.\.(?P<high>[-+0-9.eE]*)(?::(?P<unit>.+))?$")


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
    parameters = []
    for text in listed("parameter"):
        parsed = _parameter(text)
        if isinstance(parsed, FieldError):
            errors.append(parsed)
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
                            parameters=tuple(parameters), sort=sort, offset=(page - 1) * size, limit=size,
                            facets=facets)
    return Query(request, mode, page, size)


def _parameter(text: str) -> tuple[str, Range] | FieldError:
    match = PARAMETER.match(text.strip())
    if not match:
        return FieldError("parameter", f"{text!r}: use name:low..high:unit, e.g. sample_temperature:280..300:K")
    name, unit = match["name"], match["unit"]
    if name not in INDEXED_PARAMETERS:
        return FieldError("parameter", f"{name!r} is not searchable; use one of {', '.join(INDEXED_PARAMETERS)}")
    bounds = []
    for raw in (match["low"], match["high"]):
        if not raw:
            bounds.append(None)
            continue
        try:
            quantity = to_si(float(raw), unit or INDEXED_PARAMETERS[name])
        except (UnknownUnit, ValueError) as exc:
            return FieldError("parameter", f"{text!r}: {exc}")
        if quantity.unit != INDEXED_PARAMETERS[name]:
            return FieldError("parameter", f"{text!r}: {unit} is not a unit of {name}")
        bounds.append(quantity.value)
    return name, Range(bounds[0], bounds[1])


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


class SearchService:
    def __init__(self, store: Store, index: DatasetIndex, live: LiveSearch,
                 latest_harvests: Callable[[], dict[str, dict[str, Any]]]):
        self.store = store
        self.index = index
        self.live = live
        self.latest_harvests = latest_harvests
        self._endpoints: _Endpoints | None = None
        self._names_read: tuple[int, float] = (-1, 0.0)

    def sources(self, facilities: tuple[str, ...] = ()) -> list[LiveSource]:
        """The facilities' PaNOSC Search API endpoints that live search can ask."""
        with self.store.session() as session:
            query = select(SearchEndpoint).where(SearchEndpoint.kind == SearchKind.PANOSC_SEARCH_API.value)
            if facilities:
                query = query.where(SearchEndpoint.facility_id.in_(facilities))
            return [LiveSource(e.id, e.facility_id, e.kind, e.base_url)
                    for e in session.scalars(query.order_by(SearchEndpoint.facility_id))]

    def search(self, query: Query) -> SearchResult:
        if query.mode is Mode.LIVE:
            return self.live.search(query.request, self.sources(query.request.facilities))
        request = query.request
        self._know_facility_names()
        wanted = request.facets if "facility" in request.facets else (*request.facets, "facility")
        result = self.index.search(SearchRequest(**{**request.__dict__, "facets": wanted}))
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
        rows = [(facility, latest.get(endpoint_id))
                for endpoint_id, facility in sorted(endpoints, key=lambda e: (e[1], e[0]))]
        self._endpoints = _Endpoints(generation, now, rows)
        return rows

    def _index_sources(self, request: SearchRequest, counts: dict[str, int]) -> list[SourceStatus]:
        statuses = []
        for facility, job in self._harvested_endpoints():
            if request.facilities and facility not in request.facilities:
                continue
            if job is None:
                statuses.append(SourceStatus(facility, SourceState.SKIPPED, None, 0, "not harvested yet"))
            elif job["state"] == "failed":
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
        if sources:
            with ThreadPoolExecutor(max_workers=len(sources)) as pool:
                for dataset in pool.map(lambda s: self._live_get(s, pid_or_doi), sources):
                    if dataset is not None:
                        return dataset
        raise NotFound(f"no dataset {pid_or_doi!r} at any registered facility")

    def _live_get(self, source: LiveSource, pid: str) -> Dataset | None:
        connector = connector_for(source.kind)
        try:
            record = connector.get(self.live.http, source.base_url, pid, self.live.deadline)
            return connector.to_dataset(record, source.facility, source.endpoint_id) if record else None
        except UpstreamError:
            return None
