"""The fields of the operator console's forms, read from marshmallow schemas: the registry kinds' own
(capabilities) and each connector's ``config_schema`` (its ``connector_config`` settings), so a connector's
settings appear in the console with no change here. What a field shows of a stored value, and what it
reads back from a posted form, is decided once, by its type."""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import marshmallow.fields as ma
from marshmallow import Schema, validate

from connectors import connector_for, kinds
from panmodel.states import TargetType


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    type: str = "text"  # text, url, number, select, password, checkbox, textarea, list, choices, partitions, json
    choices: tuple[str, ...] = ()
    required: bool = False
    help: str = ""
    create_only: bool = False
    path: tuple[str, ...] = ()  # where the value goes in the payload (default: its name)
    number: type | None = None  # int or float, for type number
    kind: str = ""  # the connector kind whose setting this is; "" for the form's own fields


def _one_of(field_: ma.Field) -> tuple[str, ...]:
    found = [v for v in field_.validators if isinstance(v, validate.OneOf)]
    return tuple(str(c) for c in found[0].choices) if found else ()


def _spec(field_: ma.Field, records: str) -> dict[str, Any]:
    """The form type of one schema field (and its choices or number type)."""
    if field_.load_only or field_.metadata.get("secret"):
        return {"type": "password"}
    if isinstance(field_, ma.Boolean):
        return {"type": "checkbox"}
    if isinstance(field_, (ma.Integer, ma.Float)):
        return {"type": "number", "number": int if isinstance(field_, ma.Integer) else float}
    if isinstance(field_, ma.List) and isinstance(field_.inner, ma.Nested):
        return {"type": records}
    if isinstance(field_, ma.List):
        choices = _one_of(field_.inner)
        return {"type": "choices", "choices": choices} if choices else {"type": "list"}
    if isinstance(field_, (ma.Dict, ma.Nested)):
        return {"type": "json"}
    if isinstance(field_, ma.Url):
        return {"type": "url"}
    if choices := _one_of(field_):
        return {"type": "select", "choices": choices}
    return {}


def schema_fields(schema: type[Schema], path: tuple[str, ...], words: dict[str, tuple[str, str]],
                  records: str = "partitions") -> tuple[Field, ...]:
    """Form fields for every field of a marshmallow schema: numbers, switches, lists of names, choices
    from its OneOf validators, nested records as JSON (or, with ``records="partitions"``, lists of
    records as lines); labels and help from ``words`` or the field's ``description`` metadata."""
    out = []
    for name, field_ in schema().fields.items():
        help_ = field_.metadata.get("description") or field_.metadata.get("help") or ""
        label, help_ = words.get(name, (name.replace("_", " ").capitalize(), help_))
        out.append(Field(name, label, help=help_, required=field_.required, path=(*path, name),
                         **_spec(field_, records)))
    return tuple(out)


def connector_settings(target: TargetType, taken: set[tuple[str, ...]]) -> tuple[Field, ...]:
    """The ``connector_config`` settings of every connector of ``target``, named ``<kind>.<setting>``,
    read from each connector's ``config_schema``; those at a path in ``taken`` (a field of the form's
    own, such as the health URL) are left to it."""
    return tuple(replace(f, name=f"{kind}.{f.name}", kind=kind)
                 for kind in kinds(target)
                 for f in schema_fields(connector_for(kind).config_schema, ("connector_config",), {}, "json")
                 if f.path not in taken)


def shown(f: Field, value: Any) -> Any:
    """A stored value as field ``f`` shows it (secrets never)."""
    if value is None or f.type == "password":
        return ""
    if f.type == "list":
        return ", ".join(value)
    if f.type == "json":
        return json.dumps(value, indent=2, ensure_ascii=False)
    if f.type == "partitions":
        return "\n".join(", ".join([p["id"], *([p["title"]] if p.get("title") else []),
                                    *(["gpu"] if p.get("gpu") else [])]) for p in value)
    return value


def _partitions(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",") if p.strip()]
        if parts:
            gpu = any(p.lower() == "gpu" for p in parts[1:])
            titles = [p for p in parts[1:] if p.lower() != "gpu"]
            out.append({"id": parts[0], **({"title": titles[0]} if titles else {}), **({"gpu": True} if gpu else {})})
    return out


def parsed(f: Field, raw: str) -> Any:
    """The value a non-empty text ``raw`` posted for field ``f`` stands for; ``ValueError`` with the
    message to show beside the field when it cannot be read."""
    if f.number is not None:
        try:
            return f.number(raw)
        except ValueError:
            raise ValueError("a whole number" if f.number is int else "a number, e.g. 64 or 0.5") from None
    if f.type == "list":
        return [v.strip() for v in raw.split(",") if v.strip()]
    if f.type == "partitions":
        return _partitions(raw)
    if f.type == "json":
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"not JSON: {exc.args[0].split(':')[0].lower()}") from None
    return raw


__all__ = ["Field", "connector_settings", "parsed", "schema_fields", "shown"]
