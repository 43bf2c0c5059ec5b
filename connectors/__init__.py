"""Adapters to external systems, looked up by kind through the ``panbroker.connectors`` entry points.

Every list of kinds in the broker (the API's enums, the registry's checks, routing's order, the forms,
the catalogue) is read from here: a connector joins by its module and its entry point alone.
"""
from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from panmodel.states import TargetType

if TYPE_CHECKING:
    from connectors.base import Capability, Connector

GROUP = "panbroker.connectors"


@cache
def all_connectors() -> dict[str, Connector]:
    """Every installed connector, by kind (built-ins are registered the same way as plug-ins). An entry
    point's name is the kind it declares; its class declares the capabilities by its bases."""
    found = {}
    for entry in entry_points(group=GROUP):
        cls = entry.load()
        if getattr(cls, "kind", None) != entry.name:
            raise TypeError(f"entry point {entry.name!r} names {entry.value}, whose kind is {getattr(cls, 'kind', None)!r}")
        found[cls.kind] = cls()
    return found


def connector_for(kind: str) -> Connector:
    """The connector of ``kind``; KeyError when none is installed."""
    return all_connectors()[kind]


def kinds(target: TargetType) -> list[str]:
    """The kinds of registry object ``target`` (compute services or search endpoints), sorted."""
    return sorted(kind for kind, c in all_connectors().items() if c.target == target)


def kinds_with(capability: Capability) -> list[str]:
    """The kinds that have ``capability``; launch kinds in routing's order of preference."""
    found = [(getattr(c, "preference", 0), kind) for kind, c in all_connectors().items()
             if capability in c.capabilities()]
    return [kind for _, kind in sorted(found)]
