"""Handlers of the health API."""
from __future__ import annotations

from dataclasses import asdict

from broker.api.context import broker, principal
from broker.api.registry import JSON
from panmodel.states import TargetType


def summary() -> tuple:
    return broker().health.summary(), 200, JSON


def run_checks(token_info: dict | None = None) -> tuple:
    outcomes = broker().health.check_all_as(principal(token_info))
    return {"checked": len(outcomes), "results": [asdict(o) for o in outcomes]}, 200, JSON


def service_history(service_id: str, limit: int = 50) -> tuple:
    return {"items": broker().health.history(TargetType.SERVICE, service_id, limit)}, 200, JSON


def search_endpoint_history(endpoint_id: str, limit: int = 50) -> tuple:
    return {"items": broker().health.history(TargetType.SEARCH_ENDPOINT, endpoint_id, limit)}, 200, JSON
