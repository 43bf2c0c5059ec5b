"""A simulated facility's reading of LoopBack 3 filters, written from LoopBack's documentation and the PaNOSC
reference's observed behaviour (its own code, not the broker's: a simulator that shared the broker's parser
would agree with it by construction).

Observed on the reference and reproduced: a filter that is not a JSON object is a 400 "Value is not an
object."; an unknown relation is a bare 500; no ``limit`` means every record; ``include`` with a scope
``where`` drops the parent when nothing is left (its Sanitize mixin), after ``limit`` is applied; parameter
scopes compare values literally, in their stored unit. Unlike the reference, the simulator scores ``query``
(as facilities with a PaNOSC scoring service do), so both kinds of facility can be simulated.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

RELATIONS = ("documents", "document", "techniques", "instrument", "parameters", "files", "samples")


class SimulatedError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def read_json(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise SimulatedError(400, "Value is not an object.") from None
    if not isinstance(value, dict):
        raise SimulatedError(400, "Value is not an object.")
    return value


def where_holds(where: Any, record: dict[str, Any]) -> bool:
    if not isinstance(where, dict):
        return True
    for key, condition in where.items():
        if key == "and":
            if not all(where_holds(c, record) for c in condition):
                return False
        elif key == "or":
            if not any(where_holds(c, record) for c in condition):
                return False
        elif key == "text":
            if str(condition).lower() not in str(record.get("title", "")).lower():
                return False
        elif not _holds(record.get(key), condition):
            return False
    return True


def _holds(value: Any, condition: Any) -> bool:
    if not isinstance(condition, dict):
        return value == condition
    (op, operand), = condition.items()
    value, operand = _instant(value), [_instant(o) for o in operand] if isinstance(operand, list) else _instant(operand)
    if op == "inq":
        return value in operand
    if op == "nin":
        return value not in operand
    if op == "neq":
        return value != operand
    if op in ("like", "ilike"):
        pattern = "^" + re.escape(str(operand)).replace("%", ".*") + "$"
        return value is not None and re.match(pattern, str(value), re.I if op == "ilike" else 0) is not None
    if value is None:
        return False
    if op == "between":
        return operand[0] <= value <= operand[1]
    return {"gt": value > operand, "gte": value >= operand, "lt": value < operand, "lte": value <= operand}[op]


def _instant(value: Any) -> Any:
    """ISO dates compare as instants, as LoopBack compares its date properties."""
    if isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}", value):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return value


def find(records: list[dict[str, Any]], flt: dict[str, Any]) -> list[dict[str, Any]]:
    """What a facility's ``GET /api/Datasets?filter=`` answers."""
    include = _includes(flt.get("include"))
    found = [r for r in records if where_holds(flt.get("where"), r)]
    query = flt.get("query")
    if isinstance(query, str) and query.strip():
        terms = query.lower().split()
        found = [dict(r, score=s) for s, r in sorted(((_score(r, terms), r) for r in found),
                                                     key=lambda x: (-x[0], x[1]["pid"])) if s > 0]
    order = flt.get("order")
    if isinstance(order, str) and order.split()[0] in ("creationDate", "pid", "title"):
        name, *direction = order.split()
        found.sort(key=lambda r: r.get(name) or "", reverse=bool(direction) and direction[0].upper() == "DESC")
    skip = int(flt.get("skip") or 0)
    limit = flt.get("limit")
    page = found[skip:skip + int(limit)] if limit else found[skip:]
    shown = [project(r, include) for r in page]
    return [r for r in shown if all(_kept(r, relation, scope) for relation, scope in include)]


def project(record: dict[str, Any], include: list[tuple[str, dict[str, Any] | None]]) -> dict[str, Any]:
    wanted = {relation for relation, _ in include}
    out = {k: v for k, v in record.items() if k not in RELATIONS or k in wanted}
    for relation, scope in include:
        where = (scope or {}).get("where")
        if where is not None and relation != "parameters" and isinstance(out.get(relation), list):
            out[relation] = [item for item in out[relation] if where_holds(where, item)]
    return out


def includes(raw: Any) -> list[tuple[str, dict[str, Any] | None]]:
    return _includes(raw)


def _includes(raw: Any) -> list[tuple[str, dict[str, Any] | None]]:
    items = raw if isinstance(raw, list) else ([raw] if raw else [])
    out = []
    for item in items:
        relation, scope = (item, None) if isinstance(item, str) else (item.get("relation"), item.get("scope"))
        if relation not in RELATIONS:
            raise SimulatedError(500, "Internal Server Error")
        out.append((relation, scope if isinstance(scope, dict) else None))
    return out


def _kept(record: dict[str, Any], relation: str, scope: dict[str, Any] | None) -> bool:
    where = (scope or {}).get("where")
    if where is None:
        return True
    related = record.get(relation)
    items = related if isinstance(related, list) else ([related] if related else [])
    return any(where_holds(where, item) for item in items)


def _score(record: dict[str, Any], terms: list[str]) -> float:
    text = " ".join([record["title"], *(d.get("summary") or "" for d in record.get("documents", [])),
                     *(k for d in record.get("documents", []) for k in d.get("keywords", []))]).lower()
    hits = sum(1 for t in terms if t in text)
    return round(hits / len(terms), 4) if terms else 0.0
