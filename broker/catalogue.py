"""The discovery view for EOSC catalogue users: every facility's analysis services with what they
offer, whether they are up, and their EOSC registration."""
from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from broker.eosc import PAN_DOMAIN
from panmodel.errors import FieldError, InvalidInput
from broker.registry_kinds import iso
from connectors import kinds
from panmodel.states import EoscStatus, HealthStatus, TargetType
from registry.models import ComputeService
from registry.store import Store

CSV_COLUMNS = ["id", "title", "facility_id", "facility_name", "country", "kind", "lifecycle", "url", "gpu",
               "max_cpus", "max_memory_gb", "protocols", "interfaces", "health", "latency_ms", "checked_at",
               "eosc_status", "eosc_resource_id", "marketplace_url", "scientific_domains"]


class CatalogueService:
    def __init__(self, store: Store):
        self.store = store

    def services(self, *, facility: list[str] | None = None, kind: list[str] | None = None,
                 scientific_domain: str | None = None, gpu: bool | None = None, status: str | None = None,
                 eosc_status: str | None = None) -> list[dict[str, Any]]:
        _check(kind, kinds(TargetType.SERVICE), "kind")
        _check([status] if status else None, [s.value for s in HealthStatus], "status")
        _check([eosc_status] if eosc_status else None, [s.value for s in EoscStatus], "eosc_status")
        query = select(ComputeService).options(selectinload(ComputeService.facility),
                                               selectinload(ComputeService.eosc_entry)).order_by(ComputeService.id)
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
