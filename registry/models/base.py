"""Shared base of the registry's models: the declarative base and the mixins for versions and health."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from panmodel.clock import utcnow
from panmodel.states import HealthStatus


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


