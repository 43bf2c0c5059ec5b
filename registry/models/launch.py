"""Launches of analysis sessions and their events."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from panmodel.clock import utcnow
from registry.models.base import Base


class Launch(Base):
    """One request to analyse a dataset, followed to ready (or failure) by the worker."""

    __tablename__ = "launches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(200), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    request: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    dataset_pid: Mapped[str] = mapped_column(String(500), nullable=False)
    facility_id: Mapped[str | None] = mapped_column(String(64))
    service_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    decision: Mapped[list[Any]] = mapped_column(nullable=False, default=list)
    username: Mapped[str | None] = mapped_column(String(200))
    server_name: Mapped[str | None] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(2048))
    url_token_encrypted: Mapped[str | None] = mapped_column(Text)  # a token the URL needs (Binder's), encrypted
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    deadline_at: Mapped[datetime | None] = mapped_column()
    # the worker stepping or following the launch, until when; another takes it over once the lease lapses
    lease_holder: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    # a launch of a basket: the manifest its session is handed (every dataset, where it is, what was left out)
    basket: Mapped[dict[str, Any] | None] = mapped_column()

    __table_args__ = (Index("ux_launches_key", "person_id", "idempotency_key", unique=True),
                      Index("ix_launches_state", "state"))


class BasketItem(Base):
    """A dataset a person put in their basket, to analyse it together with the others there."""

    __tablename__ = "basket_items"

    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    pid: Mapped[str] = mapped_column(String(500), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)


class LaunchEvent(Base):
    __tablename__ = "launch_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    launch_id: Mapped[str] = mapped_column(ForeignKey("launches.id", ondelete="CASCADE"), nullable=False)
    at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (Index("ix_launch_events_launch", "launch_id", "id"),)
