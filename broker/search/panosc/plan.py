"""PaNOSC filters as plans: the search the index runs, and the checks and order the broker applies itself
on what the index preselects (see the package's docstring for what it refuses and where it differs)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from broker.search.matching import matches_filters
from panmodel.datasets import Dataset, Range, SearchRequest, Sort
from broker.search.panosc.filters import (
    Filter,
    FilterError,
    Include,
    matches,
)
from broker.search.panosc.records import (
    dataset_view,
    document_record,
    file_records,
    instrument_record,
    sample_records,
    technique_records,
)
from broker.search.service import parameter_range
from panmodel.techniques import panet
from panmodel.units import canonical_name

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

