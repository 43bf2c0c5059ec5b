"""The broker as a federated PaNOSC Search API: LoopBack filters translated into index searches, and
index records shown in the PaNOSC data model, in the reference implementation's shapes.

A filter becomes a ``Plan``: the search the index runs, and the checks the broker runs itself on what the
index preselects (``or`` at the dataset level, ``size``, ``title`` conditions, exact creation dates, file,
sample, local-technique-pid and instrument-pid scopes, ``or`` between parameter conditions) and the order the
index cannot give (``title``, ``size``, ``pid DESC``). The broker reads at most ``SCAN_CEILING`` preselected
datasets for such a filter and refuses (HTTP 400, saying how to narrow it) beyond: never a silently cut answer.
Anything the broker cannot honour is refused with a LoopBack error that says so, never silently ignored.

Where the broker deliberately differs from the reference (panosc-eu/search-api):
- parameter values are compared in SI units through pint, in any unit of the quantity, with name aliases
  (``temperature`` = ``sample_temperature``); the reference compares raw numbers in the stored unit only;
- a technique name or PaNET id also finds datasets of its PaNET descendants;
- ``query`` ranks by relevance and every record's ``score`` is in (0, 1) (the reference ignores ``query``
  and scores 0, which the PaNOSC federated aggregator drops: it keeps scores strictly inside (0, 1));
- a filter without ``limit`` returns every match up to ``NO_LIMIT_CEILING`` and is refused beyond (the
  reference returns everything);
- ``where.text`` on datasets matches words (every word, stemmed) in the title, summary, keywords, techniques,
  instrument and samples; the reference matches a substring of the title.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from broker.errors import NotFound
from broker.search.index import FACETS, MAX_WINDOW
from broker.search.loopback import (
    Filter,
    FilterError,
    Include,
    check_where,
    matches,
    parse_filter,
    parse_json,
    project,
)
from broker.search.matching import matches_filters, words
from broker.search.model import Dataset, DocumentRef, Range, SearchRequest, SearchResult, Sort
from broker.search.service import Mode, Query, SearchService, parameter_range
from broker.search.techniques import panet
from broker.search.units import canonical_name

#: a filter without ``limit`` returns every match up to this many, and is refused (400) beyond
NO_LIMIT_CEILING = 1000
#: datasets the broker reads from the index for a filter it applies itself (and for Documents)
SCAN_CEILING = MAX_WINDOW
SCAN_PAGE = 1000
#: the score of every record when no ``query`` is given: the PaNOSC aggregator drops scores <= 0 or >= 1
UNRANKED_SCORE = 0.01
DATASET_PROPERTIES = ("pid", "title", "isPublic", "creationDate", "size", "instrumentId", "text")
DOCUMENT_PROPERTIES = ("pid", "doi", "type", "title", "summary", "isPublic", "keywords", "startDate", "endDate",
                       "releaseDate", "license", "text")
INSTRUMENT_PROPERTIES = ("pid", "name", "facility", "text")
FILE_PROPERTIES = ("id", "name", "path", "size", "text")
#: the reference's Dataset relations, and the broker's extra "documents" (the reference answers it with a 500)
DATASET_RELATIONS = ("techniques", "instrument", "parameters", "files", "samples", "documents")

Check = Callable[[Dataset], bool]


@dataclass
class Plan:
    """What the index applies (``values`` of a ``SearchRequest``), and what the broker checks and orders."""

    values: dict[str, Any] = field(default_factory=lambda: {"q": "", "any_term": True})
    checks: list[Check] = field(default_factory=list)
    order: tuple[tuple[str, bool], ...] = ()  # in-memory order: (property, descending)
    sort: Sort = Sort.PID
    query: str | None = None  # the words ranked by (PaNOSC ``query``)
    live: bool = True  # False: holds words every one of which must match, which live search cannot ask for

    @property
    def exact(self) -> bool:
        """True when the index alone answers (filter, order and paging)."""
        return not self.checks and not self.order

    def request(self, offset: int = 0, limit: int = 1) -> SearchRequest:
        return SearchRequest(offset=offset, limit=limit, sort=self.sort,
                             **{k: tuple(v) if isinstance(v, list) else v for k, v in self.values.items()})

    def holds(self, dataset: Dataset) -> bool:
        return all(check(dataset) for check in self.checks)


# -- filters into plans ---------------------------------------------------------------------------

def plan_of(flt: Filter) -> Plan:
    """The plan of a Dataset filter; ``FilterError`` for what cannot be honoured."""
    plan = Plan(query=flt.query)
    if flt.query:  # PaNOSC `query` is relevance over any of its words
        plan.values["q"] = _words_query(flt.query, must=False)
    _where(flt.where, plan)
    for include in flt.include:
        _include(include, plan)
    _order(flt, plan)
    return plan


def _order(flt: Filter, plan: Plan) -> None:
    for name, _ in flt.order:
        if name not in ("pid", "title", "creationDate", "size"):
            raise FilterError(f"order by {name!r} is not supported; order by pid, title, creationDate or size "
                              "(ASC or DESC)")
    if not flt.order:
        plan.sort = Sort.RELEVANCE if flt.query else Sort.PID  # the reference's default order is by pid
    elif len(flt.order) == 1 and flt.order[0] == ("pid", False):
        plan.sort = Sort.PID
    elif len(flt.order) == 1 and flt.order[0][0] == "creationDate":
        plan.sort = Sort.NEWEST if flt.order[0][1] else Sort.OLDEST
    else:
        plan.sort, plan.order = Sort.PID, flt.order


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _words_query(text: str, *, must: bool) -> str:
    """Words for the index's query parser, with its syntax characters left out (``+word``: required)."""
    return " ".join(("+" if must else "") + word for word in _words(text))


def _add_words(plan: Plan, text: str) -> None:
    plan.live = False
    required = _words_query(text, must=True)
    plan.values["q"] = " ".join(filter(None, [plan.values["q"], required]))


def _op(condition: Any) -> tuple[str, Any]:
    return next(iter(condition.items())) if isinstance(condition, dict) else ("eq", condition)


def _listed(operand: Any) -> list[Any]:
    return list(operand) if isinstance(operand, list) else [operand]


def dataset_view(dataset: Dataset) -> dict[str, Any]:
    """The Dataset properties a ``where`` reads, as the reference stores them."""
    return {"pid": dataset.pid, "title": dataset.title, "isPublic": dataset.is_public, "size": dataset.size,
            "creationDate": _iso(dataset.creation_date), "instrumentId": _instrument_pid(dataset)}


def _where(where: dict[str, Any], plan: Plan) -> None:
    for key, condition in where.items():
        if key == "and":
            for clause in condition:
                _where(clause, plan)
            continue
        if key == "or":
            _known(condition, DATASET_PROPERTIES, "Datasets")
            plan.checks.append(lambda d, c={"or": condition}: matches(c, dataset_view(d)))
            continue
        if key not in DATASET_PROPERTIES:
            raise FilterError(f"where on {key!r} is not supported; use {', '.join(DATASET_PROPERTIES)} (with and/or)")
        op, operand = _op(condition)
        clause = {key: condition}
        if key == "text":
            _add_words(plan, str(operand))
        elif key == "pid" and op in ("eq", "inq"):
            plan.values.setdefault("pids", []).extend(str(v) for v in _listed(operand))
        elif key == "isPublic" and op == "eq" and isinstance(operand, bool):
            plan.values["is_public"] = operand
        elif key == "isPublic" and op == "eq":
            raise FilterError("isPublic takes true or false")
        elif key == "creationDate":
            whole = _whole_years(op, operand)  # whole years: the index's year range is exact
            plan.values["years"] = _intersect(plan.values.get("years"), whole or _years(op, operand))
            if whole is None:
                plan.checks.append(lambda d, c=clause: matches(c, dataset_view(d)))
        else:  # size, title, instrumentId, and other operators on pid/isPublic: checked by the broker
            if key == "title" and op == "eq" and isinstance(operand, str):
                _add_words(plan, operand)  # the title's words preselect
            plan.checks.append(lambda d, c=clause: matches(c, dataset_view(d)))


def _known(clauses: list[Any], properties: tuple[str, ...], model: str) -> None:
    for clause in clauses:
        for key, value in clause.items():
            if key in ("and", "or"):
                _known(value, properties, model)
            elif key not in properties:
                raise FilterError(f"where on {model}' {key!r} is not supported; use {', '.join(properties)}")


def _intersect(a: Range | None, b: Range | None) -> Range | None:
    if a is None or b is None:
        return a or b
    lows = [x for x in (a.low, b.low) if x is not None]
    highs = [x for x in (a.high, b.high) if x is not None]
    return Range(max(lows) if lows else None, min(highs) if highs else None)


def _instant(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _whole_years(op: str, operand: Any) -> Range | None:
    """The years a condition on creationDate takes when it starts and ends on year boundaries (UTC)."""
    def start(value: Any) -> int | None:
        moment = _instant(value)
        return moment.year if moment and moment.astimezone(timezone.utc) == datetime(
            moment.year, 1, 1, tzinfo=timezone.utc) else None

    def end(value: Any) -> int | None:
        moment = _instant(value)
        return moment.year if moment and moment.astimezone(timezone.utc) == datetime(
            moment.year, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc) else None

    if op == "gte" and start(operand) is not None:
        return Range(start(operand), None)
    if op == "lt" and start(operand) is not None:
        return Range(None, start(operand) - 1)
    if op == "lte" and end(operand) is not None:
        return Range(None, end(operand))
    if op == "between" and isinstance(operand, list) and len(operand) == 2 and start(operand[0]) is not None \
            and end(operand[1]) is not None:
        return Range(start(operand[0]), end(operand[1]))
    return None


def _years(op: str, operand: Any) -> Range | None:
    """Years that hold every date the condition takes (the broker then checks the dates themselves)."""
    try:
        if op == "between":
            return Range(int(str(operand[0])[:4]), int(str(operand[1])[:4]))
        if op in ("neq", "nin", "inq"):
            years = [int(str(v)[:4]) for v in _listed(operand)]
            return Range(min(years), max(years)) if op == "inq" else None
        if op in ("like", "nlike", "ilike", "nilike"):
            raise FilterError(f"creationDate does not take {op}")
        year = int(str(operand)[:4])
    except (ValueError, TypeError, IndexError) as exc:
        raise FilterError("creationDate takes ISO dates, e.g. \"2020-05-05T00:00:00.000Z\"") from exc
    bounds = {"gt": Range(year, None), "gte": Range(year, None), "lt": Range(None, year), "lte": Range(None, year),
              "eq": Range(year, year)}
    return bounds[op]


def _include(include: Include, plan: Plan) -> None:
    if include.include and include.relation in ("techniques", "instrument", "parameters", "files", "samples"):
        raise FilterError(f"{include.relation} has no relations to include")
    if include.relation not in DATASET_RELATIONS:
        raise FilterError(f"Datasets have no relation {include.relation!r}; use {', '.join(DATASET_RELATIONS)} "
                          '(a document\'s datasets and members: Documents?filter={"include":["datasets","members"]})')
    where = include.where
    if where is None:
        return
    if include.relation == "techniques":
        _technique_scope(where, plan)
    elif include.relation == "instrument":
        _instrument_scope(where, plan)
    elif include.relation == "parameters":
        _parameter_scope(where, plan)
    elif include.relation == "files":
        _known([where], FILE_PROPERTIES, "Files")
        plan.checks.append(lambda d, w=where: any(matches(w, f, "files") for f in file_records(d)))
    elif include.relation == "samples":
        _known([where], ("pid", "name", "description", "text"), "Samples")
        plan.checks.append(lambda d, w=where: any(matches(w, s, "samples") for s in sample_records(d)))
    elif include.relation == "documents":
        _known([where], DOCUMENT_PROPERTIES, "Documents")
        plan.checks.append(lambda d, w=where: any(matches(w, doc, "documents") for doc in
                                                  (document_record(x) for x in d.documents)))


def _flat(where: dict[str, Any]) -> dict[str, Any] | None:
    """An and-only where as one mapping, or None when it holds ``or`` or repeats a property."""
    flat: dict[str, Any] = {}
    for key, value in where.items():
        if key == "or":
            return None
        parts = [_flat(c) for c in value] if key == "and" else [{key: value}]
        for part in parts:
            if part is None or set(part) & set(flat):
                return None
            flat.update(part)
    return flat


def _technique_scope(where: dict[str, Any], plan: Plan) -> None:
    """Names, PaNET ids or pids that PaNET knows: the index, with descendants. Anything else (a facility's
    own technique pid, another operator, ``or``): checked by the broker as the reference compares."""
    _known([where], ("pid", "name", "panetId", "text"), "Techniques")
    flat = _flat(where)
    iris: list[str] = []
    if flat is not None and flat and set(flat) <= {"pid", "name", "panetId"}:
        for key, condition in flat.items():
            op, operand = _op(condition)
            if op not in ("eq", "inq"):
                break
            found = [panet().resolve(str(v)) for v in _listed(operand)]
            if not all(found):
                break
            iris.extend(iri for group in found for iri in group)
        else:
            plan.values.setdefault("techniques", []).extend(dict.fromkeys(iris))
            return
    plan.checks.append(lambda d, w=where: any(matches(w, t, "techniques") for t in technique_records(d)))


def _instrument_scope(where: dict[str, Any], plan: Plan) -> None:
    _known([where], INSTRUMENT_PROPERTIES, "Instruments")
    flat = _flat(where)
    if flat is not None and set(flat) == {"name"} and _op(flat["name"])[0] in ("eq", "inq"):
        plan.values.setdefault("instruments", []).extend(str(v) for v in _listed(_op(flat["name"])[1]))
        return
    plan.checks.append(lambda d, w=where: (record := instrument_record(d)) is not None
                       and matches(w, record, "instrument"))


def _parameter_scope(where: dict[str, Any], plan: Plan) -> None:
    """One condition on one parameter (name, value in any unit of its quantity, or a text value): the index.
    Conditions joined by ``or`` (as the reference's "solid sample or copper" example): each one the same
    way, checked by the broker."""
    branches = where["or"] if set(where) == {"or"} else [where]
    parsed = []
    for branch in branches:
        flat = _flat(branch)
        if flat is None:
            raise FilterError("a parameters scope takes conditions on name, value and unit joined by and, "
                              "or such groups joined by one or")
        values: dict[str, Any] = {}
        _parameter(flat, values)
        parsed.append(values)
    if len(parsed) == 1:
        for key, items in parsed[0].items():
            plan.values.setdefault(key, []).extend(items)
        return
    requests = [SearchRequest(**{k: tuple(v) for k, v in values.items()}) for values in parsed]
    plan.checks.append(lambda d, rs=requests: any(matches_filters(r, d) for r in rs))


def _parameter(flat: dict[str, Any], values: dict[str, Any]) -> None:
    """A parameter scope (name, value, unit): a range or equality in any unit of the quantity, or a text value."""
    unknown = set(flat) - {"name", "value", "unit"}
    if unknown:
        raise FilterError(f"a parameters scope takes name, value and unit, not {', '.join(sorted(unknown))}")
    name = flat.get("name")
    if not isinstance(name, str) or not name.strip():
        raise FilterError("a parameters scope needs a name, e.g. {\"name\": \"sample_temperature\"}")
    name = canonical_name(name)
    op, operand = _op(flat.get("value", {"gt": None}))
    unit = flat.get("unit")
    unit = unit if isinstance(unit, str) and unit.strip() else None
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) or _is_number(v)
                  for v in _listed(operand) if v is not None)
    if op == "eq" and isinstance(operand, str) and not _is_number(operand):
        values.setdefault("parameter_values", []).append((name, operand))
        return
    if op == "gt" and operand is None:
        raise FilterError(f"parameter {name}: give a value condition, e.g. {{\"value\": {{\"between\": [1, 2]}}}}")
    if not numeric:
        raise FilterError(f"parameter {name}: values to compare must be numbers")
    try:
        if op == "between":
            bounds = parameter_range(operand[0], operand[1], unit, name)
        elif op in ("gt", "gte"):
            bounds = parameter_range(operand, None, unit, name)
        elif op in ("lt", "lte"):
            bounds = parameter_range(None, operand, unit, name)
        elif op == "eq":
            bounds = parameter_range(operand, operand, unit, name)
        else:
            raise FilterError(f"parameter values take between, gt, gte, lt, lte or equality, not {op}")
    except ValueError as exc:
        raise FilterError(f"parameter {name}: {exc}") from exc
    values.setdefault("parameters", []).append((name, bounds))


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


# -- records as the reference shows them ----------------------------------------------------------

def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    text = moment.isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if moment.tzinfo else text + "Z"


def _present(record: dict[str, Any]) -> dict[str, Any]:
    """LoopBack leaves properties without a value out of its answers."""
    return {key: value for key, value in record.items() if value is not None}


def _id(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isdigit() else value


def _instrument_pid(dataset: Dataset) -> str | None:
    if dataset.instrument_pid:
        return dataset.instrument_pid
    return f"{dataset.facility}/{dataset.instrument}" if dataset.instrument else None


def instrument_record(dataset: Dataset) -> dict[str, Any] | None:
    if not dataset.instrument and not dataset.instrument_pid:
        return None
    return _present({"pid": _instrument_pid(dataset), "name": dataset.instrument or dataset.instrument_pid,
                     "facility": dataset.instrument_facility or dataset.facility})


def technique_records(dataset: Dataset) -> list[dict[str, Any]]:
    return [_present({"pid": t.pid or t.iri or t.name, "name": t.name, "panetId": t.iri}) for t in dataset.techniques]


def parameter_records(dataset: Dataset) -> list[dict[str, Any]]:
    return [_present({"id": _id(p.id), "name": p.name, "value": p.value, "unit": p.unit or "",
                      "datasetId": dataset.pid}) for p in dataset.parameters]


def file_records(dataset: Dataset) -> list[dict[str, Any]]:
    return [_present({"id": _id(f.id), "name": f.name, "path": f.path, "size": f.size, "datasetId": dataset.pid})
            for f in dataset.files]


def sample_records(dataset: Dataset) -> list[dict[str, Any]]:
    return [_present({"pid": s.pid, "name": s.name, "description": s.description}) for s in dataset.samples]


def document_record(document: DocumentRef) -> dict[str, Any]:
    return _present({"pid": document.pid, "isPublic": True if document.is_public is None else document.is_public,
                     "type": document.type or "proposal", "title": document.title or document.pid,
                     "summary": document.summary, "doi": document.doi, "startDate": document.start_date,
                     "endDate": document.end_date, "releaseDate": document.release_date, "license": document.license,
                     "keywords": list(document.keywords) or None})


def to_record(dataset: Dataset, includes: set[str], score: float | None = None) -> dict[str, Any]:
    """A dataset in the PaNOSC data model; relations only when included, as LoopBack does."""
    record = _present({"pid": dataset.pid, "title": dataset.title, "isPublic": dataset.is_public,
                       "size": dataset.size, "creationDate": _iso(dataset.creation_date), "score": score,
                       "instrumentId": _instrument_pid(dataset)})
    if "techniques" in includes:
        record["techniques"] = technique_records(dataset)
    if "instrument" in includes and (instrument := instrument_record(dataset)) is not None:
        record["instrument"] = instrument
    if "parameters" in includes:
        record["parameters"] = parameter_records(dataset)
    if "files" in includes:
        record["files"] = file_records(dataset)
    if "samples" in includes:
        record["samples"] = sample_records(dataset)
    if "documents" in includes:  # not a reference relation (its Datasets answer a 500): the broker's extra
        record["documents"] = [document_record(d) for d in dataset.documents]
    return record


class Scorer:
    """Relevance scores strictly inside (0, 1): the share of the query's words a dataset holds (a word matches
    a word of the dataset starting with it, as the index's stemming lets plurals match), title words counting
    double; ``UNRANKED_SCORE`` for every record without a query."""

    def __init__(self, query: str | None):
        terms = list(dict.fromkeys(words(query or "")))
        self.patterns = [re.compile(r"\b" + re.escape(term), re.IGNORECASE) for term in terms]

    def __call__(self, dataset: Dataset) -> float:
        if not self.patterns:
            return UNRANKED_SCORE
        points, missed = 0, []
        for pattern in self.patterns:
            if pattern.search(dataset.title):
                points += 2
            else:
                missed.append(pattern)
        if missed:
            rest = " ".join([dataset.summary or "", *dataset.keywords, dataset.instrument or "",
                             *(t.name for t in dataset.techniques),
                             *(x or "" for d in dataset.documents for x in (d.title, d.summary, *d.keywords)),
                             *(x or "" for s in dataset.samples for x in (s.name, s.description))])
            points += sum(1 for pattern in missed if pattern.search(rest))
        share = points / (2 * len(self.patterns))
        return round(UNRANKED_SCORE + (1 - 2 * UNRANKED_SCORE) * share, 4)


def _sort_key(name: str) -> Callable[[Dataset], Any]:
    def key(dataset: Dataset) -> Any:
        value = {"pid": dataset.pid, "title": dataset.title, "size": dataset.size,
                 "creationDate": dataset.creation_date}[name]
        return (value is not None, value if value is not None else 0)
    return key


def _ordered(datasets: list[Dataset], order: tuple[tuple[str, bool], ...]) -> list[Dataset]:
    result = sorted(datasets, key=lambda d: d.pid)
    for name, descending in reversed(order):
        result.sort(key=_sort_key(name), reverse=descending)
    return result


def _fields_keep(flt: Filter, *extra: str) -> tuple[str, ...]:
    return (*(i.relation for i in flt.include), *extra)


# -- the API --------------------------------------------------------------------------------------

@dataclass
class Answer:
    records: list[dict[str, Any]]
    result: SearchResult  # sources and partial as the index (or the facilities, live) answered
    mode: Mode = Mode.INDEX


class PanoscCompat:
    """Answers the PaNOSC Search API's Datasets, Documents and Instruments calls from the index (Datasets
    also live from the facilities)."""

    def __init__(self, search: SearchService):
        self.search = search
        self.index = search.index
        self.instruments_complete = True

    # -- datasets --------------------------------------------------------------------------------
    def datasets(self, raw_filter: str | None, raw_query: str | None = None, mode: Mode = Mode.INDEX) -> Answer:
        flt = parse_filter(raw_filter, query=raw_query)
        plan = plan_of(flt)
        items, result = self._find(plan, flt, mode)
        includes = {i.relation for i in flt.include}
        score = Scorer(flt.query)
        records = [project(to_record(d, includes, score(d)), flt.fields, _fields_keep(flt, "score")) for d in items]
        return Answer(records, result, mode)

    def _find(self, plan: Plan, flt: Filter, mode: Mode) -> tuple[list[Dataset], SearchResult]:
        limit = flt.limit or NO_LIMIT_CEILING
        if mode is Mode.LIVE and not plan.live:
            raise FilterError("live answers do not take where.text or a title: send the words as query "
                              "(ranked, any word), or ask /panosc/api")
        if plan.exact:
            if flt.skip + limit > MAX_WINDOW:
                raise FilterError(f"skip + limit may not exceed {MAX_WINDOW}; narrow the filter instead")
            request = plan.request(flt.skip, limit)
            if mode is Mode.LIVE and request.sort is Sort.PID:
                request = replace(request, sort=Sort.NEWEST)  # facilities do not order by pid for the broker
            result = self.search.search(Query(request, mode, flt.skip // limit + 1, limit))
            self._within_ceiling(flt, result.total)
            return result.items, result
        if mode is Mode.LIVE:
            raise FilterError("live answers take only what facilities can be asked for (pid, isPublic, text, "
                              "creationDate, technique, instrument name and parameter conditions, order by "
                              "creationDate); ask /panosc/api for the rest")
        matched, result = self._scan(plan)
        self._within_ceiling(flt, len(matched))
        if not plan.order and plan.sort in (Sort.NEWEST, Sort.OLDEST):  # ties in pid order, as the reference
            plan.order = (("creationDate", plan.sort is Sort.NEWEST),)
        ordered = _ordered(matched, plan.order) if plan.order else matched
        return ordered[flt.skip:flt.skip + limit], replace(result, items=[], total=len(matched))

    @staticmethod
    def _within_ceiling(flt: Filter, total: int) -> None:
        if flt.limit is None and total - flt.skip > NO_LIMIT_CEILING:
            raise FilterError(f"{total} records match and the filter has no limit: answers without limit hold at "
                              f"most {NO_LIMIT_CEILING}; page with limit (up to {NO_LIMIT_CEILING}) and skip")

    def _scan(self, plan: Plan) -> tuple[list[Dataset], SearchResult]:
        """Every dataset the index preselects that the plan's checks keep, in the index's order."""
        matched: list[Dataset] = []
        first: SearchResult | None = None
        for page in self._pages(plan.request(0, SCAN_PAGE)):
            first = first or page
            matched.extend(d for d in page.items if plan.holds(d))
        assert first is not None
        return matched, first

    def _pages(self, request: SearchRequest, *, every: bool = True) -> Iterator[SearchResult]:
        """Pages of what the index preselects, in its order. ``every``: the caller needs them all, so more than
        ``SCAN_CEILING`` is refused at once; else only when the caller reads past the ceiling."""
        offset = 0
        while True:
            page = self.search.search(Query(replace(request, offset=offset, limit=SCAN_PAGE), Mode.INDEX,
                                            offset // SCAN_PAGE + 1, SCAN_PAGE))
            if page.total > SCAN_CEILING and (every or offset >= SCAN_CEILING):
                raise FilterError(f"this filter has conditions the broker checks itself (or, size, title, files, "
                                  f"samples, a facility's own technique pid, ordering by title or size, documents' "
                                  f"own conditions and counts): the index preselects {page.total} datasets for "
                                  f"them and the broker reads at most {SCAN_CEILING}; narrow it with text, pid, "
                                  "isPublic, creationDate, technique, instrument name or parameter conditions")
            yield page
            offset += SCAN_PAGE
            if offset >= page.total or not page.items:
                return

    def count(self, raw_where: str | None, mode: Mode = Mode.INDEX) -> tuple[int, SearchResult]:
        where = parse_json(raw_where, "where")
        check_where(where)
        plan = plan_of(Filter(where=where))
        if mode is Mode.LIVE and not plan.live:
            raise FilterError("live counts do not take where.text or a title; ask /panosc/api")
        if plan.exact:
            result = self.search.search(Query(plan.request(0, 1), mode, 1, 1))
            return result.total, result
        if mode is Mode.LIVE:
            raise FilterError("live counts take only what facilities can be asked for; ask /panosc/api")
        matched, result = self._scan(plan)
        return len(matched), result

    def dataset(self, pid: str, raw_filter: str | None, mode: Mode = Mode.INDEX) -> dict[str, Any] | None:
        flt = parse_filter(raw_filter)
        found = self._get(pid, mode)
        if found is None:
            return None
        return project(to_record(found, {i.relation for i in flt.include}), flt.fields, _fields_keep(flt))

    def _get(self, pid: str, mode: Mode) -> Dataset | None:
        if mode is Mode.LIVE:
            try:
                return self.search.get(pid)
            except NotFound:
                return None
        return self.index.get(pid)

    def files(self, pid: str, raw_filter: str | None) -> tuple[list[dict[str, Any]], bool] | None:
        """A dataset's files (and whether the harvest holds every one of them), or None for no dataset."""
        dataset = self.index.get(pid)
        if dataset is None:
            return None
        flt = parse_filter(raw_filter)
        _known([flt.where], FILE_PROPERTIES, "Files")
        if flt.include:
            raise FilterError("files have no relations to include")
        records = [f for f in file_records(dataset) if matches(flt.where, f, "files")]
        for name, descending in reversed(flt.order):
            if name not in FILE_PROPERTIES:
                raise FilterError(f"order files by {', '.join(FILE_PROPERTIES[:-1])}, not {name!r}")
            records.sort(key=lambda f: (f.get(name) is not None, f.get(name) or 0), reverse=descending)
        page = records[flt.skip:flt.skip + flt.limit if flt.limit else None]
        return [project(f, flt.fields) for f in page], _complete_files(dataset)

    def count_files(self, pid: str, raw_where: str | None) -> tuple[int, bool] | None:
        dataset = self.index.get(pid)
        if dataset is None:
            return None
        where = parse_json(raw_where, "where")
        check_where(where)
        _known([where], FILE_PROPERTIES, "Files")
        return sum(1 for f in file_records(dataset) if matches(where, f, "files")), _complete_files(dataset)

    # -- documents -------------------------------------------------------------------------------
    def documents(self, raw_filter: str | None, raw_query: str | None = None) -> tuple[list[dict[str, Any]], int]:
        """Documents (proposals, publications) of the datasets that match, each with the datasets of it that
        match when ``datasets`` is included. The dataset conditions come from ``include: [{relation: datasets,
        scope: {where, include}}]``, as the PaNOSC portal sends them; the document's own from ``where``."""
        flt = parse_filter(raw_filter, query=raw_query)
        # a page of documents needs only the datasets up to its last document's first one (documents come in
        # the order of their first matching dataset); an order of their own, or no limit, needs them all
        enough = flt.skip + flt.limit if flt.limit and not flt.order else None
        groups, plan = self._document_groups(flt, enough)
        self._within_ceiling(flt, len(groups))
        page = groups[flt.skip:flt.skip + (flt.limit or NO_LIMIT_CEILING)]
        includes = {i.relation: i for i in flt.include}
        nested = {i.relation for i in includes["datasets"].include} if "datasets" in includes else set()
        records = []
        score = Scorer(flt.query)
        for document, datasets in page:
            record = document_record(document)
            record["score"] = max((score(d) for d in datasets), default=UNRANKED_SCORE)
            if "datasets" in includes:
                every = datasets if enough is None else self._datasets_of(document, plan)
                record["datasets"] = [to_record(d, nested) for d in every]
            if "members" in includes:
                record["members"] = member_records(document, includes["members"])
            records.append(project(record, flt.fields, _fields_keep(flt, "score")))
        return records, len(groups)

    def _datasets_of(self, document: DocumentRef, plan: Plan) -> list[Dataset]:
        """Every dataset of ``document`` that the plan keeps."""
        request = replace(plan.request(0, SCAN_PAGE), documents=(document.pid,))
        return [d for page in self._pages(request) for d in page.items
                if plan.holds(d) and any(x.pid == document.pid for x in d.documents)]

    def _document_groups(self, flt: Filter, enough: int | None = None
                         ) -> tuple[list[tuple[DocumentRef, list[Dataset]]], Plan]:
        """Documents whose datasets match, with those datasets, in the order of their first matching dataset
        (its rank with ``query``, else its pid); with ``enough``, the first that many documents only."""
        dataset_filter = Filter(query=flt.query)
        members: Include | None = None
        for include in flt.include:
            if include.relation == "datasets":
                dataset_filter = Filter(where=include.where or {}, include=include.include, query=flt.query)
            elif include.relation == "members":
                _check_members(include)
                if _scoped(include):  # documents with no member that matches are left out
                    members = include
            elif include.relation == "parameters":
                raise FilterError("Documents' own parameters are not harvested; filter on their datasets' "
                                  'parameters: {"include": [{"relation": "datasets", "scope": {"include": '
                                  '[{"relation": "parameters", "scope": {"where": ...}}]}}]}')
            else:
                raise FilterError(f"Documents have no relation {include.relation!r}; use datasets or members")
        _known([flt.where], DOCUMENT_PROPERTIES, "Documents")
        plan = plan_of(dataset_filter)
        keys = _document_keys(flt.where)
        if keys:
            plan.values["documents"] = sorted(keys)
        groups: dict[str, tuple[DocumentRef, list[Dataset]]] = {}
        for page in self._pages(plan.request(0, SCAN_PAGE), every=enough is None):
            if enough is not None and len(groups) >= enough:
                break
            for dataset in page.items:
                if not plan.holds(dataset):
                    continue
                for document in dataset.documents:
                    if document.pid in groups or (matches(flt.where, document_record(document), "documents")
                                                  and (members is None or member_records(document, members))):
                        groups.setdefault(document.pid, (document, []))[1].append(dataset)
        ordered = list(groups.values())
        for name, descending in reversed(flt.order):
            if name not in DOCUMENT_PROPERTIES:
                raise FilterError(f"order documents by {', '.join(DOCUMENT_PROPERTIES[:-1])}, not {name!r}")
            ordered.sort(key=lambda g: (document_record(g[0]).get(name) is not None,
                                        str(document_record(g[0]).get(name) or "")), reverse=descending)
        return ordered, plan

    def count_documents(self, raw_where: str | None) -> int:
        where = parse_json(raw_where, "where")
        check_where(where)
        return len(self._document_groups(Filter(where=where))[0])

    def document(self, pid: str, raw_filter: str | None) -> dict[str, Any] | None:
        flt = parse_filter(raw_filter)
        found, _ = self.documents_for(Filter(where={"pid": pid}, include=flt.include, fields=flt.fields))
        if not found:  # the broker's extra: a document by its DOI
            found, _ = self.documents_for(Filter(where={"doi": pid}, include=flt.include, fields=flt.fields))
        if not found:
            return None
        found[0].pop("score", None)  # findById does not pass through the Score mixin
        return found[0]

    def documents_for(self, flt: Filter) -> tuple[list[dict[str, Any]], int]:
        raw = {"where": flt.where, "include": [_include_json(i) for i in flt.include]}
        if flt.fields:
            raw["fields"] = {name: shown for name, shown in flt.fields}
        return self.documents(json.dumps(raw))

    # -- instruments -----------------------------------------------------------------------------
    def _instruments(self) -> list[dict[str, Any]]:
        """Every instrument the harvested datasets name, by pid (``complete`` False when the index's instrument
        facet may have left some out)."""
        result = self.search.search(Query(SearchRequest(limit=1, facets=("instrument",)), Mode.INDEX, 1, 1))
        buckets = result.facets.get("instrument", [])
        self.instruments_complete = len(buckets) < FACETS["instrument"]["terms"]["size"]
        found: dict[str, dict[str, Any]] = {}
        for bucket in buckets:
            datasets = self.search.search(Query(SearchRequest(instruments=(bucket.value,), limit=50, sort=Sort.PID),
                                                Mode.INDEX, 1, 50))
            for dataset in datasets.items:
                record = instrument_record(dataset)
                if record is not None:
                    found.setdefault(record["pid"], record)
        return [found[pid] for pid in sorted(found)]

    def instruments(self, raw_filter: str | None) -> list[dict[str, Any]]:
        flt = parse_filter(raw_filter)
        _known([flt.where], INSTRUMENT_PROPERTIES, "Instruments")
        if flt.include:
            raise FilterError("Instruments are served without relations")
        items = [i for i in self._instruments() if matches(flt.where, i, "instrument")]
        for name, descending in reversed(flt.order):
            if name not in INSTRUMENT_PROPERTIES[:-1]:
                raise FilterError(f"order instruments by pid, name or facility, not {name!r}")
            items.sort(key=lambda i: str(i.get(name) or ""), reverse=descending)
        self._within_ceiling(flt, len(items))
        page = items[flt.skip:flt.skip + (flt.limit or NO_LIMIT_CEILING)]
        return [project({**i, "score": UNRANKED_SCORE}, flt.fields, ("score",)) for i in page]

    def count_instruments(self, raw_where: str | None) -> int:
        where = parse_json(raw_where, "where")
        check_where(where)
        _known([where], INSTRUMENT_PROPERTIES, "Instruments")
        return sum(1 for i in self._instruments() if matches(where, i, "instrument"))

    def instrument(self, pid: str, raw_filter: str | None) -> dict[str, Any] | None:
        flt = parse_filter(raw_filter)
        found = next((i for i in self._instruments() if i["pid"] == pid), None)
        return project(found, flt.fields) if found else None


MEMBER_RELATIONS = {"person": ("fullName", "orcid", "text"), "affiliation": ("name", "text")}


def _check_members(include: Include) -> None:
    if include.where is not None:
        _known([include.where], ("role", "text"), "Members")
    for nested in include.include:
        if nested.relation not in MEMBER_RELATIONS:
            raise FilterError(f"members have person and affiliation, not {nested.relation!r}")
        if nested.include:
            raise FilterError(f"a member's {nested.relation} has no relations to include")
        if nested.where is not None:  # what the harvest keeps of them
            _known([nested.where], MEMBER_RELATIONS[nested.relation], nested.relation.capitalize())


def member_records(document: DocumentRef, include: Include) -> list[dict[str, Any]]:
    """The document's members that match the include's scope (role; the person's or affiliation's where), with
    the person and affiliation when included. The harvest keeps a person's full name and ORCID and an
    affiliation's name, without LoopBack's ids."""
    nested = {i.relation: i for i in include.include}
    records = []
    for member in document.members:
        record = _present({"role": member.role, "documentId": document.pid})
        if include.where is not None and not matches(include.where, record, "members"):
            continue
        related = {"person": _present({"fullName": member.name, "orcid": member.orcid}),
                   "affiliation": _present({"name": member.affiliation}) if member.affiliation else None}
        kept = True
        for relation, scope in nested.items():
            value = related[relation]
            if scope.where is not None and (value is None or not matches(scope.where, value, relation)):
                kept = False  # as the reference's inner join drops a member whose person does not match
            elif value is not None:
                record[relation] = value
        if kept:
            records.append(record)
    return records


def _complete_files(dataset: Dataset) -> bool:
    return dataset.file_count is None or dataset.file_count <= len(dataset.files)


def _include_json(include: Include) -> dict[str, Any]:
    scope: dict[str, Any] = {}
    if include.where is not None:
        scope["where"] = include.where
    if include.include:
        scope["include"] = [_include_json(i) for i in include.include]
    return {"relation": include.relation, **({"scope": scope} if scope else {})}


def _scoped(include: Include) -> bool:
    return include.where is not None or any(_scoped(i) for i in include.include)


def _document_keys(where: dict[str, Any]) -> set[str]:
    """Pids or DOIs a Documents where requires (equality or inq, possibly under and): the index preselects."""
    keys: set[str] = set()
    for key, condition in where.items():
        if key == "and":
            for clause in condition:
                found = _document_keys(clause)
                if found:
                    keys = (keys & found) if keys else found
        elif key in ("pid", "doi"):
            op, operand = _op(condition)
            if op in ("eq", "inq"):
                found = {str(v) for v in _listed(operand)}
                keys = (keys & found) if keys else found
    return keys
