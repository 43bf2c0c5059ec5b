"""The operator console: register, edit and delete the services, search endpoints and EOSC entries of
one's own facilities, and read their audit log. Pages read and write through the operator console
service (``broker.operator``): what the viewer may not edit is not found there (404), and its writes are
the registry's, with the API's permission checks and validation; a refused form comes back with each
message beside its field and with what the operator typed."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flask import abort, redirect, render_template, request
from werkzeug.wrappers import Response

from panmodel.errors import BrokerError
from broker.registry_kinds import KINDS, Kind
from panmodel.states import EoscStatus, LaunchMode, Lifecycle, TargetType
from connectors import all_connectors, kinds
from registry.schemas import CapabilitiesSchema
from web.common import blueprint, broker, require_viewer
from web.operator_fields import Field, connector_settings, parsed, schema_fields, shown


CAPABILITY_WORDS = {  # label and help of each capability; the fields themselves come from the schema
    "max_cpus": ("Most CPUs per session", ""), "max_memory_gb": ("Most memory per session (GB)", ""),
    "gpu": ("GPUs available", ""),
    "partitions": ("Partitions", "one per line: id, title, and the word gpu if it has GPUs — e.g. “a100, GPU nodes, gpu”"),
    "profiles": ("Sizes (profiles)", "comma-separated names, e.g. small, medium, large"),
    "plans": ("Plans", "comma-separated"), "protocols": ("Desktop protocols", ""),
    "interfaces": ("Interfaces offered", ""), "software": ("Software", "comma-separated, e.g. Mantid, SasView"),
}


HEALTH_URL = Field("health_url", "Health check URL", "url", path=("connector_config", "health_url"),
                   help="probed every few minutes; empty: the address the kind usually answers on")


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
        Field("kind", "Kind", "select", tuple(kinds(TargetType.SERVICE)), required=True),
        Field("base_url", "Base URL", "url", help="https://… (not needed while planned)"),
        Field("launch_mode", "Launch mode", "select", tuple(m.value for m in LaunchMode),
              help="deeplink opens the service's own page; api starts sessions through its API"),
        Field("lifecycle", "Lifecycle", "select", tuple(m.value for m in Lifecycle)),
        Field("description", "Description", "textarea", help="shown to everyone in the services catalogue"),
        *schema_fields(CapabilitiesSchema, ("capabilities",), CAPABILITY_WORDS),
        HEALTH_URL,
        Field("credential", "API credential", "password",
              help="stored encrypted and never shown again; leave empty to keep the stored one"),
        *connector_settings(TargetType.SERVICE, {HEALTH_URL.path}),
    )),
    Form(KINDS.search_endpoint, "search-endpoints", "search endpoint", (
        Field("id", "Identifier", required=True, create_only=True, help="lower-case letters, digits and dashes"),
        Field("kind", "Kind", "select", tuple(kinds(TargetType.SEARCH_ENDPOINT)), required=True),
        Field("base_url", "Base URL", "url", required=True),
        Field("harvest_schedule", "Harvest schedule", help="cron, in UTC, e.g. 0 3 * * * for every day at 03:00 "
                                                           "(empty: no harvest)"),
        HEALTH_URL,
        *connector_settings(TargetType.SEARCH_ENDPOINT, {HEALTH_URL.path}),
    )),
    Form(KINDS.eosc_entry, "eosc-entries", "EOSC entry", (
        Field("service_id", "Service", "select", required=True, create_only=True),
        Field("resource_id", "EOSC resource id", help="e.g. ill.visa (empty until registered)"),
        Field("status", "Registration", "select", tuple(s.value for s in EoscStatus)),
        Field("trl", "Technology readiness", help="trl-1 … trl-9"),
    )),
)}
MERGED = ("capabilities", "connector_config")  # stored objects an edit changes some keys of
MESSAGES = {"missing data for required field": "required", "field may not be null": "required",
            "not a valid url": "a web address starting with https://", "not a valid integer": "a whole number",
            "not a valid number": "a number, e.g. 64 or 0.5", "not a valid boolean": "yes or no",
            "unknown field": "not a setting of this kind"}
RANGE = re.compile(r"^must be greater than or equal to (\S+) and less than or equal to (\S+)$")


@blueprint.get("/operator")
def operator_home() -> Response | str:
    facilities = broker().operator.facilities(require_viewer())
    if len(facilities) == 1:
        return redirect(f"/operator/{facilities[0]['id']}", 303)
    return render_template("operator_home.html", facilities=facilities)


@blueprint.get("/operator/<facility_id>")
def operator_facility(facility_id: str) -> str:
    view = broker().operator.view(require_viewer(), facility_id)
    done = request.args.get("done") if request.args.get("done") in ("registered", "saved", "deleted") else None
    form = FORMS.get(request.args.get("what", ""))
    notice = f"{form.title[:1].upper()}{form.title[1:]} {request.args.get('key', '')} {done}." if done and form else None
    return render_template("operator.html", facility=view.facility, notice=notice, services=view.services,
                           endpoints=view.endpoints, entries=view.entries, audit=view.audit, actors=view.actors)


def _render_form(form: Form, facility: dict[str, Any], values: dict[str, Any], errors: dict[str, str],
                 key: str | None, version: int | None, summary: str = "", status: int = 200) -> tuple[str, int]:
    fields = [f if f.name != "service_id" else Field(**{**f.__dict__, "choices": broker().operator.service_ids(
              require_viewer(), facility["id"])})
              for f in form.fields if not (key and f.create_only) and not f.kind]
    settings: dict[str, list[Field]] = {}
    for f in form.fields:
        if f.kind:
            settings.setdefault(f.kind, []).append(f)
    return render_template("operator_form.html", form=form, fields=fields, settings=settings, facility=facility,
                           values=values, errors=errors, key=key, version=version, summary=summary), status


def _stored_values(form: Form, stored: dict[str, Any]) -> dict[str, Any]:
    """The stored object as the form's fields show it (lists as text, partitions as lines, the settings of
    the stored kind only, secrets never)."""
    values: dict[str, Any] = {}
    for f in _active(form, stored.get("kind")):
        value: Any = stored
        for step in f.path or (f.name,):
            value = value.get(step) if isinstance(value, dict) else None
        values[f.name] = shown(f, value)
    return values


def say(message: str) -> str:
    """A validation message in the console's one style: short, lower-case, no full stop."""
    text = str(message).strip().rstrip(".")
    text = text[:1].lower() + text[1:]
    if text in MESSAGES:
        return MESSAGES[text]
    if match := RANGE.match(text):
        return f"from {match[1]} to {match[2]}"
    return text


@blueprint.get("/operator/<facility_id>/<slug>/new")
def new_form(facility_id: str, slug: str) -> tuple[str, int]:
    form = FORMS.get(slug) or abort(404)
    facility = broker().operator.facility(require_viewer(), facility_id)
    return _render_form(form, facility, {"kind": request.args.get("kind", "")}, {}, None, None)


@blueprint.get("/operator/<facility_id>/<slug>/<key>/edit")
def edit_form(facility_id: str, slug: str, key: str) -> tuple[str, int]:
    form = FORMS.get(slug) or abort(404)
    person = require_viewer()
    facility = broker().operator.facility(person, facility_id)
    stored = broker().operator.editable(person, facility_id, form.kind, key)
    return _render_form(form, facility, _stored_values(form, stored), {}, key, stored["version"])


def _active(form: Form, kind: str | None) -> tuple[Field, ...]:
    """The form's own fields and the connector settings of ``kind`` (those of other kinds are not read)."""
    return tuple(f for f in form.fields if not f.kind or f.kind == kind)


def _chosen_kind(posted: Any, stored: dict[str, Any] | None) -> str | None:
    """The kind the form is for: the one chosen in it, else the stored one."""
    return (posted.get("kind") or "").strip() or (stored or {}).get("kind")


def _posted(f: Field, posted: Any, stored_config: dict[str, Any]) -> Any:
    """What a checkbox or a list of choices says; a setting's unchecked box is left out unless it was set."""
    if f.type == "choices":
        return [v for v in posted.getlist(f.name) if v in f.choices] or None
    if f.kind and not posted.get(f.name):
        return False if f.path[-1] in stored_config else None
    return bool(posted.get(f.name))


def _payload(form: Form, posted: Any, stored: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The form as a registry payload, and a message per field that could not be read."""
    payload: dict[str, Any] = {}
    errors: dict[str, str] = {}
    kind = _chosen_kind(posted, stored)
    fields = _active(form, kind)
    if stored is not None:
        for name in MERGED:
            if name in stored and any(f.path[:1] == (name,) for f in fields):
                payload[name] = dict(stored.get(name) or {})
        if stored.get("kind") != kind and "connector_config" in payload:
            payload["connector_config"] = {}  # another kind: the old kind's settings do not apply
    for f in fields:
        if stored is not None and f.create_only:
            continue
        raw = "" if f.type in ("checkbox", "choices") else (posted.get(f.name) or "").strip()
        value: Any = raw
        if f.type in ("checkbox", "choices"):
            value = _posted(f, posted, payload.get("connector_config") or {})
        elif raw == "":
            if f.required:
                errors[f.name] = "required"
                continue
            schema_field = form.kind.fields.get(f.name)
            if f.type == "password" or stored is None or (schema_field is not None and not schema_field.allow_none):
                continue  # left out: a default applies, the stored value stays, an empty password keeps the credential
            value = None
        else:
            try:
                value = parsed(f, raw)
            except ValueError as exc:
                errors[f.name] = str(exc)
                continue
        target = payload
        *parents, last = f.path or (f.name,)
        for step in parents:
            target = target.setdefault(step, {})
        if value is None and parents:
            target.pop(last, None)
        elif value is not None or not parents:
            target[last] = value
    return payload, errors


def _flatten(messages: Any, path: str = "") -> list[tuple[str, str]]:
    """marshmallow's nested error dict as (dotted field, message) pairs."""
    if isinstance(messages, dict):
        return [pair for key, inner in messages.items()
                for pair in _flatten(inner, f"{path}.{key}" if path and not isinstance(key, int) else (path or str(key)))]
    if isinstance(messages, list):
        return [pair for inner in messages for pair in _flatten(inner, path)]
    return [(path, str(messages))]


def _schema_errors(form: Form, payload: dict[str, Any], partial: bool, known: dict[str, str],
                   kind: str | None) -> dict[str, str]:
    """What the kind's schema, and the chosen connector's ``config_schema``, say of the payload before
    anything is written: with the form's own messages, every mistake shows in one round."""
    pairs = _flatten(form.kind.schema().validate(payload, partial=partial))
    connector = all_connectors().get(kind or "")
    kind_field = next((f for f in form.fields if f.name == "kind"), None)
    if connector is not None and kind_field is not None and kind in kind_field.choices \
            and isinstance(payload.get("connector_config"), dict):
        pairs += _flatten(connector.config_schema().validate(payload["connector_config"]), "connector_config")
    return _by_field(_active(form, kind), pairs, known)


def _by_field(fields: tuple[Field, ...], pairs: list[tuple[str, str]], known: dict[str, str]) -> dict[str, str]:
    """Messages by form field (``capabilities.max_cpus`` -> ``max_cpus``); those of fields the form does
    not show gathered under ``""`` for the summary. Fields that already have a message keep it."""
    names = {f.name for f in fields}
    by_path = {".".join(f.path): f.name for f in fields if f.path}
    out: dict[str, str] = {}
    for path, message in pairs:
        name = by_path.get(path) or next((n for p, n in by_path.items() if path.startswith(p + ".")), None) \
            or (path if path in names else path.split(".")[-1] if path.split(".")[-1] in names else None)
        if name is None:
            out[""] = f"{out.get('', '')} {path}: {say(message)}".strip()
        elif name not in known and name not in out:
            out[name] = say(message)
    return out


def _field_errors(form: Form, exc: BrokerError, kind: str | None) -> dict[str, str]:
    """The error list of a refused write by form field, in the console's style."""
    return _by_field(_active(form, kind), [(e.field, e.message) for e in exc.errors], {})


def _saved(facility_id: str, slug: str, key: str, verb: str) -> Response:
    return redirect(f"/operator/{facility_id}?{urlencode({'done': verb, 'what': slug, 'key': key})}#{slug}", 303)


@blueprint.post("/operator/<facility_id>/<slug>")
def create_object(facility_id: str, slug: str) -> Response | tuple[str, int]:
    form = FORMS.get(slug) or abort(404)
    person = require_viewer()
    facility = broker().operator.facility(person, facility_id)
    payload, errors = _payload(form, request.form, None)
    kind = _chosen_kind(request.form, None)
    if form.kind is not KINDS.eosc_entry:
        payload["facility_id"] = facility_id
    elif payload.get("service_id") not in broker().operator.service_ids(person, facility_id):
        errors["service_id"] = "choose one of this facility's services"
    errors.update(_schema_errors(form, payload, False, errors, kind))
    if not errors:
        try:
            created = broker().operator.create(person, facility_id, form.kind, payload)
            return _saved(facility_id, slug, str(created.get(form.kind.key, "")), "registered")
        except BrokerError as exc:
            return _render_form(form, facility, request.form, _field_errors(form, exc, kind), None, None,
                                exc.detail, exc.status)
    return _render_form(form, facility, request.form, errors, None, None, "Some fields need fixing.", 422)


@blueprint.post("/operator/<facility_id>/<slug>/<key>")
def update_object(facility_id: str, slug: str, key: str) -> Response | tuple[str, int]:
    form = FORMS.get(slug) or abort(404)
    person = require_viewer()
    facility = broker().operator.facility(person, facility_id)
    stored = broker().operator.editable(person, facility_id, form.kind, key)
    version = request.form.get("version", "")
    payload, errors = _payload(form, request.form, stored)
    kind = _chosen_kind(request.form, stored)
    if not version.isdigit():
        errors[""] = "the form lost its version: reload the page"
    errors.update(_schema_errors(form, payload, True, errors, kind))
    if not errors:
        try:
            broker().operator.update(person, facility_id, form.kind, key, payload, int(version))
            return _saved(facility_id, slug, key, "saved")
        except BrokerError as exc:
            summary = exc.detail
            if exc.status == 409:
                summary += " Someone changed it while you were editing: reload to see their version."
            return _render_form(form, facility, request.form, _field_errors(form, exc, kind), key, int(version),
                                summary, exc.status)
    return _render_form(form, facility, request.form, errors, key, int(version) if version.isdigit() else None,
                        "Some fields need fixing.", 422)


@blueprint.post("/operator/<facility_id>/<slug>/<key>/delete")
def delete_object(facility_id: str, slug: str, key: str) -> Response:
    form = FORMS.get(slug) or abort(404)
    version = request.form.get("version", "")
    broker().operator.delete(require_viewer(), facility_id, form.kind, key, int(version) if version.isdigit() else None)
    return _saved(facility_id, slug, key, "deleted")


__all__ = ["FORMS"]
