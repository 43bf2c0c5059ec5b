"""The one place where errors become RFC 9457 problem+json responses."""
from __future__ import annotations

import json
import logging
from typing import Any

from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from panmodel.errors import BrokerError

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
TYPE_PREFIX = "urn:panbroker:problem:"


def problem_response(status: int, title: str, detail: str, type_suffix: str,
                     errors: list[dict] | None = None, headers: dict | None = None) -> ConnexionResponse:
    body: dict[str, Any] = {"type": TYPE_PREFIX + type_suffix, "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return ConnexionResponse(status_code=status, body=json.dumps(body), content_type=PROBLEM, headers=headers or {})


def broker_error(_request: ConnexionRequest, exc: BrokerError) -> ConnexionResponse:
    if exc.status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc.detail)
    return problem_response(exc.status, exc.title, exc.detail, exc.type_suffix,
                            [{"field": e.field, "message": e.message} for e in exc.errors], exc.headers)


def connexion_problem(_request: ConnexionRequest, exc: ProblemException) -> ConnexionResponse:
    errors = (exc.ext or {}).get("errors")
    suffix = {400: "malformed-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found",
              405: "method-not-allowed", 406: "not-acceptable", 415: "unsupported-media-type"}
    detail = str(exc.detail or exc.title)
    if exc.status == 401:
        detail += "; send Authorization: Bearer <token>"
    return problem_response(exc.status, exc.title or "Error", detail, suffix.get(exc.status, "http-error"),
                            errors, exc.headers)


ALLOWED_METHODS_KEY = "panbroker.allowed_methods"


def http_error(request: ConnexionRequest, exc: StarletteHTTPException) -> ConnexionResponse:
    headers = dict(exc.headers or {})
    allowed = request.scope.get(ALLOWED_METHODS_KEY)
    if exc.status_code == 405 and allowed is not None:
        # the router names the methods of the first operation on the path only; the client needs all
        headers["Allow"] = ", ".join(allowed(request.scope.get("path", "")))
    return problem_response(exc.status_code, "HTTP error", str(exc.detail), "http-error", None, headers)


def unexpected(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem_response(500, "Internal error", "The broker failed unexpectedly; the error is logged.",
                            "internal")
