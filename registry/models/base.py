"""Shared base of the registry's models: the declarative base, clocks, the enums of the registry's
objects, and the mixins for versions and health."""
from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """``moment`` with its UTC offset; naive datetimes (SQLite hands those back, facilities send them) are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class ServiceKind(enum.StrEnum):
    VISA = "visa"
    JUPYTERHUB = "jupyterhub"
    BINDERHUB = "binderhub"
    REMOTE_DESKTOP = "remote-desktop"


class SearchKind(enum.StrEnum):
    PANOSC_SEARCH_API = "panosc-search-api"
    SCICAT = "scicat"
    OAI_PMH = "oai-pmh"


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


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON, list[Any]: JSON}


class Versioned:
    """Optimistic concurrency: every write bumps ``version``; a write naming an older one is refused."""

    version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, nullable=False)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:  # noqa: N805 - SQLAlchemy directive
        return {"version_id_col": cls.__table__.c.version}


class HealthFields:
    """The latest health result, kept on the endpoint so lists can filter on it."""

    health_status: Mapped[str] = mapped_column(String(16), nullable=False, default=HealthStatus.UNKNOWN.value)
    health_latency_ms: Mapped[float | None] = mapped_column(Float)
    health_checked_at: Mapped[datetime | None] = mapped_column()
    health_error: Mapped[str | None] = mapped_column(Text)


