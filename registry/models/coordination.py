"""Coordination of several workers through the store: which worker ran a scheduled job in which slot."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from registry.models.base import Base, utcnow


class ScheduledRun(Base):
    """One run of a scheduled job in one schedule slot: the worker whose insert succeeded runs it, the
    others skip that slot (the primary key is the claim)."""

    __tablename__ = "scheduled_runs"

    job_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    slot_at: Mapped[datetime] = mapped_column(primary_key=True)
    worker: Mapped[str] = mapped_column(String(200), nullable=False)
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
