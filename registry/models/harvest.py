"""Harvest jobs and the items that failed in them."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from panmodel.clock import utcnow
from registry.models.base import Base


class HarvestJob(Base):
    """One harvest of one search endpoint: gather -> fetch -> import, with per-stage times and counts."""

    __tablename__ = "harvest_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("search_endpoints.id", ondelete="CASCADE"), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    started_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    gathered_at: Mapped[datetime | None] = mapped_column()
    fetched_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    gathered: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    imported: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    deleted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_harvest_jobs_endpoint", "endpoint_id", "started_at"),)


class HarvestError(Base):
    """An item that failed, with the stage it failed in."""

    __tablename__ = "harvest_errors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("harvest_jobs.id", ondelete="CASCADE"), nullable=False)
    item_id: Mapped[str] = mapped_column(String(500), nullable=False)
    stage: Mapped[str] = mapped_column(String(16), nullable=False)
    error: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (Index("ix_harvest_errors_job", "job_id"),)



class HarvestCheckpoint(Base):
    """How far the current harvest of an endpoint has committed to the index: a harvest that stops (a
    killed worker, a source failing half way) resumes after the last committed page, not from zero. Gone
    once a harvest has read the whole source."""

    __tablename__ = "harvest_checkpoints"

    endpoint_id: Mapped[str] = mapped_column(ForeignKey("search_endpoints.id", ondelete="CASCADE"), primary_key=True)
    job_id: Mapped[int] = mapped_column(Integer, nullable=False)  # the job that committed it
    base_url: Mapped[str] = mapped_column(String(2048), nullable=False)  # a checkpoint of another source is void
    resume: Mapped[str] = mapped_column(Text, nullable=False)  # the connector's cursor after the last committed page
    pages: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    records: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # imported so far, over every resumption
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
