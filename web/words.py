"""The registry's codes in words a visitor reads: EOSC states, harvest schedules, health, service kinds (in
the words of their connectors)."""
from __future__ import annotations

from connectors import all_connectors
from web.common import blueprint

EOSC_STATES = {"not-registered": "Not in the EOSC catalogue", "in-progress": "Being registered in EOSC",
               "registered": "In the EOSC catalogue"}
HEALTH = {"up": "Working", "down": "Not answering", "blocked": "Refusing checks", "unknown": "Not checked yet"}
LIFECYCLES = {"production": "In production", "prototype": "Prototype", "pilot": "Pilot", "planned": "Planned"}
DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


@blueprint.app_template_filter("eosc_words")
def eosc_words(state: str | None) -> str:
    return EOSC_STATES.get(state or "", state or "")


@blueprint.app_template_filter("health_words")
def health_words(status: str | None) -> str:
    return HEALTH.get(status or "unknown", status or "")


@blueprint.app_template_filter("kind_words")
def kind_words(kind: str | None) -> str:
    connector = all_connectors().get(kind or "")
    return connector.title if connector else kind or ""


@blueprint.app_template_filter("lifecycle_words")
def lifecycle_words(lifecycle: str | None) -> str:
    return LIFECYCLES.get(lifecycle or "", lifecycle or "")


@blueprint.app_template_filter("schedule_words")
def schedule_words(cron: str | None) -> str:
    """A harvest schedule (five-field cron, UTC) in words, for the common shapes; others as written."""
    if not cron:
        return "not harvested on a schedule"
    fields = cron.split()
    if len(fields) != 5 or not all(f.isdigit() or f == "*" for f in fields):
        return f"on the schedule “{cron}” (cron, UTC)"
    minute, hour, day, month, weekday = fields
    if minute.isdigit() and hour == "*" and day == month == weekday == "*":
        return f"every hour at {int(minute):02d} minutes past"
    if minute.isdigit() and hour.isdigit():
        at = f"{int(hour):02d}:{int(minute):02d} UTC"
        if day == month == weekday == "*":
            return f"every day at {at}"
        if day == month == "*" and int(weekday) < 7:
            return f"every {DAYS[int(weekday)]} at {at}"
        if month == weekday == "*":
            return f"on day {int(day)} of every month at {at}"
    return f"on the schedule “{cron}” (cron, UTC)"
