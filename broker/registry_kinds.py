"""What differs between the registry's object kinds: their schema, how they name their facility,
the references they must satisfy, how they are shown. ``broker.registry_service`` does the rest
once for all of them."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime
from typing import Any, Callable, ClassVar

from marshmallow import Schema, ValidationError
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.interfaces import LoaderOption

from panmodel.errors import FieldError, InvalidInput
from connectors import all_connectors, connector_for
from panmodel.clock import as_utc
from panmodel.states import EoscStatus, TargetType
from registry.models import ComputeService, EoscEntry, Facility, SearchEndpoint
from registry.schemas import (
    ComputeServiceSchema,
    EoscEntrySchema,
    FacilitySchema,
    SearchEndpointSchema,
    flatten,
    literal_ip_refused,
)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with the UTC offset; SQLite hands back naive datetimes, which are UTC here."""
    if value is None:
        return None
    return as_utc(value).isoformat()


def load(schema: type[Schema], payload: Any, *, prefix: str = "") -> dict[str, Any]:
    """``payload`` validated by ``schema``, or ``InvalidInput`` naming every bad field."""
    if not isinstance(payload, dict):
        raise InvalidInput.from_fields([FieldError(prefix or "(body)", "must be a JSON object")])
    try:
        return schema().load(payload)
    except ValidationError as exc:
        pairs = flatten(exc.messages, prefix)
        raise InvalidInput.from_fields([FieldError(f, m) for f, m in pairs]) from exc


class Kind:
    """One kind of registry object."""

    name: ClassVar[str]  # singular, as in audit events and messages
    model: ClassVar[type]
    schema: ClassVar[type[Schema]]
    key: ClassVar[str] = "id"
    #: query parameter -> column clause builder, for list filters
    filters: ClassVar[dict[str, Callable[[str], ColumnElement]]] = {}
    #: relationships ``show`` reads, loaded with the list rather than one query per row
    eager: ClassVar[tuple[LoaderOption, ...]] = ()
    #: a write-only secret field: stored encrypted in ``<secret>_encrypted``, never shown (``has_<secret>`` is)
    secret: ClassVar[str | None] = None

    @cached_property
    def fields(self) -> dict[str, Any]:
        """The schema's fields by name (building a marshmallow schema is costly: done once)."""
        return dict(self.schema().fields)

    @cached_property
    def exported_fields(self) -> tuple[str, ...]:
        return tuple(name for name, f in self.fields.items() if not f.load_only)

    def facility_id(self, session: Session, values: dict[str, Any]) -> str | None:
        return values.get("facility_id")

    def check(self, session: Session, values: dict[str, Any], url_allowed: Callable[[str], bool]) -> None:
        """Rules that need the store or the connectors; raise ``InvalidInput``."""

    def new_key(self, session: Session, values: dict[str, Any]) -> str:
        return values[self.key]

    def export(self, obj: Any) -> dict[str, Any]:
        """The object as an operator would send it (no secrets, no server-managed fields)."""
        return {name: getattr(obj, name) for name in self.exported_fields}

    def show(self, obj: Any) -> dict[str, Any]:
        """The object as the API returns it."""
        shown = {**self.export(obj), "version": obj.version, "created_at": iso(obj.created_at),
                 "updated_at": iso(obj.updated_at)}
        if self.secret:
            shown[f"has_{self.secret}"] = getattr(obj, f"{self.secret}_encrypted") is not None
        return shown

    def apply(self, obj: Any, values: dict[str, Any], box: Any) -> list[str]:
        """Copy ``values`` onto ``obj``; return the names of the fields that changed."""
        values, changed = dict(values), []
        secret_sent = self.secret is not None and self.secret in values
        secret = values.pop(self.secret) if secret_sent else None
        for name, value in values.items():
            if not _same(getattr(obj, name), value):
                setattr(obj, name, value)
                changed.append(name)
        if secret_sent:  # written each time it is sent: it cannot be compared with what is stored
            setattr(obj, f"{self.secret}_encrypted", box.encrypt(secret) if secret is not None else None)
            changed.append(self.secret)
        return changed


def _same(stored: Any, new: Any) -> bool:
    """Equality, with naive datetimes (SQLite's) read as UTC."""
    if isinstance(stored, datetime) and isinstance(new, datetime):
        return as_utc(stored) == as_utc(new)
    return stored == new


def _require_facility(session: Session, facility_id: str) -> None:
    if session.get(Facility, facility_id) is None:
        raise InvalidInput.from_fields([FieldError("facility_id", f"no facility {facility_id!r} is registered")])


def _check_connector(target: TargetType, values: dict[str, Any]) -> None:
    kind = values["kind"]
    connector = all_connectors().get(kind)
    if connector is None or connector.target != target:
        choices = ", ".join(sorted(k for k, c in all_connectors().items() if c.target == target))
        raise InvalidInput.from_fields([FieldError("kind", f"must be one of: {choices}")])
    values["connector_config"] = load(connector.config_schema, values.get("connector_config") or {},
                                      prefix="connector_config")


def _check_urls(values: dict[str, Any], url_allowed: Callable[[str], bool]) -> None:
    candidates = {"base_url": values.get("base_url"),
                  "connector_config.health_url": (values.get("connector_config") or {}).get("health_url")}
    refused = [FieldError(f, "an IP address the SSRF policy refuses (private, loopback or reserved)")
               for f, url in candidates.items() if literal_ip_refused(url, url_allowed)]
    if refused:
        raise InvalidInput.from_fields(refused)


def _health(obj: Any) -> dict[str, Any]:
    return {"status": obj.health_status, "latency_ms": obj.health_latency_ms,
            "checked_at": iso(obj.health_checked_at), "error": obj.health_error}


def _unique_slug(session: Session, model: type, base: str) -> str:
    stem = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")[:58] or "item"
    candidate, n = stem, 2
    while session.get(model, candidate) is not None:
        candidate, n = f"{stem}-{n}", n + 1
    return candidate


class Facilities(Kind):
    name = "facility"
    model = Facility
    schema = FacilitySchema
    filters = {"country": lambda v: Facility.country == v.upper()}
    secret = "eosc_credential"  # the EOSC AAI credential

    def facility_id(self, session: Session, values: dict[str, Any]) -> str | None:
        return values.get("id")


class _Connected(Kind):
    """A kind served by a connector: it belongs to a facility, names a connector kind of its ``target`` and
    is reached at URLs the SSRF policy must allow."""

    target: ClassVar[TargetType]

    def check(self, session, values, url_allowed):  # noqa: ANN001, ANN201 - see Kind.check
        _require_facility(session, values["facility_id"])
        _check_connector(self.target, values)
        _check_urls(values, url_allowed)

    def new_key(self, session, values):  # noqa: ANN001, ANN201
        return values.get("id") or _unique_slug(session, self.model, f"{values['facility_id']}-{values['kind']}")


class ComputeServices(_Connected):
    name = "service"
    model = ComputeService
    schema = ComputeServiceSchema
    eager = (joinedload(ComputeService.eosc_entry),)
    target = TargetType.SERVICE
    secret = "credential"  # the service's API token
    filters = {
        "facility": lambda v: ComputeService.facility_id == v,
        "kind": lambda v: ComputeService.kind == v,
        "status": lambda v: ComputeService.health_status == v,
        "lifecycle": lambda v: ComputeService.lifecycle == v,
        "eosc_status": lambda v: func.coalesce(
            select(EoscEntry.status).where(EoscEntry.service_id == ComputeService.id).scalar_subquery(),
            EoscStatus.NOT_REGISTERED.value,
        ) == v,
    }

    def show(self, obj: ComputeService) -> dict[str, Any]:
        entry = obj.eosc_entry
        return {**super().show(obj), "health": _health(obj),
                "eosc": {"status": entry.status, "resource_id": entry.resource_id,
                         "marketplace_url": entry.marketplace_url} if entry else
                        {"status": EoscStatus.NOT_REGISTERED.value, "resource_id": None, "marketplace_url": None}}


class SearchEndpoints(_Connected):
    name = "search-endpoint"
    model = SearchEndpoint
    schema = SearchEndpointSchema
    filters = {
        "facility": lambda v: SearchEndpoint.facility_id == v,
        "kind": lambda v: SearchEndpoint.kind == v,
        "status": lambda v: SearchEndpoint.health_status == v,
    }
    target = TargetType.SEARCH_ENDPOINT

    def show(self, obj: SearchEndpoint) -> dict[str, Any]:
        return {**super().show(obj), "health": _health(obj)}


class EoscEntries(Kind):
    name = "eosc-entry"
    model = EoscEntry
    schema = EoscEntrySchema
    key = "service_id"
    filters = {
        "facility": lambda v: EoscEntry.service_id.in_(
            select(ComputeService.id).where(ComputeService.facility_id == v)),
        "status": lambda v: EoscEntry.status == v,
    }

    def facility_id(self, session, values):  # noqa: ANN001, ANN201
        service = session.get(ComputeService, values.get("service_id"))
        return service.facility_id if service else None

    def check(self, session, values, url_allowed):  # noqa: ANN001, ANN201
        if session.get(ComputeService, values["service_id"]) is None:
            raise InvalidInput.from_fields(
                [FieldError("service_id", f"no service {values['service_id']!r} is registered")])

    def export(self, obj: EoscEntry) -> dict[str, Any]:
        data = super().export(obj)
        data["last_synced_at"] = iso(obj.last_synced_at)
        return data

    def show(self, obj: EoscEntry) -> dict[str, Any]:
        return {**super().show(obj), "catalogue": {
            "onboarding_status": obj.onboarding_status, "name": obj.catalogue_name, "url": obj.catalogue_url,
            "lifecycle": obj.catalogue_lifecycle, "drift": obj.drift, "last_sync_error": obj.last_sync_error,
            "active": obj.catalogue_active, "suspended": obj.catalogue_suspended, "draft": obj.catalogue_draft,
            "audit_state": obj.audit_state, "version": obj.catalogue_version,
            "last_push_error": obj.last_push_error}}


@dataclass(frozen=True)
class Kinds:
    facility: Kind = Facilities()
    service: Kind = ComputeServices()
    search_endpoint: Kind = SearchEndpoints()
    eosc_entry: Kind = EoscEntries()


KINDS = Kinds()
__all__ = ["KINDS", "Kind", "load", "iso", "connector_for"]
