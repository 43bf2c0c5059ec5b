"""The states of the broker's objects, shared by the store, the services and the connectors."""
from __future__ import annotations

import enum


class LaunchMode(enum.StrEnum):
    API = "api"
    DEEPLINK = "deeplink"


class Lifecycle(enum.StrEnum):
    """Where the facility says the service stands (the PaNOSC report's prototype/production columns)."""

    PRODUCTION = "production"
    PROTOTYPE = "prototype"
    PILOT = "pilot"
    PLANNED = "planned"


class EoscStatus(enum.StrEnum):
    NOT_REGISTERED = "not-registered"
    IN_PROGRESS = "in-progress"  # created, waiting for the onboarding team (or a draft)
    REGISTERED = "registered"  # approved and active
    QUEUED = "queued"  # not created yet: the provider's first service is still waiting for review
    INACTIVE = "inactive"  # approved, but deactivated in the catalogue
    SUSPENDED = "suspended"
    REJECTED = "rejected"


class HealthStatus(enum.StrEnum):
    UNKNOWN = "unknown"  # never checked, or nothing to check (no URL)
    UP = "up"
    DOWN = "down"
    BLOCKED = "blocked"  # the address is refused by the SSRF policy; not contacted


class TargetType(enum.StrEnum):
    SERVICE = "service"
    SEARCH_ENDPOINT = "search-endpoint"


class LaunchState(enum.StrEnum):
    REQUESTED = "requested"
    ROUTED = "routed"
    SUBMITTED = "submitted"
    STARTING = "starting"
    WAITING = "waiting"  # the service queued the start (a batch job pending in the facility's queue)
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STOPPED = "stopped"


FINAL_LAUNCH_STATES = frozenset({LaunchState.READY, LaunchState.FAILED, LaunchState.CANCELLED, LaunchState.STOPPED})


class HarvestState(enum.StrEnum):
    QUEUED = "queued"  # asked for by a process that does not write the index; the worker runs it
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # finished, but some items failed (each recorded with its stage)
    FAILED = "failed"  # the source could not be read; the index keeps the previous harvest
    SUSPECT = "suspect"  # would delete more than the allowed share (or all) of the source: deletions held


class HarvestStage(enum.StrEnum):
    GATHER = "gather"
    FETCH = "fetch"
    IMPORT = "import"
