"""Bearer-token check for the OpenAPI ``bearer`` scheme (called by connexion before a handler)."""
from __future__ import annotations

import hmac

from starlette.requests import Request

from panmodel.errors import Unauthenticated
from broker.people import TOKEN_PREFIX

SCOPE_KEY = "panbroker"


def bearer_info(token: str, request: Request) -> dict | None:
    """Token info for a valid token, None (401) otherwise: the bootstrap admin token from settings, or
    a person's personal API token (unknown, expired and revoked ones are refused alike)."""
    broker = request.scope[SCOPE_KEY]
    if token.startswith(TOKEN_PREFIX + "_"):
        return _info(broker.people.authenticate(token))
    if token.count(".") == 2:  # a JWT access token from a configured issuer
        return _info(broker.auth.bearer.principal(token))
    admin_token = broker.settings.admin_token
    if not admin_token:
        raise Unauthenticated("no PANBROKER_ADMIN_TOKEN is configured; use a personal API token")
    if hmac.compare_digest(token.encode(), admin_token.encode()):
        return {"sub": "admin-token", "admin": True}
    return None


def session_info(api_key: str, request: Request) -> dict | None:
    """Token info for a browser session cookie (signed in through an identity provider)."""
    return _info(request.scope[SCOPE_KEY].auth.sessions.principal(api_key))


def _info(principal) -> dict | None:  # noqa: ANN001 - broker.authz.Principal
    if principal is None:
        return None
    return {"sub": principal.subject, "admin": principal.admin, "operator_of": sorted(principal.operator_of)}
