"""PaNOSC filters as plans: the search the index runs, and the checks and order the broker applies itself
on what the index preselects (see the package's docstring for what it refuses and where it differs)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from panmodel.datasets import Dataset, Range, Sort, SearchRequest
from broker.search.panosc.filters import Filter, FilterError, matches
from broker.search.panosc.records import dataset_view
from broker.search.panosc.scopes import include_scope
from broker.search.panosc.where import DATASET_PROPERTIES, check_known, listed, op_of

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
        include_scope(include, plan)
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


def _where(where: dict[str, Any], plan: Plan) -> None:
    for key, condition in where.items():
        if key == "and":
            for clause in condition:
                _where(clause, plan)
            continue
        if key == "or":
            check_known(condition, DATASET_PROPERTIES, "Datasets")
            plan.checks.append(lambda d, c={"or": condition}: matches(c, dataset_view(d)))
            continue
        if key not in DATASET_PROPERTIES:
            raise FilterError(f"where on {key!r} is not supported; use {', '.join(DATASET_PROPERTIES)} (with and/or)")
        op, operand = op_of(condition)
        clause = {key: condition}
        if key == "text":
            _add_words(plan, str(operand))
        elif key == "pid" and op in ("eq", "inq"):
            plan.values.setdefault("pids", []).extend(str(v) for v in listed(operand))
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
            years = [int(str(v)[:4]) for v in listed(operand)]
            return Range(min(years), max(years)) if op == "inq" else None
        if op in ("like", "nlike", "ilike", "nilike"):
            raise FilterError(f"creationDate does not take {op}")
        year = int(str(operand)[:4])
    except (ValueError, TypeError, IndexError) as exc:
        raise FilterError("creationDate takes ISO dates, e.g. \"2020-05-05T00:00:00.000Z\"") from exc
    bounds = {"gt": Range(year, None), "gte": Range(year, None), "lt": Range(None, year), "lte": Range(None, year),
              "eq": Range(year, year)}
    return bounds[op]
