"""The discovery view for EOSC catalogue users: every facility's analysis services with what they
offer, whether they are up, and their EOSC registration."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from broker.eosc import PAN_DOMAIN
from panmodel.errors import FieldError, InvalidInput
from broker.health import HealthService
from broker.registry_kinds import KINDS, iso
from broker.registry_service import RegistryService
from connectors import kinds
from panmodel.states import EoscStatus, HealthStatus, TargetType
from registry.models import ComputeService
from registry.store import Store

CSV_COLUMNS = ["id", "title", "facility_id", "facility_name", "country", "kind", "lifecycle", "url", "gpu",
               "max_cpus", "max_memory_gb", "protocols", "interfaces", "health", "latency_ms", "checked_at",
               "eosc_status", "eosc_resource_id", "marketplace_url", "scientific_domains"]


HISTORY = 30  # health checks drawn per service
LISTED = 500


@dataclass(frozen=True)
class ServicesView:
    """The services catalogue page: the services the filters keep, the facilities to filter by, and each
    service's latest health checks (newest first)."""

    items: list[dict[str, Any]]
    facilities: list[dict[str, Any]]
    histories: dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class FacilityView:
    """One facility's public page: its analysis services with their health histories, its search
    endpoints, and the identity providers its services accept, by title."""

    facility: dict[str, Any]
    items: list[dict[str, Any]]
    endpoints: list[dict[str, Any]]
    histories: dict[str, list[dict[str, Any]]]
    issuers: list[str]


@dataclass(frozen=True)
class FacilityCard:
    """A facility as the landing and facilities pages list it."""

    id: str
    name: str
    country: str
    federation_wide: bool
    datasets: int  # how many of its datasets the index holds
    services: tuple[str, ...]  # the titles of its analysis services


class CatalogueService:
    def __init__(self, store: Store, registry: RegistryService, health: HealthService,
                 issuer_titles: Callable[[], dict[str, str]]):
        self.store = store
        self.registry = registry
        self.health = health
        self.issuer_titles = issuer_titles

    def services_view(self, **filters: Any) -> ServicesView:
        items = self.services(**filters)
        return ServicesView(items, self.registry.list(KINDS.facility, limit=LISTED).items, self._histories(items))

    def facility_view(self, facility_id: str) -> FacilityView:
        facility = self.registry.get(KINDS.facility, facility_id)
        items = self.services(facility=[facility_id])
        titles = self.issuer_titles()
        return FacilityView(facility, items,
                            self.registry.list(KINDS.search_endpoint, {"facility": facility_id}, limit=LISTED).items,
                            self._histories(items), [titles.get(i, i) for i in facility["accepted_issuers"]])

    def facility_cards(self, datasets: dict[str, int]) -> list[FacilityCard]:
        """Every facility by name, with its analysis services and ``datasets``: how many datasets of it
        the index holds."""
        services: dict[str, list[str]] = {}
        for item in self.services():
            services.setdefault(item["facility"]["id"], []).append(item["title"])
        facilities = sorted(self.registry.list(KINDS.facility, limit=LISTED).items, key=lambda f: f["name"].lower())
        return [FacilityCard(f["id"], f["name"], f["country"], f["federation_wide"], datasets.get(f["id"], 0),
                             tuple(services.get(f["id"], []))) for f in facilities]

    def _histories(self, items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        return self.health.histories(TargetType.SERVICE, [i["id"] for i in items], HISTORY)

    def services(self, *, facility: list[str] | None = None, kind: list[str] | None = None,
                 scientific_domain: str | None = None, gpu: bool | None = None, status: str | None = None,
                 eosc_status: str | None = None) -> list[dict[str, Any]]:
        _check(kind, kinds(TargetType.SERVICE), "kind")
        _check([status] if status else None, [s.value for s in HealthStatus], "status")
        _check([eosc_status] if eosc_status else None, [s.value for s in EoscStatus], "eosc_status")
        query = select(ComputeService).options(joinedload(ComputeService.facility),
                                               joinedload(ComputeService.eosc_entry)).order_by(ComputeService.id)
        if facility:
            query = query.where(ComputeService.facility_id.in_(facility))
        if kind:
            query = query.where(ComputeService.kind.in_(kind))
        if status:
            query = query.where(ComputeService.health_status == status)
        with self.store.session() as session:
            items = [_item(s) for s in session.scalars(query)]
        if gpu is not None:
            items = [i for i in items if i["capabilities"]["gpu"] is gpu]
        if eosc_status:
            items = [i for i in items if i["eosc"]["status"] == eosc_status]
        if scientific_domain:
            needle = scientific_domain.lower()
            items = [i for i in items if any(needle in d["scientificDomain"] or needle in d["scientificSubdomain"]
                                             for d in i["scientific_domains"])]
        return items

    @staticmethod
    def to_csv(items: list[dict[str, Any]]) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for i in items:
            caps, eosc = i["capabilities"], i["eosc"]
            writer.writerow([i["id"], i["title"], i["facility"]["id"], i["facility"]["name"], i["facility"]["country"],
                             i["kind"], i["lifecycle"], i["url"] or "", caps["gpu"], caps["max_cpus"] or "",
                             caps["max_memory_gb"] or "", ";".join(caps["protocols"]), ";".join(caps["interfaces"]),
                             i["health"]["status"], i["health"]["latency_ms"] or "", i["health"]["checked_at"] or "",
                             eosc["status"], eosc["resource_id"] or "", eosc["marketplace_url"] or "",
                             ";".join(d["scientificSubdomain"] for d in i["scientific_domains"])])
        return out.getvalue()


def _check(values: list[str] | None, allowed: list[str], name: str) -> None:
    bad = [v for v in values or [] if v not in allowed]
    if bad:
        raise InvalidInput.from_fields([FieldError(name, f"{', '.join(bad)}: use one of {', '.join(allowed)}")])


def _item(service: ComputeService) -> dict[str, Any]:
    caps = service.capabilities or {}
    entry = service.eosc_entry
    gpu = bool(caps.get("gpu")) or any(p.get("gpu") for p in caps.get("partitions", []))
    return {
        "id": service.id, "title": service.title, "kind": service.kind, "lifecycle": service.lifecycle,
        "url": service.base_url, "description": service.description, "launch_mode": service.launch_mode,
        "facility": {"id": service.facility.id, "name": service.facility.name, "country": service.facility.country},
        "capabilities": {"gpu": gpu, "max_cpus": caps.get("max_cpus"), "max_memory_gb": caps.get("max_memory_gb"),
                         "protocols": caps.get("protocols", []), "interfaces": caps.get("interfaces", []),
                         "partitions": [p["id"] for p in caps.get("partitions", [])],
                         "profiles": caps.get("profiles", []), "plans": caps.get("plans", []),
                         "file_preview": caps.get("file_preview")},
        "health": {"status": service.health_status, "latency_ms": service.health_latency_ms,
                   "checked_at": iso(service.health_checked_at)},
        "eosc": {"status": entry.status if entry else EoscStatus.NOT_REGISTERED.value,
                 "resource_id": entry.resource_id if entry else None,
                 "marketplace_url": entry.marketplace_url if entry else None,
                 "onboarding_status": entry.onboarding_status if entry else None},
        "scientific_domains": entry.scientific_domains if entry and entry.scientific_domains else [PAN_DOMAIN],
    }
