"""What the broker's OAI-PMH provider serves: one row per dataset it has ever published, with the time it
last changed and whether it has since been deleted (OAI-PMH's persistent deletion support)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from registry.models.base import Base


class OaiRecord(Base):
    """A dataset as the OAI-PMH feed knows it; written by the harvest after the index commits."""

    __tablename__ = "oai_records"

    pid: Mapped[str] = mapped_column(String(500), primary_key=True)
    facility: Mapped[str] = mapped_column(String(64), nullable=False)
    # the set specs the record belongs to, each between bars ("|facility:ILL|technique:PaNET01188|")
    sets: Mapped[str] = mapped_column(Text, nullable=False, default="")
    doi: Mapped[str | None] = mapped_column(String(500))  # oai_datacite needs one
    digest: Mapped[str] = mapped_column(String(64), nullable=False)
    datestamp: Mapped[datetime] = mapped_column(nullable=False)
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    __table_args__ = (Index("ix_oai_records_datestamp", "datestamp", "pid"),)
