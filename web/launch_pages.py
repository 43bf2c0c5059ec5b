"""Analyse a dataset (the form on its page), follow the launch live, and "My sessions" with stop."""
from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request
from werkzeug.wrappers import Response

from broker.errors import BrokerError
from web.common import blueprint, broker, require_viewer
from web.search_pages import render_dataset

PLAIN_STATES = {"requested": "Requested", "routed": "Chosen a service", "submitted": "Asked the service to start",
                "starting": "Starting", "waiting": "Waiting in the facility's queue", "ready": "Ready", "failed": "Failed", "cancelled": "Cancelled",
                "stopped": "Stopped"}


def _resources(form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The resource choices of the analyse form, with a message per field that is not a number."""
    resources: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, kind in (("cpus", int), ("memory_gb", float)):
        raw = (form.get(name) or "").strip()
        if raw:
            try:
                resources[name] = kind(raw)
            except ValueError:
                errors[name] = "a whole number" if kind is int else "a number, e.g. 8 or 0.5"
    for name in ("partition", "profile", "plan"):
        if (form.get(name) or "").strip():
            resources[name] = form[name].strip()
    if form.get("gpu"):
        resources["gpu"] = True
    return resources, errors


@blueprint.post("/analyse")
def analyse() -> Response | tuple[str, int]:
    person = require_viewer()
    resources, errors = _resources(request.form)
    body: dict[str, Any] = {"dataset": request.form.get("dataset", ""), "resources": resources}
    for name in ("service_id", "interface"):
        if request.form.get(name):
            body[name] = request.form[name]
    summary = "Some choices need fixing."
    if not errors:
        try:
            launch, _created = broker().launches.create(person, request.form.get("idempotency_key"), body)
            return redirect(f"/sessions/{launch['id']}", 303)
        except BrokerError as exc:
            errors = {e.field.removeprefix("resources."): e.message for e in exc.errors}
            summary = exc.detail
    return render_dataset(body["dataset"], request.form, errors, summary), 422


@blueprint.get("/sessions")
def sessions_page() -> str:
    person = require_viewer()
    return render_template("sessions.html", launches=broker().launches.list(person), plain=PLAIN_STATES)


@blueprint.get("/sessions/<launch_id>")
def session_page(launch_id: str) -> str:
    person = require_viewer()
    launch = broker().launches.get(person, launch_id)
    events = broker().launches.events(person, launch_id)
    return render_template("session.html", launch=launch, events=events, plain=PLAIN_STATES)


@blueprint.post("/sessions/<launch_id>/stop")
def stop_session(launch_id: str) -> Response:
    person = require_viewer()
    broker().launches.cancel(person, launch_id)
    return redirect(request.form.get("back") if request.form.get("back") == "/sessions"
                    else f"/sessions/{launch_id}", 303)
