"""Registry import and export in the seed-file format (YAML or JSON): facilities with their services
(each with its EOSC entry) and search endpoints nested inside.

Import is idempotent: an object equal to the stored one is left alone, so importing the same file
twice writes nothing the second time. Nothing is contacted: URLs are data here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from broker.authz import Principal
from panmodel.errors import FieldError, InvalidInput, NotFound
from broker.registry_kinds import KINDS, Kind, load
from broker.registry_service import Precondition, RegistryService

NESTED = {"services", "search_endpoints"}


@dataclass
class ImportReport:
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str, kind: Kind) -> None:
        bucket = getattr(self, outcome)
        bucket[kind.name] = bucket.get(kind.name, 0) + 1

    @property
    def writes(self) -> int:
        return sum(self.created.values()) + sum(self.updated.values())


def read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not valid YAML or JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("facilities"), list):
        raise InvalidInput(f"{path}: expected a mapping with a 'facilities' list")
    return data


def _plan(data: dict[str, Any]) -> list[tuple[Kind, dict[str, Any]]]:
    """Every object of the file in write order, each validated, or one error naming every bad field."""
    plan: list[tuple[Kind, dict[str, Any]]] = []
    errors: list[FieldError] = []

    def add(kind: Kind, payload: Any, where: str) -> None:
        try:
            load(kind.schema, payload)
        except InvalidInput as exc:
            errors.extend(FieldError(f"{where}.{e.field}", e.message) for e in exc.errors)
        plan.append((kind, payload))

    for i, facility in enumerate(data["facilities"]):
        if not isinstance(facility, dict):
            errors.append(FieldError(f"facilities[{i}]", "must be a mapping"))
            continue
        facility = dict(facility)
        children = {key: facility.pop(key, None) or [] for key in NESTED}
        add(KINDS.facility, facility, f"facilities[{i}]")
        for j, service in enumerate(children["services"]):
            service = {**service, "facility_id": facility.get("id")}
            eosc = service.pop("eosc", None)
            add(KINDS.service, service, f"facilities[{i}].services[{j}]")
            if eosc is not None:
                add(KINDS.eosc_entry, {**eosc, "service_id": service.get("id")}, f"facilities[{i}].services[{j}].eosc")
        for j, endpoint in enumerate(children["search_endpoints"]):
            add(KINDS.search_endpoint, {**endpoint, "facility_id": facility.get("id")},
                f"facilities[{i}].search_endpoints[{j}]")
    if errors:
        raise InvalidInput.from_fields(errors)
    return plan


def import_registry(registry: RegistryService, actor: Principal, data: dict[str, Any]) -> ImportReport:
    """Create what is missing and update what differs; report what happened to each kind."""
    report = ImportReport()
    for kind, payload in _plan(data):
        key = payload.get(kind.key)
        try:
            current = registry.get(kind, key) if key else None
        except NotFound:
            current = None
        if current is None:
            registry.create(actor, kind, payload)
            report.count("created", kind)
            continue
        wanted = load(kind.schema, payload)
        stored = load(kind.schema, {k: v for k, v in current.items() if k in wanted and v is not None})
        if wanted.get("credential") is None and all(stored.get(k) == v for k, v in wanted.items()
                                                    if k != "credential"):
            report.count("unchanged", kind)
            continue
        registry.update(actor, kind, key, payload, Precondition(current["version"], from_header=True), partial=True)
        report.count("updated", kind)
    return report


def export_registry(registry: RegistryService) -> dict[str, Any]:
    """The whole registry in the seed-file format; no credentials, health or versions."""

    def everything(kind: Kind) -> list[dict[str, Any]]:
        items, offset = [], 0
        while True:
            page = registry.list(kind, limit=registry.page_size_max, offset=offset)
            items.extend(page.items)
            offset += page.limit
            if offset >= page.total:
                return items

    def exported(kind: Kind, item: dict[str, Any], drop: set[str]) -> dict[str, Any]:
        return {name: item[name] for name in kind.exported_fields
                if name not in drop and item.get(name) not in (None, {}, [])}

    entries = {e["service_id"]: e for e in everything(KINDS.eosc_entry)}
    services, endpoints = everything(KINDS.service), everything(KINDS.search_endpoint)
    facilities = []
    for facility in everything(KINDS.facility):
        record = exported(KINDS.facility, facility, set())
        record["services"] = []
        for service in (s for s in services if s["facility_id"] == facility["id"]):
            out = exported(KINDS.service, service, {"facility_id"})
            if service["id"] in entries:
                out["eosc"] = exported(KINDS.eosc_entry, entries[service["id"]], {"service_id"})
            record["services"].append(out)
        record["search_endpoints"] = [exported(KINDS.search_endpoint, e, {"facility_id"})
                                      for e in endpoints if e["facility_id"] == facility["id"]]
        facilities.append({k: v for k, v in record.items() if v != []})
    return {"facilities": facilities}


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
