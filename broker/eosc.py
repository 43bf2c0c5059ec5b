"""EOSC catalogue entries kept honest: sync each entry's status with the catalogue, record drift between
the broker's service record and the catalogue's, export (and optionally push) EOSC service profiles.

A catalogue that is down or answers garbage leaves the last known state in place; the error is
recorded on the entry and in its history.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from broker.authz import Principal
from broker.errors import Conflict, NotConfigured, NotFound
from broker.registry_kinds import KINDS, iso
from broker.registry_service import Precondition, RegistryService
from connectors.eosc import CatalogueService, EoscCatalogueClient, NotInCatalogue
from connectors.errors import UpstreamError
from registry.models import ComputeService, EoscEntry, EoscStatus, EoscSyncEvent, Facility, Lifecycle, utcnow
from registry.store import Store

log = logging.getLogger(__name__)
SYNC_ACTOR = Principal("eosc-sync", admin=True)

LIFECYCLE = {Lifecycle.PRODUCTION: "life_cycle_status-production", Lifecycle.PILOT: "life_cycle_status-beta",
             Lifecycle.PROTOTYPE: "life_cycle_status-alpha", Lifecycle.PLANNED: "life_cycle_status-planned"}
TRL = {Lifecycle.PRODUCTION: "trl-9", Lifecycle.PILOT: "trl-7", Lifecycle.PROTOTYPE: "trl-6",
       Lifecycle.PLANNED: "trl-4"}
PAN_DOMAIN = {"scientificDomain": "scientific_domain-natural_sciences",
              "scientificSubdomain": "scientific_subdomain-natural_sciences-physical_sciences"}
ANALYSIS = {"category": "category-processing_and_analysis-data_analysis",
            "subcategory": "subcategory-processing_and_analysis-data_analysis-data_exploitation"}
COMPUTE = {"category": "category-access_physical_and_eInfrastructures-compute",
           "subcategory": "subcategory-access_physical_and_eInfrastructures-compute-virtual_machine_management"}
REQUIRED = ("abbreviation", "name", "resourceOrganisation", "webpage", "description", "tagline", "logo",
            "scientificDomains", "categories", "targetUsers", "geographicalAvailabilities", "languageAvailabilities",
            "mainContact.firstName", "mainContact.lastName", "mainContact.email", "publicContacts", "helpdeskEmail",
            "securityContactEmail", "trl", "termsOfUse", "privacyPolicy", "orderType")
VOCABULARY_PREFIX = {"trl": "trl-", "lifeCycleStatus": "life_cycle_status-", "orderType": "order_type-"}


def registration_status(found: CatalogueService) -> EoscStatus:
    """The broker's registration state from the catalogue's onboarding state."""
    state = (found.onboarding_status or "").lower()
    if "approved" in state and found.active is not False:
        return EoscStatus.REGISTERED
    if state == "" and found.active:
        return EoscStatus.REGISTERED
    return EoscStatus.IN_PROGRESS


def drift(service: ComputeService, found: CatalogueService) -> list[dict[str, Any]]:
    """Fields where the broker's record and the catalogue's differ."""
    pairs = {"name": (service.title, found.name), "webpage": (service.base_url, found.webpage),
             "lifeCycleStatus": (LIFECYCLE.get(Lifecycle(service.lifecycle)), found.lifecycle_status)}
    if service.description:
        pairs["description"] = (service.description, found.description)
    return [{"field": f, "broker": ours, "catalogue": theirs} for f, (ours, theirs) in pairs.items()
            if _norm(ours) != _norm(theirs)]


def _norm(value: Any) -> str:
    return " ".join(str(value or "").split()).rstrip("/").lower()


@dataclass(frozen=True)
class Profile:
    profile: dict[str, Any]
    missing: list[str]
    invalid: list[str]

    @property
    def valid(self) -> bool:
        return not self.missing and not self.invalid


def build_profile(service: ComputeService, facility: Facility, entry: EoscEntry | None) -> Profile:
    """The service as an EOSC v5 service profile, filled from the registry, with what is missing."""
    lifecycle = Lifecycle(service.lifecycle)
    contact = facility.contact_email
    profile: dict[str, Any] = {
        "abbreviation": service.id, "name": service.title, "resourceOrganisation": facility.id,
        "webpage": service.base_url, "description": service.description,
        "tagline": (service.description or service.title).split(". ")[0][:100],
        "scientificDomains": (entry.scientific_domains if entry and entry.scientific_domains else [PAN_DOMAIN]),
        "categories": (entry.categories if entry and entry.categories else
                       [ANALYSIS, COMPUTE] if service.kind in ("visa", "remote-desktop") else [ANALYSIS]),
        "targetUsers": ["target_user-researchers"], "geographicalAvailabilities": ["EO"],
        "languageAvailabilities": ["en"], "mainContact": {"email": contact} if contact else {},
        "publicContacts": [{"email": contact}] if contact else [], "helpdeskEmail": contact,
        "securityContactEmail": contact, "trl": (entry.trl if entry and entry.trl else TRL[lifecycle]),
        "lifeCycleStatus": LIFECYCLE[lifecycle], "orderType": "order_type-open_access",
        "tags": ["photon and neutron", service.kind],
    }
    if entry and entry.resource_id:
        profile["id"] = entry.resource_id
    for key, value in (entry.profile if entry else {}).items():
        profile[key] = {**profile.get(key, {}), **value} if isinstance(value, dict) and isinstance(
            profile.get(key), dict) else value
    missing = [name for name in REQUIRED if _empty(_dig(profile, name))]
    invalid = [f"{name}: must be an EOSC vocabulary id starting {prefix!r}"
               for name, prefix in VOCABULARY_PREFIX.items()
               if profile.get(name) and not str(profile[name]).startswith(prefix)]
    return Profile(profile, missing, invalid)


def _dig(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


class EoscService:
    def __init__(self, store: Store, registry: RegistryService, client: EoscCatalogueClient | None,
                 token: str | None = None):
        self.store = store
        self.registry = registry
        self.client = client
        self.token = token

    def _client(self) -> EoscCatalogueClient:
        if self.client is None:
            raise NotConfigured("no EOSC catalogue is configured (set PANBROKER_EOSC_CATALOGUE_URL)")
        return self.client

    def sync_all(self) -> list[dict[str, Any]]:
        with self.store.session() as session:
            ids = session.scalars(select(EoscEntry.service_id).where(EoscEntry.resource_id.is_not(None))
                                  .order_by(EoscEntry.service_id)).all()
        return [self.sync(service_id) for service_id in ids]

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
            resource_id = entry.resource_id
        try:
            found = client.service(resource_id)
        except NotInCatalogue as exc:
            return self._record_failure(service_id, "not-found", exc.detail)
        except UpstreamError as exc:
            return self._record_failure(service_id, "error", exc.detail)
        with self.store.session() as session:
            entry = session.get(EoscEntry, service_id)
            differences = drift(entry.service, found)
            session.execute(update(EoscEntry).where(EoscEntry.service_id == service_id).values(
                last_synced_at=utcnow(), onboarding_status=found.onboarding_status, catalogue_name=found.name,
                catalogue_url=found.webpage, catalogue_lifecycle=found.lifecycle_status, drift=differences,
                last_sync_error=None).execution_options(synchronize_session=False))
            event = EoscSyncEvent(service_id=service_id, outcome="ok", onboarding_status=found.onboarding_status,
                                  drift=differences)
            session.add(event)
            session.flush()
            shown = self._show_event(event)
            current_status, version = entry.status, entry.version
        status = registration_status(found)
        if status.value != current_status:  # a real change of the record: versioned and audited
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

    def profile(self, service_id: str) -> Profile:
        with self.store.session() as session:
            service = session.get(ComputeService, service_id)
            if service is None:
                raise NotFound(f"no service {service_id!r}")
            return build_profile(service, service.facility, service.eosc_entry)

    def profiles(self, facility_id: str) -> list[tuple[str, Profile]]:
        with self.store.session() as session:
            facility = session.get(Facility, facility_id)
            if facility is None:
                raise NotFound(f"no facility {facility_id!r}")
            return [(s.id, build_profile(s, facility, s.eosc_entry))
                    for s in sorted(facility.services, key=lambda s: s.id)]

    def push(self, actor: Principal, service_id: str) -> dict[str, Any]:
        """Validate locally, then at the catalogue, then create or update the service there."""
        profile = self.profile(service_id)
        with self.store.session() as session:
            service = session.get(ComputeService, service_id)
            actor.require_write(service.facility_id)
            exists = bool(service.eosc_entry and service.eosc_entry.resource_id)
        if not profile.valid:
            raise Conflict("the profile is not complete: " + "; ".join(profile.missing + profile.invalid))
        if not self.token:
            raise NotConfigured("pushing needs PANBROKER_EOSC_TOKEN")
        found = self._client().push(profile.profile, self.token, exists=exists)
        return {"id": found.id, "onboarding_status": found.onboarding_status}
