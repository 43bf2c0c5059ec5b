"""Handlers of the EOSC API: sync, history, profile export, and the discovery catalogue."""
from __future__ import annotations

from typing import Any

from broker.api.context import broker, principal
from broker.api.reads import Body, answer, cache_of, digest_tag, json_body
from broker.api.registry import JSON

CSV_HEADERS = {"Content-Disposition": 'attachment; filename="pan-services.csv"'}


def catalogue(format: str = "json", **filters: Any) -> Any:  # noqa: A002 - the query parameter's name
    services = broker()

    def build() -> Body:
        items = services.catalogue.services(**filters)
        if format == "csv":
            data = services.catalogue.to_csv(items).encode()
            return Body(data, digest_tag(data))
        return json_body({"items": items, "total": len(items)})

    key = ("catalogue", format, tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                                             for k, v in filters.items() if v is not None)))
    body = cache_of(services.store).get(key, build)
    if format == "csv":
        return answer(body, "text/csv; charset=utf-8", CSV_HEADERS)
    return answer(body)


def sync(service_id: str, token_info: dict | None = None) -> tuple:
    return broker().eosc.sync_as(principal(token_info), service_id), 200, JSON


def history(service_id: str, limit: int = 50) -> tuple:
    return {"items": broker().eosc.history(service_id, limit)}, 200, JSON


def profile(service_id: str) -> tuple:
    return _show(broker().eosc.profile(service_id)), 200, JSON


def profiles(facility_id: str) -> tuple:
    return {"items": [{"service_id": sid, **_show(p)} for sid, p in broker().eosc.profiles(facility_id)]}, 200, JSON


def _show(p) -> dict:  # noqa: ANN001 - broker.eosc.Profile
    return {"valid": p.valid, "missing": p.missing, "invalid": p.invalid, "warnings": p.warnings,
            "catalogue_version": p.catalogue_version, "findings": [f.show() for f in p.findings],
            "profile": p.profile}


def push(service_id: str, dry_run: bool = False, token_info: dict | None = None) -> tuple:
    return broker().eosc.push(principal(token_info), service_id, dry_run=dry_run), 200, JSON


def completeness(facility: str | None = None) -> tuple:
    return broker().eosc.completeness(facility), 200, JSON
