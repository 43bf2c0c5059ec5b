"""One simulator per connector kind, found by the conformance suite (tests/test_connector_conformance.py)
and by the demo: a module here names its ``KIND`` and gives ``peer()``, the simulated system with what a
service or endpoint of that kind is registered with. A simulator that also sets ``DEMO_SERVICE`` joins
``make demo`` as a service of the facility it names.

Simulators answer from the documented behaviour of the system they stand for, with their own code:
none reuses the broker's parsing. Everything listens on 127.0.0.1 only.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable

from werkzeug.wrappers import Request, Response

Handler = Callable[[Request], Response]


@dataclass
class Peer:
    """A simulated system and how the broker registers it."""

    handler: Handler
    config: dict[str, Any] = field(default_factory=dict)  # connector_config
    credential: str | None = None  # the service's API credential (API mode)
    user_token: str | None = None  # the person's token, for services called on their behalf
    resources: dict[str, Any] = field(default_factory=dict)  # a request the service can take
    proposals: tuple[str, ...] = ()  # the proposals of the dataset launched (services that look them up)
    dataset_pid: str = "sim/conformance-1"  # a dataset the simulated source holds (search endpoints)


def simulators() -> dict[str, ModuleType]:
    """Every simulator module here, by the kind it simulates."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "KIND"):
            found[module.KIND] = module
    return found
