"""EOSC catalogue entries kept honest: status from the catalogue's bundle (read with the provider's token),
drift between the broker's record and the catalogue's, profiles checked against the catalogue's rules, and
pushes done as the catalogue works (validate the body that will be created, create, store the PID at once;
updates read, merge and write back with the record's version; the onboarding wait queues further services).

A catalogue that is down or answers garbage leaves the last known state in place; the error is recorded on
the entry and in its history. A read without status never changes the registration state.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import select, update

from broker.authz import Principal
from broker.eosc_profile import (  # noqa: F401 - re-exported for the catalogue view and the tests
    CATALOGUE_VERSIONS, LIFECYCLE, PAN_DOMAIN, REQUIRED, Profile, build_profile)
from panmodel.errors import Conflict, NotConfigured, NotFound
from broker.registry_kinds import KINDS, iso
from broker.registry_service import Precondition, RegistryService
from connectors.eosc import (CatalogueDenied, CatalogueRefused, EoscServiceRecord, EoscCatalogueClient,
                             NotInCatalogue, OnboardingPending, TokenSource)
from connectors.errors import UpstreamError
from panmodel.clock import utcnow
from panmodel.states import EoscStatus, Lifecycle
from registry.models import ComputeService, EoscEntry, EoscSyncEvent, Facility
from registry.store import Store

log = logging.getLogger(__name__)
SYNC_ACTOR = Principal("eosc-sync", admin=True)
ONBOARDING = {"approved resource": "approved", "pending resource": "pending", "rejected resource": "rejected",
              "approved": "approved", "pending": "pending", "rejected": "rejected"}


def registration_status(found: EoscServiceRecord) -> EoscStatus | None:
    """The broker's registration state from the catalogue's bundle; ``None`` when the read carries no status
    (a bare read), so that it never changes the stored state."""
    if not found.has_status:
        return None
    state = ONBOARDING.get((found.onboarding_status or "").lower())
    if found.suspended:
        return EoscStatus.SUSPENDED
    if state == "rejected":
        return EoscStatus.REJECTED
    if state == "approved":
        return EoscStatus.REGISTERED if found.active is not False else EoscStatus.INACTIVE
    if state == "pending" or found.draft:
        return EoscStatus.IN_PROGRESS
    return None  # a state this broker does not know: recorded on the entry, the registration state kept


def drift(service: ComputeService, entry: EoscEntry, found: EoscServiceRecord) -> list[dict[str, Any]]:
    """Fields where the broker's record and the catalogue's differ."""
    pairs = {"name": (service.title, found.name), "webpage": (entry.webpage or service.base_url, found.webpage),
             "lifeCycleStatus": (LIFECYCLE.get(Lifecycle(service.lifecycle)), found.lifecycle_status)}
    if service.description:
        pairs["description"] = (service.description, found.description)
    return [{"field": f, "broker": ours, "catalogue": theirs} for f, (ours, theirs) in pairs.items()
            if theirs is not None and _norm(ours) != _norm(theirs)]


def _norm(value: Any) -> str:
    return " ".join(str(value or "").split()).rstrip("/").lower()


class EoscService:
    def __init__(self, store: Store, registry: RegistryService, client: EoscCatalogueClient | None,
                 token: str | None = None, *, catalogue_version: str = "v5", token_url: str | None = None,
                 aai_client_id: str | None = None):
        self.store = store
        self.registry = registry
        self.client = client
        self.token = token  # one fixed token for every provider (its user must administer them all)
        self.configured_version = catalogue_version
        self.token_url = token_url
        self.aai_client_id = aai_client_id
        self._version: str | None = None if catalogue_version == "auto" else catalogue_version
        self._tokens: dict[str, tuple[str | None, TokenSource]] = {}
        self._lock = threading.Lock()

    def _client(self) -> EoscCatalogueClient:
        if self.client is None:
            raise NotConfigured("no EOSC catalogue is configured (set PANBROKER_EOSC_CATALOGUE_URL)")
        return self.client

    @property
    def catalogue_version(self) -> str:
        """``v5`` or ``v6``: the setting, or what the catalogue says of itself when the setting is ``auto``."""
        if self._version is None:
            if self.client is None:
                return "v5"
            try:
                self._version = self.client.detect_api()
            except UpstreamError as exc:
                log.warning("EOSC catalogue version not readable (%s); assuming v5 this time", exc.detail)
                return "v5"
        if self.client is not None:
            self.client.api = self._version
        return self._version

    # -- tokens ------------------------------------------------------------------------------------------

    def provider_token(self, facility_id: str) -> TokenSource | None:
        """The token source of the facility's provider administrator, or the fixed token, or ``None``."""
        with self.store.session() as session:
            facility = session.get(Facility, facility_id)
            encrypted = facility.eosc_credential_encrypted if facility else None
            client_id = facility.eosc_client_id if facility else None
        if encrypted is None:
            return TokenSource(self._client().http, "", static_token=self.token) if self.token else None
        with self._lock:
            cached = self._tokens.get(facility_id)
            if cached and cached[0] == encrypted:
                return cached[1]
            if not self.token_url:
                raise NotConfigured("facility credentials for EOSC need PANBROKER_EOSC_TOKEN_URL (the EOSC AAI "
                                    "token endpoint)")
            secret = self.registry.box.decrypt(encrypted)
            if client_id:  # a confidential client of the provider's own: client credentials
                source = TokenSource(self._client().http, self.token_url, client_id=client_id, client_secret=secret)
            else:  # an administrator's refresh token, issued to the broker's AAI client
                source = TokenSource(self._client().http, self.token_url, refresh_token=secret,
                                     client_id=self.aai_client_id or None,
                                     on_rotate=lambda new: self._store_rotated(facility_id, new))
            self._tokens[facility_id] = (encrypted, source)
            return source

    def _store_rotated(self, facility_id: str, refresh_token: str) -> None:
        encrypted = self.registry.box.encrypt(refresh_token)
        with self.store.session() as session:  # a rotation is not an operator's change: no version, no audit
            session.execute(update(Facility).where(Facility.id == facility_id).values(
                eosc_credential_encrypted=encrypted).execution_options(synchronize_session=False))
        with self._lock:
            cached = self._tokens.get(facility_id)
            if cached:
                self._tokens[facility_id] = (encrypted, cached[1])

    # -- status sync -------------------------------------------------------------------------------------

    def sync_all(self) -> list[dict[str, Any]]:
        with self.store.session() as session:
            ids = session.scalars(select(EoscEntry.service_id).where(EoscEntry.resource_id.is_not(None))
                                  .order_by(EoscEntry.service_id)).all()
        events = [self.sync(service_id) for service_id in ids]
        self.push_queued()
        return events

    def sync_as(self, actor: Principal, service_id: str) -> dict[str, Any]:
        """``sync``, for a caller who must be allowed to write the service's facility."""
        with self.store.session() as session:
            entry = session.get(EoscEntry, service_id)
            if entry is None:
                raise NotFound(f"no EOSC entry for service {service_id!r}")
            actor.require_write(entry.service.facility_id)
        return self.sync(service_id)

    def sync(self, service_id: str) -> dict[str, Any]:
        """Refresh one entry from the catalogue; returns the sync event."""
        client = self._client()
        with self.store.session() as session:
            entry = session.get(EoscEntry, service_id)
            if entry is None:
                raise NotFound(f"no EOSC entry for service {service_id!r}")
            if not entry.resource_id:
                raise Conflict(f"the EOSC entry of {service_id!r} has no resource_id to look up")
            resource_id, facility_id = entry.resource_id, entry.service.facility_id
            provider_id = entry.service.facility.eosc_provider_id
        self.catalogue_version  # noqa: B018 - settles the API shape (auto) before the read
        try:
            token = self.provider_token(facility_id)
            found = client.bundle(resource_id, token, provider_id) if token else client.service(resource_id)
        except NotInCatalogue as exc:
            return self._record_failure(service_id, "not-found", exc.detail)
        except (UpstreamError, NotConfigured) as exc:
            return self._record_failure(service_id, "error", exc.detail)
        with self.store.session() as session:
            entry = session.get(EoscEntry, service_id)
            differences = drift(entry.service, entry, found)
            values: dict[str, Any] = {"last_synced_at": utcnow(), "catalogue_name": found.name,
                                      "catalogue_url": found.webpage, "catalogue_lifecycle": found.lifecycle_status,
                                      "drift": differences, "catalogue_version": found.version,
                                      "last_sync_error": None if token else
                                      "read without a provider token: the catalogue's status is not known"}
            if found.has_status:  # a bare read says nothing of the status: keep what is known
                values |= {"onboarding_status": found.onboarding_status, "catalogue_active": found.active,
                           "catalogue_suspended": found.suspended, "catalogue_draft": found.draft,
                           "audit_state": found.audit_state}
            session.execute(update(EoscEntry).where(EoscEntry.service_id == service_id).values(**values)
                            .execution_options(synchronize_session=False))
            event = EoscSyncEvent(service_id=service_id, outcome="ok", onboarding_status=found.onboarding_status,
                                  drift=differences)
            session.add(event)
            session.flush()
            shown = self._show_event(event)
            current_status, version = entry.status, entry.version
        status = registration_status(found)
        if status is not None and status.value != current_status:  # a real change: versioned and audited
            self.registry.update(SYNC_ACTOR, KINDS.eosc_entry, service_id, {"status": status.value},
                                 Precondition(version, from_header=True), partial=True)
        return shown

    def _record_failure(self, service_id: str, outcome: str, error: str) -> dict[str, Any]:
        log.warning("EOSC sync of %s: %s", service_id, error)
        with self.store.session() as session:
            session.execute(update(EoscEntry).where(EoscEntry.service_id == service_id)
                            .values(last_sync_error=error).execution_options(synchronize_session=False))
            event = EoscSyncEvent(service_id=service_id, outcome=outcome, error=error, drift=[])
            session.add(event)
            session.flush()
            return self._show_event(event)

    def history(self, service_id: str, limit: int = 50) -> list[dict[str, Any]]:
        with self.store.session() as session:
            if session.get(EoscEntry, service_id) is None:
                raise NotFound(f"no EOSC entry for service {service_id!r}")
            rows = session.scalars(select(EoscSyncEvent).where(EoscSyncEvent.service_id == service_id)
                                   .order_by(EoscSyncEvent.id.desc()).limit(limit)).all()
            return [self._show_event(e) for e in rows]

    @staticmethod
    def _show_event(event: EoscSyncEvent) -> dict[str, Any]:
        return {"service_id": event.service_id, "at": iso(event.at), "outcome": event.outcome,
                "onboarding_status": event.onboarding_status, "drift": event.drift, "error": event.error}

    # -- profiles and completeness -----------------------------------------------------------------------

    def profile(self, service_id: str, catalogue_version: str | None = None) -> Profile:
        with self.store.session() as session:
            service = session.get(ComputeService, service_id)
            if service is None:
                raise NotFound(f"no service {service_id!r}")
            return self._build(service, catalogue_version)

    def _build(self, service: ComputeService, catalogue_version: str | None = None) -> Profile:
        return build_profile(service, service.facility, service.eosc_entry,
                             catalogue_version=catalogue_version or self.catalogue_version,
                             catalogue_id=self.client.catalogue_id if self.client else "eosc")

    def profiles(self, facility_id: str) -> list[tuple[str, Profile]]:
        with self.store.session() as session:
            facility = session.get(Facility, facility_id)
            if facility is None:
                raise NotFound(f"no facility {facility_id!r}")
            return [(s.id, self._build(s)) for s in sorted(facility.services, key=lambda s: s.id)]

    def completeness(self, facility_id: str | None = None) -> dict[str, Any]:
        """Per service: complete or not, and each missing or invalid field with its rule and where to fill it."""
        version = self.catalogue_version
        with self.store.session() as session:
            query = select(ComputeService).order_by(ComputeService.facility_id, ComputeService.id)
            if facility_id is not None:
                if session.get(Facility, facility_id) is None:
                    raise NotFound(f"no facility {facility_id!r}")
                query = query.where(ComputeService.facility_id == facility_id)
            items = []
            for service in session.scalars(query):
                profile = self._build(service, version)
                items.append({"service_id": service.id, "facility_id": service.facility_id,
                              "complete": profile.valid, "missing": profile.missing, "invalid": profile.invalid,
                              "findings": [f.show() for f in profile.findings]})
        return {"catalogue_version": version, "complete": sum(i["complete"] for i in items), "total": len(items),
                "items": items}

    # -- push --------------------------------------------------------------------------------------------

    def push(self, actor: Principal, service_id: str, *, dry_run: bool = False) -> dict[str, Any]:
        """Validate at the catalogue the body that will be sent, then create it (the PID is stored at once)
        or update it (read, merge, write back with its version). A dry run stops after the verdict."""
        with self.store.session() as session:
            service = session.get(ComputeService, service_id)
            if service is None:
                raise NotFound(f"no service {service_id!r}")
            actor.require_write(service.facility_id)
            facility_id = service.facility_id
            resource_id = service.eosc_entry.resource_id if service.eosc_entry else None
        profile = self.profile(service_id)
        if not profile.valid and not dry_run:
            raise Conflict("the profile is not complete: " + "; ".join(profile.missing + profile.invalid))
        client = self._client()
        token = self.provider_token(facility_id)
        if token is None:
            if dry_run:
                return {"dry_run": True, "body": profile.profile, "local": [f.show() for f in profile.findings],
                        "catalogue": {"asked": False, "valid": None,
                                      "message": "no EOSC credential for this facility's provider"}}
            raise NotConfigured(f"pushing needs the EOSC credential of facility {facility_id!r}'s provider "
                                "(eosc_credential) or PANBROKER_EOSC_TOKEN")
        body = self._merged(client, resource_id, profile.profile, token) if resource_id else dict(profile.profile)
        body.setdefault("id", f"{(profile.profile.get('resourceOrganisation') or profile.profile.get('resourceOwner') or 'new')}"
                              f".{service_id}")  # validate wants an id; create replaces it with the PID it makes
        try:
            client.validate(body, token)
            verdict = {"asked": True, "valid": True, "message": None}
        except CatalogueRefused as exc:
            verdict = {"asked": True, "valid": False, "message": exc.detail}
        if dry_run:
            return {"dry_run": True, "body": body, "local": [f.show() for f in profile.findings],
                    "catalogue": verdict}
        if not verdict["valid"]:
            self._note_push_error(service_id, verdict["message"])
            raise Conflict(f"the catalogue's validator refused the profile: {verdict['message']}")
        if resource_id:
            found = client.update(body, token)
            self._after_write(actor, service_id, {"catalogue_version": found.version, "last_push_error": None})
            return {"outcome": "updated", "id": found.id, "version": found.version}
        return self._create(actor, service_id, body, token)

    def _merged(self, client: EoscCatalogueClient, resource_id: str, ours: dict[str, Any],
                token: TokenSource) -> dict[str, Any]:
        """The catalogue's current record with the broker's fields over it: what was edited there and is not
        the broker's stays, and its ``version`` goes back unchanged."""
        current = client.service(resource_id, token).raw
        merged = {**current, **ours, "id": current.get("id", resource_id)}
        if "version" in current:
            merged["version"] = current["version"]
        return merged

    def _create(self, actor: Principal, service_id: str, body: dict[str, Any], token: TokenSource) -> dict[str, Any]:
        try:
            created = self._client().create(body, token)
        except (OnboardingPending, CatalogueDenied) as exc:
            template = self._pending_template(service_id)
            if not isinstance(exc, OnboardingPending) and template is None:
                raise  # refused for another reason than the onboarding wait
            reason = (f"waiting for the EOSC onboarding team to review the provider's first service "
                      f"({template or 'its template'}); the catalogue answered: {exc.detail}")
            self._after_write(actor, service_id, {"status": EoscStatus.QUEUED.value, "last_push_error": reason})
            return {"outcome": "queued", "id": None, "reason": reason}
        # the PID first, in its own write, so that a later failure cannot lead to a second create
        self._after_write(actor, service_id, {"resource_id": created.id, "status": EoscStatus.IN_PROGRESS.value,
                                              "last_push_error": None})
        event = self.sync(service_id)
        with self.store.session() as session:
            status = session.get(EoscEntry, service_id).status
        return {"outcome": "created", "id": created.id, "status": status, "sync": event}

    def _pending_template(self, service_id: str) -> str | None:
        """Another service of the same facility created and still in review (the provider's template), if any."""
        with self.store.session() as session:
            facility_id = session.get(ComputeService, service_id).facility_id
            return session.scalars(select(EoscEntry.service_id).join(ComputeService).where(
                ComputeService.facility_id == facility_id, EoscEntry.service_id != service_id,
                EoscEntry.resource_id.is_not(None), EoscEntry.status == EoscStatus.IN_PROGRESS.value)).first()

    def push_queued(self) -> list[dict[str, Any]]:
        """Retry the services queued behind their provider's first one, now that it may have been reviewed."""
        with self.store.session() as session:
            ids = session.scalars(select(EoscEntry.service_id).where(EoscEntry.status == EoscStatus.QUEUED.value)
                                  .order_by(EoscEntry.service_id)).all()
        results = []
        for service_id in ids:
            try:
                results.append({"service_id": service_id, **self.push(SYNC_ACTOR, service_id)})
            except (Conflict, NotConfigured, UpstreamError) as exc:
                self._note_push_error(service_id, exc.detail)
                results.append({"service_id": service_id, "outcome": "error", "error": exc.detail})
        return results

    def _after_write(self, actor: Principal, service_id: str, values: dict[str, Any]) -> None:
        columns = {k: values.pop(k) for k in ("catalogue_version", "last_push_error") if k in values}
        with self.store.session() as session:
            entry = session.get(EoscEntry, service_id)
            version = entry.version if entry else None
            if columns and entry is not None:
                session.execute(update(EoscEntry).where(EoscEntry.service_id == service_id).values(**columns)
                                .execution_options(synchronize_session=False))
        if not values:
            return
        if version is None:
            self.registry.create(SYNC_ACTOR, KINDS.eosc_entry, {"service_id": service_id, **values})
            if columns:
                self._after_write(actor, service_id, columns)
        else:
            self.registry.update(SYNC_ACTOR, KINDS.eosc_entry, service_id, values,
                                 Precondition(version, from_header=True), partial=True)

    def _note_push_error(self, service_id: str, error: str) -> None:
        with self.store.session() as session:
            session.execute(update(EoscEntry).where(EoscEntry.service_id == service_id)
                            .values(last_push_error=error).execution_options(synchronize_session=False))
