"""Time helpers: every stored or compared moment is an aware UTC datetime."""
from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """``moment`` with its UTC offset; naive datetimes (SQLite hands those back, facilities send them) are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
