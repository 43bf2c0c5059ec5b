"""The relation scopes of a Datasets filter's ``include`` as parts of its plan: what the index can select
(PaNET techniques with their descendants, instrument names, one parameter condition in any unit of its quantity)
goes into the index's search; anything else becomes a check the broker runs on what the index preselects."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.search.matching import matches_filters
from broker.search.panosc.filters import FilterError, Include, matches
from broker.search.panosc.records import (
    document_record,
    file_records,
    instrument_record,
    sample_records,
    technique_records,
)
from broker.search.panosc.where import (
    DATASET_RELATIONS,
    DOCUMENT_PROPERTIES,
    FILE_PROPERTIES,
    INSTRUMENT_PROPERTIES,
    check_known,
    flat_where,
    listed,
    op_of,
)
from broker.search.service import parameter_range
from panmodel.datasets import SearchRequest
from panmodel.techniques import panet
from panmodel.units import canonical_name

if TYPE_CHECKING:
    from broker.search.panosc.plan import Plan


def include_scope(include: Include, plan: Plan) -> None:
    """Add a Datasets include's scope to ``plan``; ``FilterError`` for what cannot be honoured."""
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
        check_known([where], FILE_PROPERTIES, "Files")
        plan.checks.append(lambda d, w=where: any(matches(w, f, "files") for f in file_records(d)))
    elif include.relation == "samples":
        check_known([where], ("pid", "name", "description", "text"), "Samples")
        plan.checks.append(lambda d, w=where: any(matches(w, s, "samples") for s in sample_records(d)))
    elif include.relation == "documents":
        check_known([where], DOCUMENT_PROPERTIES, "Documents")
        plan.checks.append(lambda d, w=where: any(matches(w, doc, "documents") for doc in
                                                  (document_record(x) for x in d.documents)))


def _technique_scope(where: dict[str, Any], plan: Plan) -> None:
    """Names, PaNET ids or pids that PaNET knows: the index, with descendants. Anything else (a facility's
    own technique pid, another operator, ``or``): checked by the broker as the reference compares."""
    check_known([where], ("pid", "name", "panetId", "text"), "Techniques")
    flat = flat_where(where)
    iris: list[str] = []
    if flat is not None and flat and set(flat) <= {"pid", "name", "panetId"}:
        for key, condition in flat.items():
            op, operand = op_of(condition)
            if op not in ("eq", "inq"):
                break
            found = [panet().resolve(str(v)) for v in listed(operand)]
            if not all(found):
                break
            iris.extend(iri for group in found for iri in group)
        else:
            plan.values.setdefault("techniques", []).extend(dict.fromkeys(iris))
            return
    plan.checks.append(lambda d, w=where: any(matches(w, t, "techniques") for t in technique_records(d)))


def _instrument_scope(where: dict[str, Any], plan: Plan) -> None:
    check_known([where], INSTRUMENT_PROPERTIES, "Instruments")
    flat = flat_where(where)
    if flat is not None and set(flat) == {"name"} and op_of(flat["name"])[0] in ("eq", "inq"):
        plan.values.setdefault("instruments", []).extend(str(v) for v in listed(op_of(flat["name"])[1]))
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
        flat = flat_where(branch)
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
    op, operand = op_of(flat.get("value", {"gt": None}))
    unit = flat.get("unit")
    unit = unit if isinstance(unit, str) and unit.strip() else None
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) or _is_number(v)
                  for v in listed(operand) if v is not None)
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
