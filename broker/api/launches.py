"""Handlers of the launch API."""
from __future__ import annotations

import json
import time
from typing import Any, Iterator

from connexion import request
from flask import Response

from broker.api.context import broker, principal
from broker.api.registry import JSON
from registry.models import FINAL_LAUNCH_STATES

SSE_MAX_SECONDS = 600


def create_launch(body: dict[str, Any], token_info: dict | None = None) -> tuple:
    launch, created = broker().launches.create(principal(token_info), request.headers.get("Idempotency-Key"), body)
    return launch, 201 if created else 200, {**JSON, "Location": f"/api/v1/launches/{launch['id']}"}


def list_launches(token_info: dict | None = None) -> tuple:
    items = broker().launches.list(principal(token_info))
    return {"items": items, "total": len(items)}, 200, JSON


def get_launch(launch_id: str, token_info: dict | None = None) -> tuple:
    return broker().launches.get(principal(token_info), launch_id), 200, JSON


def cancel_launch(launch_id: str, token_info: dict | None = None) -> tuple:
    return broker().launches.cancel(principal(token_info), launch_id), 200, JSON


def launch_events(launch_id: str, format: str = "sse", token_info: dict | None = None):  # noqa: A002, ANN201
    launches, caller = broker().launches, principal(token_info)
    events = launches.events(caller, launch_id)
    if format == "json":
        return {"items": events}, 200, JSON

    def stream() -> Iterator[str]:
        seen, started = 0, time.monotonic()
        pending = events
        while True:
            for event in pending:
                seen = event["id"]
                yield f"id: {event['id']}\nevent: {event['state']}\ndata: {json.dumps(event)}\n\n"
            state = launches.get(caller, launch_id)["state"]
            if state in FINAL_LAUNCH_STATES or time.monotonic() - started > SSE_MAX_SECONDS:
                return
            time.sleep(0.5)
            pending = launches.events(caller, launch_id, after=seen)

    return Response(stream(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})
