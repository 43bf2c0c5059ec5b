"""Bearer-token check for the OpenAPI ``bearer`` scheme (called by connexion before a handler)."""
from __future__ import annotations

import hmac

from starlette.requests import Request

from broker.errors import Unauthenticated

SCOPE_KEY = "panbroker"


def bearer_info(token: str, request: Request) -> dict | None:
    """Token info for a valid token, None (401) otherwise. Until federated login lands the only
    token is the bootstrap admin token from settings."""
    broker = request.scope[SCOPE_KEY]
    admin_token = broker.settings.admin_token
    if not admin_token:
        raise Unauthenticated("registry writes are disabled: no PANBROKER_ADMIN_TOKEN is configured")
    if hmac.compare_digest(token.encode(), admin_token.encode()):
        return {"sub": "admin-token", "admin": True}
    return None
