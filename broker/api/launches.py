"""Handlers of the launch API."""
from __future__ import annotations

from typing import Any

from connexion import request

from broker.api.context import broker, principal
from broker.api.registry import JSON


def create_launch(body: dict[str, Any], token_info: dict | None = None) -> tuple:
    launch, created = broker().launches.create(principal(token_info), request.headers.get("Idempotency-Key"), body)
    return launch.as_dict(), 201 if created else 200, {**JSON, "Location": f"/api/v1/launches/{launch.id}"}


def list_launches(token_info: dict | None = None) -> tuple:
    items = [launch.as_dict() for launch in broker().launches.list(principal(token_info))]
    return {"items": items, "total": len(items)}, 200, JSON


def get_launch(launch_id: str, token_info: dict | None = None) -> tuple:
    return broker().launches.get(principal(token_info), launch_id).as_dict(), 200, JSON


def cancel_launch(launch_id: str, token_info: dict | None = None) -> tuple:
    return broker().launches.cancel(principal(token_info), launch_id).as_dict(), 200, JSON


def launch_events(launch_id: str, format: str = "sse", token_info: dict | None = None):  # noqa: A002, ANN201
    """The events so far as JSON; the event stream itself (format=sse) is served on the event loop by
    ``broker.api.serving`` before a request reaches this handler, so no request thread waits on it."""
    return {"items": [e.as_dict() for e in broker().launches.events(principal(token_info), launch_id)]}, 200, JSON
