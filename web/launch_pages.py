"""Analyse a dataset (the form on its page), follow the launch live, and "My sessions" with stop."""
from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request
from werkzeug.wrappers import Response

from broker.launch.panel import plain
from panmodel.states import LaunchState
from web.common import blueprint, broker, require_viewer
from web.search_pages import render_dataset

PLAIN_STATES = {LaunchState.REQUESTED: "Requested", LaunchState.ROUTED: "Chosen a service",
                LaunchState.SUBMITTED: "Asked the service to start", LaunchState.STARTING: "Starting",
                LaunchState.WAITING: "Waiting in the facility's queue", LaunchState.READY: "Ready",
                LaunchState.FAILED: "Failed", LaunchState.CANCELLED: "Cancelled", LaunchState.STOPPED: "Stopped"}


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
def analyse_dataset() -> Response | tuple[str, int]:
    """Start a session, unless a field is wrong (every message at once, beside its field), the chosen
    service cannot take it now, or the same dataset already runs at that service: then nothing is
    recorded and the panel says why."""
    resources, errors = _resources(request.form)
    pid = request.form.get("dataset", "")
    outcome = broker().analyse.start(require_viewer(), pid, resources,
                                     service_id=request.form.get("service_id") or None,
                                     interface=request.form.get("interface") or None,
                                     key=request.form.get("idempotency_key") or None, errors=errors)
    if outcome.launch is not None:
        return redirect(f"/sessions/{outcome.launch.id}", 303)
    if outcome.existing:
        return render_dataset(pid, request.form, {}, "", existing=outcome.existing), 409
    return render_dataset(pid, request.form, outcome.errors, outcome.summary), 422


@blueprint.get("/sessions")
def sessions_page() -> str:
    view = broker().analyse.sessions(require_viewer())
    return render_template("sessions.html", launches=view.launches, plain=PLAIN_STATES, titles=view.titles,
                           services=view.services)


@blueprint.get("/sessions/<launch_id>")
def session_page(launch_id: str) -> str:
    view = broker().analyse.session(require_viewer(), launch_id)
    launch = view.launches[0]
    return render_template("session.html", launch=launch, events=view.events, plain=PLAIN_STATES, titles=view.titles,
                           services=view.services, typical=view.typical_start_seconds, reason=plain(launch.error or ""),
                           plain_reason=plain, names=view.names)


@blueprint.post("/sessions/<launch_id>/stop")
def stop_session(launch_id: str) -> Response:
    broker().launches.cancel(require_viewer(), launch_id)
    return redirect(request.form.get("back") if request.form.get("back") == "/sessions"
                    else f"/sessions/{launch_id}", 303)
