"""Analyse a dataset (the form on its page), follow the launch live, and "My sessions" with stop."""
from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request
from werkzeug.wrappers import Response

from panmodel.errors import BrokerError
from web import analyse
from web.common import blueprint, broker, facility_names, require_viewer
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
def analyse_dataset() -> Response | tuple[str, int]:
    """Start a session, unless a field is wrong (every message at once, beside its field), the chosen
    service cannot take it now, or the same dataset already runs at that service: then nothing is
    recorded and the panel says why."""
    person = require_viewer()
    resources, errors = _resources(request.form)
    body: dict[str, Any] = {"dataset": request.form.get("dataset", ""), "resources": resources}
    for name in ("service_id", "interface"):
        if request.form.get(name):
            body[name] = request.form[name]
    dataset = broker().search.get(body["dataset"])
    candidates = broker().launches.preview(person, dataset, {})
    services = {s["id"]: s for s in broker().catalogue.services(
        facility=sorted({c["facility_id"] for c in candidates}))} if candidates else {}
    offers = analyse.offers(candidates, services, facility_names().get(dataset.facility, dataset.facility))
    chosen = next((o for o in offers if o.service_id == body.get("service_id")), None if body.get("service_id")
                  else (offers[0] if offers else None))
    errors.update({k: v for k, v in analyse.check(chosen, resources, body.get("interface")).items() if k not in errors})
    if errors:
        return render_dataset(dataset.pid, request.form, errors, "Some choices need fixing: see the messages "
                              "beside them."), 422
    wanted = {**resources, "service_id": chosen.service_id, **({"interface": body["interface"]}
                                                               if body.get("interface") else {})}
    verdict = next((c for c in broker().launches.preview(person, dataset, wanted)
                    if c["service_id"] == chosen.service_id), None)
    if verdict is None or not verdict["fits"]:
        reason = analyse.plain(verdict["reason"]) if verdict else "cannot take this dataset"
        return render_dataset(dataset.pid, request.form, {"service_id": reason},
                              f"{chosen.title} cannot start this session: {reason}."), 422
    key = request.form.get("idempotency_key") or ""
    same = analyse.running(broker().launches.list(person), dataset.pid, chosen.service_id)
    if same and not (key and broker().launches.by_key(person, key)):  # a form sent twice is the same launch
        return render_dataset(dataset.pid, request.form, {}, "", existing=same), 409
    body["service_id"] = chosen.service_id
    try:
        launch, _created = broker().launches.create(person, request.form.get("idempotency_key"), body)
        return redirect(f"/sessions/{launch['id']}", 303)
    except BrokerError as exc:
        errors = {e.field.removeprefix("resources."): analyse.plain(e.message) for e in exc.errors}
        return render_dataset(body["dataset"], request.form, errors, analyse.plain(exc.detail)), 422


def _described(launches: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """The titles of the launches' datasets (pid when no longer found) and their services by id."""
    titles = {}
    for pid in {launch["dataset"] for launch in launches}:
        found = broker().search.index.get(pid)
        titles[pid] = found.title if found else pid
    wanted = sorted({launch["facility_id"] for launch in launches if launch["facility_id"]})
    services = {s["id"]: s for s in broker().catalogue.services(facility=wanted)} if wanted else {}
    return titles, services


@blueprint.get("/sessions")
def sessions_page() -> str:
    person = require_viewer()
    launches = broker().launches.list(person)
    titles, services = _described(launches)
    return render_template("sessions.html", launches=launches, plain=PLAIN_STATES, titles=titles, services=services)


@blueprint.get("/sessions/<launch_id>")
def session_page(launch_id: str) -> str:
    person = require_viewer()
    launch = broker().launches.get(person, launch_id)
    events = broker().launches.events(person, launch_id)
    titles, services = _described([launch])
    typical = broker().launches.typical_start_seconds(launch["service_id"]) if launch["service_id"] else None
    return render_template("session.html", launch=launch, events=events, plain=PLAIN_STATES, titles=titles,
                           services=services, typical=typical, reason=analyse.plain(launch["error"] or ""),
                           plain_reason=analyse.plain)


@blueprint.post("/sessions/<launch_id>/stop")
def stop_session(launch_id: str) -> Response:
    person = require_viewer()
    broker().launches.cancel(person, launch_id)
    return redirect(request.form.get("back") if request.form.get("back") == "/sessions"
                    else f"/sessions/{launch_id}", 303)
