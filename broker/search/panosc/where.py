"""What a LoopBack ``where`` may name in each PaNOSC model, and the small readers of its clauses that the
Datasets plans (``plan``, ``scopes``) and the Documents, Files and Instruments answers (``compat``) share."""
from __future__ import annotations

from typing import Any

from broker.search.panosc.filters import FilterError, Include

DATASET_PROPERTIES = ("pid", "title", "isPublic", "creationDate", "size", "instrumentId", "text")
DOCUMENT_PROPERTIES = ("pid", "doi", "type", "title", "summary", "isPublic", "keywords", "startDate", "endDate",
                       "releaseDate", "license", "text")
INSTRUMENT_PROPERTIES = ("pid", "name", "facility", "text")
FILE_PROPERTIES = ("id", "name", "path", "size", "text")
#: the reference's Dataset relations, and the broker's extra "documents" (the reference answers it with a 500)
DATASET_RELATIONS = ("techniques", "instrument", "parameters", "files", "samples", "documents")

#: what the harvest keeps of a document's members, by relation
MEMBER_RELATIONS = {"person": ("fullName", "orcid", "text"), "affiliation": ("name", "text")}


def check_members(include: Include) -> None:
    """``FilterError`` unless a Documents include of ``members`` names only what the harvest keeps of them."""
    if include.where is not None:
        check_known([include.where], ("role", "text"), "Members")
    for nested in include.include:
        if nested.relation not in MEMBER_RELATIONS:
            raise FilterError(f"members have person and affiliation, not {nested.relation!r}")
        if nested.include:
            raise FilterError(f"a member's {nested.relation} has no relations to include")
        if nested.where is not None:  # what the harvest keeps of them
            check_known([nested.where], MEMBER_RELATIONS[nested.relation], nested.relation.capitalize())


def op_of(condition: Any) -> tuple[str, Any]:
    """A condition's operator and operand (a bare value is ``eq``)."""
    return next(iter(condition.items())) if isinstance(condition, dict) else ("eq", condition)


def listed(operand: Any) -> list[Any]:
    """An operand as a list (``inq`` takes one, ``eq`` a value)."""
    return list(operand) if isinstance(operand, list) else [operand]


def check_known(clauses: list[Any], properties: tuple[str, ...], model: str) -> None:
    """``FilterError`` naming the first property of ``clauses`` (under and/or too) that ``model`` has not."""
    for clause in clauses:
        for key, value in clause.items():
            if key in ("and", "or"):
                check_known(value, properties, model)
            elif key not in properties:
                raise FilterError(f"where on {model}' {key!r} is not supported; use {', '.join(properties)}")


def flat_where(where: dict[str, Any]) -> dict[str, Any] | None:
    """An and-only where as one mapping, or None when it holds ``or`` or repeats a property."""
    flat: dict[str, Any] = {}
    for key, value in where.items():
        if key == "or":
            return None
        parts = [flat_where(c) for c in value] if key == "and" else [{key: value}]
        for part in parts:
            if part is None or set(part) & set(flat):
                return None
            flat.update(part)
    return flat


def include_json(include: Include) -> dict[str, Any]:
    """An include back in LoopBack's JSON filter form."""
    scope: dict[str, Any] = {}
    if include.where is not None:
        scope["where"] = include.where
    if include.include:
        scope["include"] = [include_json(i) for i in include.include]
    return {"relation": include.relation, **({"scope": scope} if scope else {})}


def is_scoped(include: Include) -> bool:
    """True when the include, or one nested in it, has a where."""
    return include.where is not None or any(is_scoped(i) for i in include.include)


def document_keys(where: dict[str, Any]) -> set[str]:
    """Pids or DOIs a Documents where requires (equality or inq, possibly under and): the index preselects."""
    keys: set[str] = set()
    for key, condition in where.items():
        if key == "and":
            for clause in condition:
                found = document_keys(clause)
                if found:
                    keys = (keys & found) if keys else found
        elif key in ("pid", "doi"):
            op, operand = op_of(condition)
            if op in ("eq", "inq"):
                found = {str(v) for v in listed(operand)}
                keys = (keys & found) if keys else found
    return keys
