"""A basket across facilities: where a set of datasets from several facilities can be analysed together, and
what the session is handed about each (a manifest and environment variables).

It composes the launch service's routing (``LaunchService.preview``) and never routes by itself: a service is
judged for a dataset exactly as a launch of that dataset would judge it. The order of preference:

1. every dataset at one facility: a service there that takes each of them;
2. otherwise a federation-wide service (PANBROKER_FEDERATION_WIDE_FACILITIES) that takes every dataset (open data);
3. otherwise the facility holding the largest share: a service there that takes its own datasets, the others'
   open data fetched in by download; another facility's embargoed dataset is left out, saying why (it may be
   analysed only where it is held).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from broker.authz import Principal
from panmodel.errors import FieldError, InvalidInput, NotFound
from panmodel.datasets import Dataset
from registry.models import ComputeService

MAX_BASKET = 50


@dataclass(frozen=True)
class BasketEntry:
    pid: str
    facility: str
    title: str
    doi: str | None
    access: str  # "local": the service's facility holds it; "download": fetched in as open data
    landing_url: str


@dataclass(frozen=True)
class BasketPlan:
    service_id: str | None
    facility_id: str | None
    reason: str
    entries: tuple[BasketEntry, ...] = ()
    left_out: tuple[tuple[str, str], ...] = ()  # (pid, why)
    candidates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        """The file a session receives: every dataset's identity, where it is and how to get it."""
        return {"version": 1, "service": self.service_id, "facility": self.facility_id, "reason": self.reason,
                "datasets": [e.__dict__ for e in self.entries],
                "left_out": [{"pid": pid, "reason": why} for pid, why in self.left_out]}

    def environment(self, manifest_path: str = "panbroker-basket.json") -> dict[str, str]:
        """Environment variables for the session (the manifest's path, and the pids for quick use)."""
        return {"PANBROKER_BASKET_MANIFEST": manifest_path,
                "PANBROKER_DATASET_PIDS": json.dumps([e.pid for e in self.entries]),
                "PANBROKER_DOWNLOAD_PIDS": json.dumps([e.pid for e in self.entries if e.access == "download"])}


class BasketService:
    def __init__(self, search: Any, launches: Any, federation_wide: tuple[str, ...], portal_url: str):
        self.search = search  # broker.search.service.SearchService
        self.launches = launches  # broker.launch.service.LaunchService
        self.federation_wide = federation_wide
        self.portal_url = portal_url.rstrip("/")

    def plan(self, actor: Principal, pids: list[str]) -> BasketPlan:
        """Where the basket goes and why; ``InvalidInput`` naming each pid that names no dataset."""
        if not pids or len(pids) > MAX_BASKET:
            raise InvalidInput.from_fields([FieldError("datasets", f"1 to {MAX_BASKET} datasets")])
        datasets, errors = [], []
        for index, pid in enumerate(dict.fromkeys(pids)):
            try:
                datasets.append(self.search.get(pid))
            except NotFound as exc:
                errors.append(FieldError(f"datasets[{index}]", exc.detail))
        if errors:
            raise InvalidInput.from_fields(errors)
        datasets = list({d.pid: d for d in datasets}.values())  # a pid and its DOI are one dataset
        judged = {d.pid: self.launches.preview(actor, d, {}) for d in datasets}
        facilities = sorted({d.facility for d in datasets})

        def fitting_all(candidates_of: dict[str, list[dict[str, Any]]], facility: str | None = None) -> str | None:
            common = None
            for candidates in candidates_of.values():
                ids = {c["service_id"] for c in candidates if c["fits"] and (facility is None or
                                                                            c["facility_id"] == facility)}
                common = ids if common is None else common & ids
            return min(common) if common else None

        if len(facilities) == 1:
            chosen = fitting_all(judged, facilities[0])
            if chosen:
                return self._plan(chosen, facilities[0], f"all {len(datasets)} datasets are held by {facilities[0]}",
                                  datasets, (), judged)
        if all(d.is_public for d in datasets):
            wide = {d.pid: self._wide(actor, d) for d in datasets}
            chosen = fitting_all(wide)
            if chosen:
                facility = next(c["facility_id"] for c in next(iter(wide.values())) if c["service_id"] == chosen)
                return self._plan(chosen, facility, f"every dataset is open data and {chosen} of the "
                                  f"federation-wide facility {facility} can take each of them", datasets, (), wide)
        shares = sorted(facilities, key=lambda f: (-sum(d.facility == f for d in datasets), f))
        for facility in shares:
            own = {d.pid: judged[d.pid] for d in datasets if d.facility == facility}
            chosen = fitting_all(own, facility)
            if not chosen:
                continue
            kept = [d for d in datasets if d.facility == facility or d.is_public]
            left = tuple((d.pid, f"embargoed at {d.facility}: it may be analysed only there, never fetched into "
                                 f"{facility}") for d in datasets if d not in kept)
            held = sum(d.facility == facility for d in datasets)
            return self._plan(chosen, facility, f"{facility} holds {held} of the {len(datasets)} datasets; the open "
                              "data of the others is fetched in", kept, left, judged)
        return BasketPlan(None, None, "no service can take these datasets together: analyse them one by one",
                          candidates=judged)

    def _wide(self, actor: Principal, dataset: Dataset) -> list[dict[str, Any]]:
        """The federation-wide services judged for an open dataset (asked of routing one service at a time)."""
        found = []
        for candidate in self.launches.preview(actor, dataset, {}):
            if candidate["facility_id"] in self.federation_wide:
                found.append(candidate)
        if found:
            return found
        # the holder has a fitting service, so routing did not list the federation-wide ones: ask for each
        for facility in self.federation_wide:
            for service in self._services_of(facility):
                found += [c for c in self.launches.preview(actor, dataset, {"service_id": service})
                          if c["service_id"] == service]
        return found

    def _services_of(self, facility: str) -> list[str]:
        with self.launches.store.session() as session:
            return list(session.scalars(select(ComputeService.id).where(ComputeService.facility_id == facility)))

    def _plan(self, service: str, facility: str, reason: str, datasets: list[Dataset],
              left: tuple[tuple[str, str], ...], candidates: dict[str, list[dict[str, Any]]]) -> BasketPlan:
        entries = tuple(BasketEntry(d.pid, d.facility, d.title, d.doi, "local" if d.facility == facility
                                    else "download", f"{self.portal_url}/datasets/{d.pid}") for d in datasets)
        return BasketPlan(service, facility, reason, entries, left, candidates)
