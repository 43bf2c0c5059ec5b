"""Access to the broker's services from inside a request."""
from __future__ import annotations

from typing import Any

from flask import current_app

from broker.authz import ANONYMOUS, Principal


def broker() -> Any:  # panbroker.app.Broker: the composition root, which this layer does not import
    return current_app.extensions["panbroker"]


def principal(token_info: dict | None) -> Principal:
    """The caller, as established by ``broker.api.security``."""
    if not token_info:
        return ANONYMOUS
    return Principal(token_info["sub"], admin=bool(token_info.get("admin")),
                     operator_of=frozenset(token_info.get("operator_of", ())))
