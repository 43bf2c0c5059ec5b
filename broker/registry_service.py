"""Registry operations: list, read, create, update and delete every kind of registry object, with
permission checks, optimistic concurrency and an audit event for every write.

Knows nothing about HTTP: the API, the CLI and the seed import all call it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from broker.authz import Principal
from panmodel.errors import (
    AlreadyExists,
    Conflict,
    FieldError,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    StaleVersion,
)
from broker.registry_kinds import KINDS, Kind, iso, load
from broker.secretbox import SecretBox
from registry.models import AuditEvent, ComputeService, Facility, SearchEndpoint
from registry.store import Store


MAX_OFFSET = 1_000_000


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class Precondition:
    """The version the writer last saw: from ``If-Match`` (412 when stale) or the body (409)."""

    version: int
    from_header: bool


class RegistryService:
    def __init__(self, store: Store, box: SecretBox, url_allowed: Callable[[str], bool], page_size_max: int = 500):
        self.store = store
        self.box = box
        self.url_allowed = url_allowed
        self.page_size_max = page_size_max

    # -- reads ---------------------------------------------------------------------------------
    def list(self, kind: Kind, filters: dict[str, str] | None = None, limit: int = 50, offset: int = 0) -> Page:
        if not 1 <= limit <= self.page_size_max:
            raise InvalidInput.from_fields([FieldError("limit", f"must be between 1 and {self.page_size_max}")])
        if not 0 <= offset <= MAX_OFFSET:
            raise InvalidInput.from_fields([FieldError("offset", f"must be between 0 and {MAX_OFFSET}")])
        clauses = []
        for name, value in (filters or {}).items():
            if value is None:
                continue
            if name not in kind.filters:
                raise InvalidInput.from_fields([FieldError(name, f"unknown filter; use one of {sorted(kind.filters)}")])
            clauses.append(kind.filters[name](value))
        with self.store.session() as session:
            # one query: the page, its related rows joined, and the count over all matches as a window
            rows = session.execute(
                select(kind.model, func.count().over()).where(*clauses).options(*kind.eager)
                .order_by(getattr(kind.model, kind.key)).limit(limit).offset(offset)
            ).unique().all()
            if rows:
                total = rows[0][1]
            else:  # a page past the end has no row to carry the count
                total = session.scalar(select(func.count()).select_from(kind.model).where(*clauses))
            return Page([kind.show(row[0]) for row in rows], total, limit, offset)

    def get(self, kind: Kind, key: str) -> dict[str, Any]:
        with self.store.session() as session:
            return kind.show(self._fetch(session, kind, key))

    def facility_names(self) -> dict[str, str]:
        """Every registered facility's name, by id (public: pages name facilities by it)."""
        with self.store.session() as session:
            return dict(session.execute(select(Facility.id, Facility.name).order_by(Facility.id)).all())

    def owner(self, kind: Kind, key: str) -> str | None:
        """The facility the object belongs to (its operators may change it); None for none."""
        with self.store.session() as session:
            return kind.facility_id(session, kind.export(self._fetch(session, kind, key)))

    # -- writes --------------------------------------------------------------------------------
    def create(self, actor: Principal, kind: Kind, payload: Any) -> dict[str, Any]:
        values = load(kind.schema, payload)
        with self.store.session() as session:
            actor.require_write(kind.facility_id(session, values))
            kind.check(session, values, self.url_allowed)
            key = kind.new_key(session, values)
            if session.get(kind.model, key) is not None:
                raise AlreadyExists(f"a {kind.name} {key!r} already exists",
                                    errors=[FieldError(kind.key, "already taken")])
            obj = kind.model(**{kind.key: key})
            kind.apply(obj, {k: v for k, v in values.items() if k != kind.key}, self.box)
            session.add(obj)
            self._flush(session, kind, key)
            self._audit(session, actor, "create", kind, key, None, kind.export(obj), sorted(values))
            return kind.show(obj)

    def update(
        self,
        actor: Principal,
        kind: Kind,
        key: str,
        payload: Any,
        precondition: Precondition | None,
        *,
        partial: bool,
    ) -> dict[str, Any]:
        """Replace (``partial=False``) or patch the object; refused unless ``precondition`` names the
        stored version. The whole result is validated, so a patch cannot leave an invalid object."""
        if not isinstance(payload, dict):
            raise InvalidInput.from_fields([FieldError("(body)", "must be a JSON object")])
        payload = dict(payload)
        body_version = payload.pop("version", None)
        if precondition is None and body_version is not None:
            if not isinstance(body_version, int) or isinstance(body_version, bool):
                raise InvalidInput.from_fields([FieldError("version", "must be an integer")])
            precondition = Precondition(body_version, from_header=False)
        if payload.get(kind.key, key) != key:
            raise InvalidInput.from_fields([FieldError(kind.key, "cannot be changed; it is the object's id")])
        with self.store.session() as session:
            obj = self._fetch(session, kind, key)
            before = kind.export(obj)
            actor.require_write(kind.facility_id(session, before))
            self._check_version(kind, key, obj.version, precondition)
            candidate = {**before, **payload} if partial else {**payload, kind.key: key}
            values = load(kind.schema, {k: v for k, v in candidate.items() if v is not None or k in payload})
            if not partial:
                # a replacement clears optional fields it leaves out, but keeps the stored credential
                for name, field in kind.fields.items():
                    if name not in values and field.allow_none and not field.load_only:
                        values[name] = None
            actor.require_write(kind.facility_id(session, values))
            kind.check(session, values, self.url_allowed)
            values.pop(kind.key, None)
            changed = kind.apply(obj, values, self.box)
            if not changed:
                return kind.show(obj)
            self._flush(session, kind, key)
            self._audit(session, actor, "update", kind, key, before, kind.export(obj), changed)
            return kind.show(obj)

    def delete(self, actor: Principal, kind: Kind, key: str, precondition: Precondition | None) -> None:
        with self.store.session() as session:
            obj = self._fetch(session, kind, key)
            before = kind.export(obj)
            actor.require_write(kind.facility_id(session, before))
            self._check_version(kind, key, obj.version, precondition)
            self._refuse_if_referenced(session, kind, key)
            if kind is KINDS.service and obj.eosc_entry is not None:
                entry = obj.eosc_entry
                self._audit(session, actor, "delete", KINDS.eosc_entry, key, KINDS.eosc_entry.export(entry), None, [])
                session.delete(entry)
            session.delete(obj)
            self._flush(session, kind, key)
            self._audit(session, actor, "delete", kind, key, before, None, [])

    def audit_log_as(self, actor: Principal, object_type: str | None = None, object_id: str | None = None,
                     limit: int = 50, offset: int = 0, *, facility_id: str | None = None) -> Page:
        """The audit log as ``actor`` may read it: the whole log for admins, one facility's changes for
        its operators."""
        actor.require_write(facility_id)
        return self.audit_log(object_type, object_id, limit, offset, facility_id=facility_id)

    def audit_log(self, object_type: str | None = None, object_id: str | None = None,
                  limit: int = 50, offset: int = 0, *, facility_id: str | None = None) -> Page:
        """Newest first; ``facility_id`` keeps one facility's changes, deletions included (objects that
        named it before or after the change, and the EOSC entries of its services)."""
        clauses = []
        if object_type:
            clauses.append(AuditEvent.object_type == object_type)
        if object_id:
            clauses.append(AuditEvent.object_id == object_id)
        if facility_id:
            services = select(ComputeService.id).where(ComputeService.facility_id == facility_id)
            clauses.append(or_(
                and_(AuditEvent.object_type == KINDS.facility.name, AuditEvent.object_id == facility_id),
                AuditEvent.before["facility_id"].as_string() == facility_id,
                AuditEvent.after["facility_id"].as_string() == facility_id,
                and_(AuditEvent.object_type == KINDS.eosc_entry.name, AuditEvent.object_id.in_(services))))
        with self.store.session() as session:
            total = session.scalar(select(func.count()).select_from(AuditEvent).where(*clauses))
            rows = session.scalars(select(AuditEvent).where(*clauses).order_by(AuditEvent.id.desc())
                                   .limit(limit).offset(offset)).all()
            items = [{"id": e.id, "at": iso(e.at), "actor": e.actor, "action": e.action,
                      "object_type": e.object_type, "object_id": e.object_id, "changed": e.changed,
                      "before": e.before, "after": e.after} for e in rows]
            return Page(items, total, limit, offset)

    def credential(self, service_id: str) -> str | None:
        """The decrypted API credential of a service, for connectors only; never shown."""
        with self.store.session() as session:
            service = session.get(ComputeService, service_id)
            if service is None or service.credential_encrypted is None:
                return None
            return self.box.decrypt(service.credential_encrypted)

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _fetch(session: Session, kind: Kind, key: str) -> Any:
        obj = session.get(kind.model, key)
        if obj is None:
            raise NotFound(f"no {kind.name} {key!r}")
        return obj

    @staticmethod
    def _check_version(kind: Kind, key: str, stored: int, precondition: Precondition | None) -> None:
        if precondition is None:
            raise PreconditionRequired(
                f"send If-Match: \"{stored}\" (the version you last read) or a version field, "
                "so a concurrent change is not overwritten")
        if precondition.version != stored:
            message = (f"{kind.name} {key!r} is at version {stored}, you sent {precondition.version}; "
                       "read it again and re-apply your change")
            error = PreconditionFailed if precondition.from_header else StaleVersion
            raise error(message, errors=[FieldError("version", f"stale; current is {stored}")])

    @staticmethod
    def _refuse_if_referenced(session: Session, kind: Kind, key: str) -> None:
        if kind is not KINDS.facility:
            return
        services = session.scalar(select(func.count()).where(ComputeService.facility_id == key))
        endpoints = session.scalar(select(func.count()).where(SearchEndpoint.facility_id == key))
        if services or endpoints:
            raise Conflict(f"facility {key!r} still has {services} service(s) and {endpoints} search "
                           "endpoint(s); delete or move them first")

    @staticmethod
    def _flush(session: Session, kind: Kind, key: str) -> None:
        try:
            session.flush()
        except StaleDataError as exc:
            raise StaleVersion(f"{kind.name} {key!r} was changed by someone else meanwhile; read it again") from exc
        except IntegrityError as exc:
            raise AlreadyExists(f"a {kind.name} {key!r} already exists or is still referenced") from exc

    @staticmethod
    def _audit(session: Session, actor: Principal, action: str, kind: Kind, key: str,
               before: dict | None, after: dict | None, changed: list[str]) -> None:
        session.add(AuditEvent(actor=actor.subject, action=action, object_type=kind.name, object_id=key,
                               before=_jsonable(before), after=_jsonable(after), changed=changed))


def _jsonable(data: dict | None) -> dict | None:
    if data is None:
        return None
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in data.items()}


__all__ = ["RegistryService", "Page", "Precondition", "Facility"]


def deleted_search_endpoints(session: Session) -> set[str]:
    """Ids of search endpoints the registry deleted (and that are not registered again)."""
    deleted = set(session.scalars(select(AuditEvent.object_id).where(
        AuditEvent.object_type == KINDS.search_endpoint.name, AuditEvent.action == "delete")))
    return deleted - set(session.scalars(select(SearchEndpoint.id))) if deleted else set()
