"""The broker's error tree. HTTP status codes are attached here and mapped to problem+json in one
place (``broker.api.problems``); services raise these and never import the web framework."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class FieldError:
    """One invalid input field: a dotted path such as ``capabilities.max_cpus`` and what to fix."""

    field: str
    message: str


class BrokerError(Exception):
    status = 500
    title = "Internal error"
    type_suffix = "internal"

    def __init__(self, detail: str, *, errors: Iterable[FieldError] = (), headers: dict | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = tuple(errors)
        self.headers = headers or {}


class ConfigurationError(BrokerError):
    title = "Configuration error"
    type_suffix = "configuration"


class InvalidInput(BrokerError):
    status = 422
    title = "Invalid input"
    type_suffix = "invalid-input"

    @classmethod
    def from_fields(cls, errors: list[FieldError]) -> "InvalidInput":
        summary = "; ".join(f"{e.field}: {e.message}" for e in errors)
        return cls(f"Fix these fields: {summary}", errors=errors)


class MalformedRequest(BrokerError):
    status = 400
    title = "Malformed request"
    type_suffix = "malformed-request"


class PayloadTooLarge(BrokerError):
    status = 413
    title = "Request body too large"
    type_suffix = "payload-too-large"


class Unauthenticated(BrokerError):
    status = 401
    title = "Authentication required"
    type_suffix = "unauthenticated"


class Forbidden(BrokerError):
    status = 403
    title = "Forbidden"
    type_suffix = "forbidden"


class NotFound(BrokerError):
    status = 404
    title = "Not found"
    type_suffix = "not-found"


class Conflict(BrokerError):
    status = 409
    title = "Conflict"
    type_suffix = "conflict"


class AlreadyExists(Conflict):
    title = "Already exists"
    type_suffix = "already-exists"


class StaleVersion(Conflict):
    """The client's copy is older than the stored one; nothing was written."""

    title = "Stale version"
    type_suffix = "stale-version"


class PreconditionFailed(BrokerError):
    status = 412
    title = "Precondition failed"
    type_suffix = "precondition-failed"


class PreconditionRequired(BrokerError):
    status = 428
    title = "Precondition required"
    type_suffix = "precondition-required"


class NotConfigured(BrokerError):
    """A feature the deployment has not set up (e.g. no EOSC catalogue URL)."""

    status = 503
    title = "Not configured"
    type_suffix = "not-configured"
