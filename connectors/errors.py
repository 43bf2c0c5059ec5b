"""Faults of external systems, as the connectors report them. Vendor exceptions (requests, urllib3,
pybreaker) are translated into these at the connector edge."""
from __future__ import annotations

from panmodel.errors import BrokerError


class UpstreamError(BrokerError):
    """A facility's system did not give a usable answer."""

    status = 502
    title = "Facility system error"
    type_suffix = "upstream-error"


class AddressBlocked(UpstreamError):
    """The SSRF policy refused the address; nothing was sent."""

    title = "Address not allowed"
    type_suffix = "address-blocked"


class CircuitOpen(UpstreamError):
    """Recent calls to this endpoint failed; calls are refused until the circuit resets."""

    status = 503
    title = "Endpoint circuit open"
    type_suffix = "circuit-open"


class UpstreamTimeout(UpstreamError):
    status = 504
    title = "Facility system timed out"
    type_suffix = "upstream-timeout"


class EndpointBusy(UpstreamTimeout):
    """As many calls as allowed are already waiting on this endpoint; this one was not sent."""

    status = 503


class UpstreamUnavailable(UpstreamError):
    """Could not connect (refused, reset, DNS, TLS)."""

    title = "Facility system unreachable"
    type_suffix = "upstream-unavailable"


class UpstreamBadResponse(UpstreamError):
    """Answered, but with an error status, a body over the size cap, or something unreadable."""

    title = "Facility system answered badly"
    type_suffix = "upstream-bad-response"


class UpstreamTooLarge(UpstreamBadResponse):
    """The answer exceeds the response size cap (counted as a failure: it would be fetched again)."""
