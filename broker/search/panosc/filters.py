"""The PaNOSC Search API filter language (LoopBack 3 JSON filter plus ``query`` and ``text``).

``parse_filter`` validates a filter and says what is wrong in LoopBack's words; ``matches`` evaluates a
``where`` clause against a record in memory (for the conditions the broker checks itself on what the index
preselects). ``filter_text`` reads LoopBack's bracket form.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


OPERATORS = {"eq", "neq", "gt", "gte", "lt", "lte", "between", "inq", "nin", "like", "nlike", "ilike", "nilike"}
RELATIONS = {"documents", "document", "techniques", "instrument", "parameters", "files", "samples", "datasets",
             "members", "person", "affiliation"}
MAX_FILTER_CHARS = 20_000
MAX_LIMIT = 1000


class FilterError(ValueError):
    """A filter the API cannot run; ``message`` says what to fix."""


@dataclass(frozen=True)
class Include:
    relation: str
    where: dict[str, Any] | None = None  # a scope's where: the parent is dropped when nothing matches
    include: tuple["Include", ...] = ()  # a scope's own includes (e.g. a document's datasets' techniques)


@dataclass(frozen=True)
class Filter:
    where: dict[str, Any] = field(default_factory=dict)
    include: tuple[Include, ...] = ()
    limit: int | None = None
    skip: int = 0
    query: str | None = None
    order: tuple[tuple[str, bool], ...] = ()  # (property, descending)
    fields: tuple[tuple[str, bool], ...] = ()  # LoopBack ``fields``: (property, shown); empty shows every one


def parse_json(raw: str | None, name: str = "filter") -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if len(raw) > MAX_FILTER_CHARS:
        raise FilterError(f"{name} is longer than {MAX_FILTER_CHARS} characters")
    try:
        value = json.loads(raw, parse_int=_small_int)
    except json.JSONDecodeError as exc:
        raise FilterError(f"{name} is not valid JSON: {exc.msg} at character {exc.pos}") from exc
    except RecursionError as exc:
        raise FilterError(_too_deep(name)) from exc
    except ValueError as exc:
        raise FilterError(f"{name} is refused: {exc}") from exc
    if not isinstance(value, dict):
        raise FilterError(f"{name} must be a JSON object")
    pending = [(value, 1)]
    while pending:  # the filter is walked recursively later: bound its depth here
        item, depth = pending.pop()
        if depth > MAX_FILTER_DEPTH:
            raise FilterError(_too_deep(name))
        texts = [item] if isinstance(item, str) else list(item) if isinstance(item, dict) else []
        if any(not text.isascii() and _has_surrogate(text) for text in texts):
            raise FilterError(f"{name} holds a lone surrogate escape (such as \\ud800): send valid Unicode")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        pending.extend((child, depth + 1) for child in children)
    return value


MAX_FILTER_DEPTH = 32


def _too_deep(name: str) -> str:
    return f"{name} nests deeper than {MAX_FILTER_DEPTH} levels"


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _small_int(text: str) -> int:
    if len(text.lstrip("-")) > 40:
        raise ValueError("a number has more than 40 digits")
    return int(text)


def parse_filter(raw: str | dict | None, *, query: str | None = None) -> Filter:
    """A validated filter from its JSON text (or already-parsed object)."""
    data = raw if isinstance(raw, dict) else parse_json(raw)
    unknown = set(data) - {"where", "include", "limit", "skip", "offset", "query", "order", "fields"}
    if unknown:
        raise FilterError(f"unknown filter key(s): {', '.join(sorted(unknown))}")
    where = data.get("where") or {}
    check_where(where)
    limit = _integer(data.get("limit"), "limit", 0, MAX_LIMIT)
    skip = _integer(data.get("skip", data.get("offset")), "skip", 0, 1_000_000) or 0
    text = data.get("query", query)
    if text is not None and not isinstance(text, str):
        raise FilterError("query must be a string")
    return Filter(where, _includes(data.get("include")), limit or None, skip, text or None, _order(data.get("order")),
                  _fields(data.get("fields")))


def _fields(raw: Any) -> tuple[tuple[str, bool], ...]:
    """LoopBack's ``fields``: a list of properties to show, or an object of property -> true/false."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, list) and all(isinstance(name, str) for name in raw):
        return tuple((name, True) for name in raw)
    if isinstance(raw, dict) and all(isinstance(v, bool) or v in (0, 1) for v in raw.values()):
        return tuple((name, bool(shown)) for name, shown in raw.items())
    raise FilterError('fields takes a list of property names or an object like {"pid": true, "title": true}')


def project(record: dict[str, Any], fields: tuple[tuple[str, bool], ...], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """``record`` with only the properties ``fields`` shows (as LoopBack does: when any is true only those,
    else all but the false ones); ``keep`` (included relations, the score) stays either way."""
    if not fields:
        return record
    shown = {name for name, on in fields if on}
    hidden = {name for name, on in fields if not on}
    return {key: value for key, value in record.items()
            if key in keep or (key in shown if shown else key not in hidden)}


def _order(raw: Any) -> tuple[tuple[str, bool], ...]:
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for item in items:
        parts = str(item).split()
        if len(parts) not in (1, 2) or (len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC")):
            raise FilterError(f"order {item!r}: use \"property ASC\" or \"property DESC\"")
        out.append((parts[0], len(parts) == 2 and parts[1].upper() == "DESC"))
    return tuple(out)


def _integer(value: Any, name: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise FilterError(f"{name} must be an integer between {low} and {high}")
    return value


def _includes(raw: Any) -> tuple[Include, ...]:
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out = []
    pairs: list[tuple[Any, Any]] = []
    for item in items:
        if isinstance(item, str):
            pairs.append((item, None))
        elif isinstance(item, dict) and isinstance(item.get("relation"), str):
            pairs.append((item["relation"], item.get("scope")))
        elif isinstance(item, dict) and item and "relation" not in item:
            # LoopBack's object form: {"members": ["person", "affiliation"]} includes members and theirs
            pairs.extend((name, {"include": nested}) for name, nested in item.items())
        else:
            raise FilterError("include entries must be relation names, {\"relation\": ..., \"scope\": ...} or "
                              "{\"relation\": [its relations]}")
    for relation, scope in pairs:
        if relation not in RELATIONS:
            raise FilterError(f"unknown relation {relation!r}; use one of {', '.join(sorted(RELATIONS))}")
        where, nested = None, ()
        if scope is not None:
            if not isinstance(scope, dict):
                raise FilterError(f"the scope of {relation} must be an object")
            unserved = sorted(set(scope) - {"where", "include"})
            if unserved:
                raise FilterError(f"{', '.join(unserved)} inside the scope of {relation} is not supported; "
                                  "filter with where, and page or order the top level instead")
            where = scope.get("where")
            if where is not None:
                check_where(where)
            nested = _includes(scope.get("include"))
        out.append(Include("documents" if relation == "document" else relation, where, nested))
    return tuple(out)


def check_where(where: Any) -> None:
    if not isinstance(where, dict):
        raise FilterError("where must be an object")
    for key, value in where.items():
        if key in ("and", "or"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{key} takes a non-empty list of conditions")
            for clause in value:
                check_where(clause)
        elif isinstance(value, dict):
            if len(value) != 1:
                raise FilterError(f"the condition on {key!r} must hold exactly one operator")
            op, operand = next(iter(value.items()))
            if op not in OPERATORS:
                raise FilterError(f"unknown operator {op!r} on {key!r}; use one of {', '.join(sorted(OPERATORS))}")
            if op == "between" and not (isinstance(operand, list) and len(operand) == 2):
                raise FilterError(f"between on {key!r} takes a list of two values")
            if op in ("inq", "nin") and not isinstance(operand, list):
                raise FilterError(f"{op} on {key!r} takes a list")


# -- LoopBack's bracket form of a filter ---------------------------------------------------------

BRACKET = re.compile(r"\[([^\]]*)\]")
MAX_BRACKET_KEYS = 200


def filter_text(args: Any, name: str) -> str | None:
    """A filter (or where) of the query arguments ``args`` (a multi-dict) as JSON text: given as JSON, or in
    LoopBack's bracket form, as
    ``filter[where][size][gt]=1500&filter[limit]=2`` (true/false become booleans, as LoopBack's typed
    properties would read them; numbers are read as numbers where one is compared)."""
    raw = args.get(name)
    if raw is not None:
        return raw
    keys = [key for key in args if key.startswith(name + "[")]
    if not keys:
        return None
    if len(keys) > MAX_BRACKET_KEYS:
        raise FilterError(f"{name} has more than {MAX_BRACKET_KEYS} bracketed parts; send it as JSON")
    nested: dict[str, Any] = {}
    for key in keys:
        path = BRACKET.findall(key[len(name):])
        if not path or "".join(f"[{p}]" for p in path) != key[len(name):]:
            raise FilterError(f"{key!r}: write {name}[property][operator]=value, or {name} as JSON")
        for value in args.getlist(key):
            _put(nested, path, {"true": True, "false": False}.get(value, value))
    return json.dumps(_as_lists(nested))


def _put(node: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        part = part or str(len(node))
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise FilterError(f"{'/'.join(path)}: a value and an object under one name")
        node = child
    node[path[-1] or str(len(node))] = value


def _as_lists(node: Any) -> Any:
    """Objects whose keys are 0, 1, 2 ... are the lists LoopBack's bracket form writes (inq, and, include)."""
    if not isinstance(node, dict):
        return node
    items = {key: _as_lists(value) for key, value in node.items()}
    if items and all(key.isdigit() for key in items) and sorted(map(int, items)) == list(range(len(items))):
        return [items[str(i)] for i in range(len(items))]
    return items


# -- in-memory evaluation ------------------------------------------------------------------------

TEXT_FIELDS = {"datasets": ("title",), "documents": ("title", "summary"), "instrument": ("name", "facility"),
               "techniques": ("name",), "files": ("name",), "samples": ("name", "description"),
               "members": ("role",), "person": ("fullName",), "affiliation": ("name",)}


def matches(where: dict[str, Any], record: dict[str, Any], model: str = "datasets") -> bool:
    for key, condition in where.items():
        if key == "and":
            if not all(matches(c, record, model) for c in condition):
                return False
        elif key == "or":
            if not any(matches(c, record, model) for c in condition):
                return False
        elif key == "text":
            needle = str(condition).lower()
            if not any(needle in str(record.get(f) or "").lower() for f in TEXT_FIELDS.get(model, ("title",))):
                return False
        elif not _condition(record.get(key), condition):
            return False
    return True


def _condition(value: Any, condition: Any) -> bool:
    op, operand = next(iter(condition.items())) if isinstance(condition, dict) else ("eq", condition)
    if op == "eq":
        return _cmp(value, operand) == 0
    if op == "neq":
        return _cmp(value, operand) != 0
    if op in ("inq", "nin"):
        found = any(_cmp(value, o) == 0 for o in operand)
        return found if op == "inq" else not found
    if op in ("like", "nlike", "ilike", "nilike"):
        flags = re.IGNORECASE if op in ("ilike", "nilike") else 0
        pattern = "^" + re.escape(str(operand)).replace("%", ".*").replace("_", ".") + "$"
        hit = value is not None and re.search(pattern, str(value), flags) is not None
        return hit if op in ("like", "ilike") else not hit
    if value is None:
        return False
    if op == "between":
        return _cmp(value, operand[0]) >= 0 and _cmp(value, operand[1]) <= 0
    result = _cmp(value, operand)
    return {"gt": result > 0, "gte": result >= 0, "lt": result < 0, "lte": result <= 0}[op]


def _cmp(a: Any, b: Any) -> int:
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        try:
            b = float(b)
        except (TypeError, ValueError):
            return 1
    elif isinstance(a, str) and isinstance(b, str) and (dates := _dates(a, b)) is not None:
        a, b = dates
    elif a is None or b is None:
        return 0 if a is b else 1
    else:
        a, b = (str(a) if not isinstance(a, bool) else a), (str(b) if not isinstance(b, bool) else b)
    return (a > b) - (a < b)


def _looks_like_date(text: str) -> bool:
    return bool(re.match(r"^\d{4}-\d{2}-\d{2}", text))


def _date(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # a date without zone is UTC's


def _dates(a: str, b: str) -> tuple[datetime, datetime] | None:
    """Both as instants when both are ISO dates (compared as text otherwise, as a non-date would be)."""
    if not (_looks_like_date(a) and _looks_like_date(b)):
        return None
    try:
        return _date(a), _date(b)
    except ValueError:
        return None
