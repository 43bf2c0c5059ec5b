"""A basket across facilities: where a set of datasets from several facilities can be analysed together, and
what the session is handed about each (a manifest and environment variables).

It composes the launch routing (``Placement.preview``) and never judges a service by itself: a service is
judged for a dataset exactly as a launch of that dataset would judge it. The order of preference:

1. every dataset at one facility: a service there that takes each of them;
2. otherwise a federation-wide service (PANBROKER_FEDERATION_WIDE_FACILITIES) that takes every dataset (open data);
3. otherwise the facility holding the largest share: a service there that takes its own datasets, the others'
   open data fetched in by download; another facility's embargoed dataset is left out, saying why (it may be
   analysed only where it is held, and only by those its facility lets read it there).

A launch of a basket (``route``) records the plan on the launch: the chosen service, the reason, and the
manifest its session is handed.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from sqlalchemy import delete, select

from broker.authz import Principal
from panmodel.errors import FieldError, InvalidInput, NotFound
from broker.launch.placement import assign, identities_of, wanted_of
from broker.launch.records import LaunchView, person_of
from broker.launch.schemas import MAX_BASKET
from panmodel.datasets import Dataset
from panmodel.states import LaunchState
from registry.models import BasketItem, ComputeService, Launch, Person

if TYPE_CHECKING:  # the launch requests build their targets with this module's session environment
    from broker.launch.requests import LaunchRequests

MANIFEST_FILE = "panbroker-basket.json"  # in the session's root folder


@dataclass(frozen=True)
class BasketEntry:
    pid: str
    facility: str
    title: str
    doi: str | None
    public: bool
    access: str  # "local": the service's facility holds it; "download": fetched in as open data
    landing_url: str  # the dataset's page at the broker
    doi_url: str | None  # the DOI's landing page at the facility


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
                "datasets": [asdict(e) for e in self.entries],
                "left_out": [{"pid": pid, "reason": why} for pid, why in self.left_out]}

    def environment(self, manifest_path: str = MANIFEST_FILE) -> dict[str, str]:
        return session_environment(self.manifest(), manifest_path)

    def decision(self) -> list[dict[str, Any]]:
        """Every dataset's candidates, as a launch records its routing decision."""
        return [{**c, "dataset": pid, "reason": f"{pid}: {c['reason']}"}
                for pid, candidates in self.candidates.items() for c in candidates]


def session_environment(manifest: dict[str, Any], manifest_path: str = MANIFEST_FILE) -> dict[str, str]:
    """Environment variables for the session: the manifest's path, and the pids for quick use."""
    datasets = manifest.get("datasets", [])
    return {"PANBROKER_BASKET_MANIFEST": manifest_path,
            "PANBROKER_DATASET_PIDS": json.dumps([d["pid"] for d in datasets]),
            "PANBROKER_DOWNLOAD_PIDS": json.dumps([d["pid"] for d in datasets if d["access"] == "download"])}


@dataclass(frozen=True)
class BasketPage:
    """The basket as its page shows it: the datasets in it, where they would be analysed and why."""

    datasets: tuple[Dataset, ...]
    missing: tuple[str, ...]  # pids in the basket no facility knows any more
    plan: BasketPlan | None
    service_title: str | None = None  # of the service the plan chose
    names: dict[str, str] = field(default_factory=dict)  # facility id -> name


class BasketService:
    def __init__(self, search: Any, routing: Any, federation_wide: tuple[str, ...], portal_url: str):
        self.search = search  # broker.search.service.SearchService
        self.routing = routing  # broker.launch.placement.Placement (preview, store, records)
        self.federation_wide = federation_wide
        self.portal_url = portal_url.rstrip("/")

    # -- where a basket goes ------------------------------------------------------------------------
    def plan(self, actor: Principal, pids: list[str], wanted: dict[str, Any] | None = None) -> BasketPlan:
        """Where the basket goes and why; ``InvalidInput`` naming each pid that names no dataset, or the
        same dataset as another (a pid and its DOI)."""
        wanted = wanted or {}
        datasets = self._resolve(pids)
        judged = {d.pid: self.routing.preview(actor, d, wanted) for d in datasets}
        facilities = sorted({d.facility for d in datasets})
        if len(facilities) == 1:
            chosen = _fitting_all(judged, facilities[0])
            if chosen:
                return self._plan(chosen, facilities[0], f"all {len(datasets)} datasets are held by {facilities[0]}",
                                  datasets, (), judged)
        if all(d.is_public for d in datasets):
            wide = {d.pid: self._wide(actor, d, wanted) for d in datasets}
            chosen = _fitting_all(wide)
            if chosen:
                facility = next(c["facility_id"] for c in next(iter(wide.values())) if c["service_id"] == chosen)
                return self._plan(chosen, facility, f"every dataset is open data and {chosen} of the "
                                  f"federation-wide facility {facility} can take each of them", datasets, (), wide)
        shares = sorted(facilities, key=lambda f: (-sum(d.facility == f for d in datasets), f))
        for facility in shares:
            chosen = _fitting_all({d.pid: judged[d.pid] for d in datasets if d.facility == facility}, facility)
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

    def _resolve(self, pids: list[str]) -> list[Dataset]:
        if not pids or len(pids) > MAX_BASKET:
            raise InvalidInput.from_fields([FieldError("basket", f"1 to {MAX_BASKET} datasets")])
        datasets: list[Dataset] = []
        errors, seen = [], {}
        for index, pid in enumerate(pids):
            try:
                dataset = self.search.get(pid)
            except NotFound as exc:
                errors.append(FieldError(f"basket.{index}", exc.detail))
                continue
            if dataset.pid in seen:
                errors.append(FieldError(f"basket.{index}", f"{pid!r} names the same dataset ({dataset.pid}) as "
                                         f"basket.{seen[dataset.pid]}; send each dataset once"))
                continue
            seen[dataset.pid] = index
            datasets.append(dataset)
        if errors:
            raise InvalidInput("the basket names datasets that do not exist or names one twice", errors=errors)
        return datasets

    def _wide(self, actor: Principal, dataset: Dataset, wanted: dict[str, Any]) -> list[dict[str, Any]]:
        """The federation-wide services judged for an open dataset (asked of routing one service at a time)."""
        found = [c for c in self.routing.preview(actor, dataset, wanted) if c["facility_id"] in self.federation_wide]
        if found:
            return found
        # the holder has a fitting service, so routing did not list the federation-wide ones: ask for each
        for facility in self.federation_wide:
            for service in self._services_of(facility):
                asked = {**wanted, "service_id": wanted.get("service_id") or service}
                found += [c for c in self.routing.preview(actor, dataset, asked) if c["service_id"] == service]
        return found

    def _services_of(self, facility: str) -> list[str]:
        with self.routing.store.session() as session:
            return list(session.scalars(select(ComputeService.id).where(ComputeService.facility_id == facility)))

    def _plan(self, service: str, facility: str, reason: str, datasets: list[Dataset],
              left: tuple[tuple[str, str], ...], candidates: dict[str, list[dict[str, Any]]]) -> BasketPlan:
        entries = tuple(BasketEntry(d.pid, d.facility, d.title, d.doi, d.is_public,
                                    "local" if d.facility == facility else "download",
                                    f"{self.portal_url}/datasets/{d.pid}",
                                    f"https://doi.org/{d.doi}" if d.doi else None) for d in datasets)
        return BasketPlan(service, facility, reason, entries, left, candidates)

    # -- the launch of a basket -------------------------------------------------------------------------
    def route(self, launch_id: str, plan: BasketPlan | None = None) -> None:
        """Record where the launch's basket goes (``plan`` when the caller has it; a restart plans again):
        its service, the reason, the manifest; failed, saying why, when nothing takes it."""
        records = self.routing.records
        with self.routing.store.session() as session:
            launch = session.get(Launch, launch_id)
            request, person_id = launch.request, launch.person_id
        try:
            plan = plan or self.plan(Principal(f"person:{person_id}"), request["basket"], wanted_of(request))
        except InvalidInput as exc:
            records.move(launch_id, LaunchState.FAILED, "; ".join([exc.detail, *(e.message for e in exc.errors)]))
            return
        with self.routing.store.session() as session:
            launch = session.get(Launch, launch_id)
            launch.decision, launch.basket = plan.decision(), plan.manifest()
            if plan.service_id is None:
                launch.error = state_message = plan.reason
                state = LaunchState.FAILED
            else:
                key = "basket:" + json.dumps(sorted(e.pid for e in plan.entries))
                service = assign(session, launch, plan.service_id,
                                 identities_of(session.get(Person, person_id)), key)
                state, state_message = LaunchState.ROUTED, f"routed to {service.title}: {plan.reason}"
        records.move(launch_id, state, state_message)


class BasketItems:
    """The basket a signed-in person collects datasets into, kept per person in the store."""

    def __init__(self, baskets: BasketService, launches: LaunchRequests,
                 facility_names: Callable[[], dict[str, str]]):
        self.baskets = baskets
        self.launches = launches
        self.facility_names = facility_names
        self.store = baskets.routing.store

    def pids(self, actor: Principal) -> list[str]:
        with self.store.session() as session:
            return list(session.scalars(select(BasketItem.pid).where(BasketItem.person_id == person_of(actor))
                                        .order_by(BasketItem.added_at, BasketItem.pid)))

    def add(self, actor: Principal, pid: str) -> Dataset:
        """Put the dataset (pid or DOI) in the basket, once; ``InvalidInput`` when the basket is full."""
        dataset = self.baskets.search.get(pid)
        held = self.pids(actor)
        if dataset.pid in held:
            return dataset
        if len(held) >= MAX_BASKET:
            raise InvalidInput.from_fields([FieldError("basket", f"a basket holds at most {MAX_BASKET} datasets: "
                                                                 "take some out first")])
        with self.store.session() as session:
            session.merge(BasketItem(person_id=person_of(actor), pid=dataset.pid))
        return dataset

    def remove(self, actor: Principal, pid: str) -> None:
        with self.store.session() as session:
            session.execute(delete(BasketItem).where(BasketItem.person_id == person_of(actor), BasketItem.pid == pid))

    def page(self, actor: Principal) -> BasketPage:
        """The basket's datasets, those no facility knows any more, and where the rest would be analysed."""
        found, missing = [], []
        for pid in self.pids(actor):
            try:
                found.append(self.baskets.search.get(pid))
            except NotFound:
                missing.append(pid)
        plan = self.baskets.plan(actor, [d.pid for d in found]) if found else None
        return BasketPage(tuple(found), tuple(missing), plan, self._title(plan), self.facility_names())

    def launch(self, actor: Principal, key: str | None) -> LaunchView:
        """One session for every dataset in the basket, where the plan says (a form sent twice with the same
        ``key`` is the same launch); ``InvalidInput`` for an empty basket."""
        pids = self.pids(actor)
        if not pids:
            raise InvalidInput("Your basket is empty: add datasets from their pages or from search results.")
        launch, _created = self.launches.create(actor, key, {"basket": pids})
        return launch

    def _title(self, plan: BasketPlan | None) -> str | None:
        if plan is None or plan.service_id is None:
            return None
        with self.store.session() as session:
            service = session.get(ComputeService, plan.service_id)
            return service.title if service else None


def _fitting_all(candidates_of: dict[str, list[dict[str, Any]]], facility: str | None = None) -> str | None:
    """The first service (by id) that fits every dataset, of ``facility`` when given."""
    common = None
    for candidates in candidates_of.values():
        ids = {c["service_id"] for c in candidates if c["fits"] and (facility is None or c["facility_id"] == facility)}
        common = ids if common is None else common & ids
    return min(common) if common else None


__all__ = ["BasketEntry", "BasketItems", "BasketPage", "BasketPlan", "BasketService", "MANIFEST_FILE", "session_environment"]
