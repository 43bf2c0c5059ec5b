"""Adapters to external systems, looked up by kind through the ``panbroker.connectors`` entry points."""
from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from panmodel.states import TargetType

GROUP = "panbroker.connectors"


@cache
def all_connectors() -> dict[str, object]:
    """Every installed connector, by kind (built-ins are registered the same way as plug-ins)."""
    found = {}
    for entry in entry_points(group=GROUP):
        cls = entry.load()
        found[cls.kind] = cls()
    return found


def connector_for(kind: str):  # noqa: ANN201 - returns a Connector
    """The connector of ``kind``; KeyError when none is installed."""
    return all_connectors()[kind]


def kinds(target: TargetType) -> list[str]:
    return sorted(kind for kind, c in all_connectors().items() if c.target == target)
