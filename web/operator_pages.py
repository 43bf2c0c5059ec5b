"""The operator console: register, edit and delete the services, search endpoints and EOSC entries of
one's own facilities, and read their audit log. Writes go through the registry service, whose role
checks and validation are the API's; a refused form comes back with each message beside its field and
with what the operator typed."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import abort, redirect, render_template, request
from werkzeug.wrappers import Response

from broker.authz import Principal
from broker.errors import BrokerError
from broker.registry_kinds import KINDS, Kind
from broker.registry_service import Precondition
from registry.models import EoscStatus, LaunchMode, Lifecycle, SearchKind, ServiceKind
from web.common import blueprint, broker, require_viewer


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    type: str = "text"  # text, url, number, select, password, checkbox, textarea
    choices: tuple[str, ...] = ()
    required: bool = False
    help: str = ""
    create_only: bool = False
    path: tuple[str, ...] = ()  # where the value goes in the payload (default: its name)


@dataclass(frozen=True)
class Form:
    kind: Kind
    slug: str  # in URLs
    title: str
    fields: tuple[Field, ...] = field(default_factory=tuple)


FORMS = {form.slug: form for form in (
    Form(KINDS.service, "services", "service", (
        Field("id", "Identifier", required=True, create_only=True, help="lower-case letters, digits and dashes"),
        Field("title", "Title", required=True),
        Field("kind", "Kind", "select", tuple(k.value for k in ServiceKind), required=True),
        Field("base_url", "Base URL", "url", help="https://… (not needed while planned)"),
        Field("launch_mode", "Launch mode", "select", tuple(m.value for m in LaunchMode),
              help="deeplink opens the service's own page; api starts sessions through its API"),
        Field("lifecycle", "Lifecycle", "select", tuple(m.value for m in Lifecycle)),
        Field("description", "Description", "textarea"),
        Field("max_cpus", "Most CPUs per session", "number", path=("capabilities", "max_cpus")),
        Field("max_memory_gb", "Most memory per session (GB)", "number", path=("capabilities", "max_memory_gb")),
        Field("gpu", "GPUs available", "checkbox", path=("capabilities", "gpu")),
        Field("credential", "API credential", "password",
              help="stored encrypted and never shown again; leave empty to keep the stored one"),
    )),
    Form(KINDS.search_endpoint, "search-endpoints", "search endpoint", (
        Field("id", "Identifier", required=True, create_only=True, help="lower-case letters, digits and dashes"),
        Field("kind", "Kind", "select", tuple(k.value for k in SearchKind), required=True),
        Field("base_url", "Base URL", "url", required=True),
        Field("harvest_schedule", "Harvest schedule", help="cron, e.g. 0 3 * * * (empty: no harvest)"),
    )),
    Form(KINDS.eosc_entry, "eosc-entries", "EOSC entry", (
        Field("service_id", "Service", "select", required=True, create_only=True),
        Field("resource_id", "EOSC resource id", help="e.g. ill.visa (empty until registered)"),
        Field("status", "Registration", "select", tuple(s.value for s in EoscStatus)),
        Field("trl", "Technology readiness", help="trl-1 … trl-9"),
    )),
)}
NUMBERS = {"max_cpus": int, "max_memory_gb": float}


def _facilities(person: Principal) -> list[dict[str, Any]]:
    every = broker().registry.list(KINDS.facility, limit=500).items
    return [f for f in every if person.can_write(f["id"])]


def _facility(person: Principal, facility_id: str) -> dict[str, Any]:
    facility = broker().registry.get(KINDS.facility, facility_id)
    if not person.can_write(facility_id):
        abort(403, f"you are not an operator of {facility['name']}")
    return facility


def _contents(facility_id: str) -> dict[str, Any]:
    registry = broker().registry
    scope = {"facility": facility_id}
    return {"services": registry.list(KINDS.service, scope, limit=500).items,
            "endpoints": registry.list(KINDS.search_endpoint, scope, limit=500).items,
            "entries": registry.list(KINDS.eosc_entry, scope, limit=500).items,
            "audit": registry.audit_log(limit=30, facility_id=facility_id).items}


@blueprint.get("/operator")
def operator_home() -> Response | str:
    person = require_viewer()
    facilities = _facilities(person)
    if len(facilities) == 1:
        return redirect(f"/operator/{facilities[0]['id']}", 303)
    return render_template("operator_home.html", facilities=facilities)


@blueprint.get("/operator/<facility_id>")
def operator_facility(facility_id: str) -> str:
    facility = _facility(require_viewer(), facility_id)
    return render_template("operator.html", facility=facility, **_contents(facility_id))


def _service_choices(facility_id: str) -> tuple[str, ...]:
    return tuple(s["id"] for s in broker().registry.list(KINDS.service, {"facility": facility_id}, limit=500).items)


def _render_form(form: Form, facility: dict[str, Any], values: dict[str, Any], errors: dict[str, str],
                 key: str | None, version: int | None, summary: str = "", status: int = 200) -> tuple[str, int]:
    fields = [f if f.name != "service_id" else Field(**{**f.__dict__, "choices": _service_choices(facility["id"])})
              for f in form.fields if not (key and f.create_only)]
    return render_template("operator_form.html", form=form, fields=fields, facility=facility, values=values,
                           errors=errors, key=key, version=version, summary=summary), status


def _stored_values(form: Form, stored: dict[str, Any]) -> dict[str, Any]:
    values = {}
    for f in form.fields:
        value: Any = stored
        for step in f.path or (f.name,):
            value = value.get(step) if isinstance(value, dict) else None
        values[f.name] = "" if value is None or f.type == "password" else value
    return values


@blueprint.get("/operator/<facility_id>/<slug>/new")
def new_form(facility_id: str, slug: str) -> tuple[str, int]:
    form = FORMS.get(slug) or abort(404)
    facility = _facility(require_viewer(), facility_id)
    return _render_form(form, facility, {}, {}, None, None)


@blueprint.get("/operator/<facility_id>/<slug>/<key>/edit")
def edit_form(facility_id: str, slug: str, key: str) -> tuple[str, int]:
    form = FORMS.get(slug) or abort(404)
    facility = _facility(require_viewer(), facility_id)
    stored = broker().registry.get(form.kind, key)
    return _render_form(form, facility, _stored_values(form, stored), {}, key, stored["version"])


def _payload(form: Form, posted: Any, stored: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The form as a registry payload, and a message per field that could not be read."""
    payload: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if stored is not None and form.kind is KINDS.service:
        payload["capabilities"] = dict(stored.get("capabilities") or {})
    for f in form.fields:
        if stored is not None and f.create_only:
            continue
        raw = "" if f.type == "checkbox" else (posted.get(f.name) or "").strip()
        value: Any = raw
        if f.type == "checkbox":
            value = bool(posted.get(f.name))
        elif raw == "":
            if f.required:
                errors[f.name] = "required"
                continue
            schema_field = form.kind.fields.get(f.name)
            if f.type == "password" or stored is None or (schema_field is not None and not schema_field.allow_none):
                continue  # left out: a default applies, the stored value stays, an empty password keeps the credential
            value = None
        elif f.name in NUMBERS:
            try:
                value = NUMBERS[f.name](raw)
            except ValueError:
                errors[f.name] = "a whole number" if NUMBERS[f.name] is int else "a number, e.g. 64 or 0.5"
                continue
        target = payload
        *parents, last = f.path or (f.name,)
        for step in parents:
            target = target.setdefault(step, {})
        if value is None and parents:
            target.pop(last, None)
        else:
            target[last] = value
    return payload, errors


def _field_errors(form: Form, exc: BrokerError) -> dict[str, str]:
    """The error list of a refused write by form field (``capabilities.max_cpus`` -> ``max_cpus``);
    errors of fields the form does not show are gathered under ``""`` for the summary."""
    known = {f.name for f in form.fields}
    out: dict[str, str] = {}
    for error in exc.errors:
        name = error.field.split(".")[-1]
        if name in known:
            out[name] = f"{out[name]} {error.message}" if name in out else error.message
        else:
            out[""] = f"{out.get('', '')} {error.field}: {error.message}".strip()
    return out


@blueprint.post("/operator/<facility_id>/<slug>")
def create_object(facility_id: str, slug: str) -> Response | tuple[str, int]:
    form = FORMS.get(slug) or abort(404)
    person = require_viewer()
    facility = _facility(person, facility_id)
    payload, errors = _payload(form, request.form, None)
    if form.kind is not KINDS.eosc_entry:
        payload["facility_id"] = facility_id
    elif payload.get("service_id") not in _service_choices(facility_id):
        errors["service_id"] = "choose one of this facility's services"
    if not errors:
        try:
            broker().registry.create(person, form.kind, payload)
            return redirect(f"/operator/{facility_id}#{slug}", 303)
        except BrokerError as exc:
            return _render_form(form, facility, request.form, _field_errors(form, exc), None, None,
                                exc.detail, exc.status)
    return _render_form(form, facility, request.form, errors, None, None, "Some fields need fixing.", 422)


@blueprint.post("/operator/<facility_id>/<slug>/<key>")
def update_object(facility_id: str, slug: str, key: str) -> Response | tuple[str, int]:
    form = FORMS.get(slug) or abort(404)
    person = require_viewer()
    facility = _facility(person, facility_id)
    stored = broker().registry.get(form.kind, key)
    if _owner(form, stored) != facility_id:
        abort(404)
    version = request.form.get("version", "")
    payload, errors = _payload(form, request.form, stored)
    if not version.isdigit():
        errors[""] = "the form lost its version: reload the page"
    if not errors:
        try:
            broker().registry.update(person, form.kind, key, payload, Precondition(int(version), from_header=False),
                                     partial=True)
            return redirect(f"/operator/{facility_id}#{slug}", 303)
        except BrokerError as exc:
            summary = exc.detail
            if exc.status == 409:
                summary += " Someone changed it while you were editing: reload to see their version."
            return _render_form(form, facility, request.form, _field_errors(form, exc), key, int(version),
                                summary, exc.status)
    return _render_form(form, facility, request.form, errors, key, int(version) if version.isdigit() else None,
                        "Some fields need fixing.", 422)


@blueprint.post("/operator/<facility_id>/<slug>/<key>/delete")
def delete_object(facility_id: str, slug: str, key: str) -> Response:
    form = FORMS.get(slug) or abort(404)
    person = require_viewer()
    _facility(person, facility_id)
    stored = broker().registry.get(form.kind, key)
    if _owner(form, stored) != facility_id:
        abort(404)
    version = request.form.get("version", "")
    broker().registry.delete(person, form.kind, key,
                             Precondition(int(version), from_header=False) if version.isdigit() else None)
    return redirect(f"/operator/{facility_id}#{slug}", 303)


def _owner(form: Form, stored: dict[str, Any]) -> str | None:
    if form.kind is KINDS.eosc_entry:
        return broker().registry.get(KINDS.service, stored["service_id"])["facility_id"]
    return stored.get("facility_id")


__all__ = ["FORMS"]
