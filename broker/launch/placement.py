"""Placement: the routing decision of one launch (which service at which facility, and why not the
others), recorded on the launch; the same decision as a preview for pages, without recording."""
from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.authz import Principal
from panmodel.errors import NotFound
from broker.launch.records import LaunchRecords
from broker.launch.routing import Candidate, LinkedIdentity, hub_username, judge, rank
from connectors import connector_for
from panmodel.datasets import Dataset
from broker.search.service import SearchService
from panmodel.states import LaunchState
from registry.models import ComputeService, Facility, Launch, Person
from registry.store import Store


class Placement:
    def __init__(self, store: Store, search: SearchService, records: LaunchRecords,
                 federation_wide: tuple[str, ...] = ("egi",)):
        self.store = store
        self.search = search
        self.records = records
        self.federation_wide = federation_wide
        self.baskets: Any = None  # broker.basket.BasketService: routes the launches of a basket

    def route(self, launch_id: str, dataset: Dataset | None = None) -> None:
        """Choose the service; ``dataset`` when the caller already has it (a restart looks it up)."""
        with self.store.session() as session:
            launch = session.get(Launch, launch_id)
            request, person = launch.request, session.get(Person, launch.person_id)
            identities = identities_of(person)
        if request.get("basket") and self.baskets is not None:
            self.baskets.route(launch_id)
            return
        try:
            dataset = dataset or self.search.get(request["dataset"])
        except NotFound as exc:
            self.records.move(launch_id, LaunchState.FAILED, exc.detail)
            return
        wanted = wanted_of(request)
        with self.store.session() as session:
            candidates = self.candidates(session, dataset, identities, wanted)
            chosen = rank(candidates, request.get("kind"))
            launch = session.get(Launch, launch_id)
            launch.decision = [c.as_dict() for c in candidates]
            launch.facility_id = dataset.facility
            if chosen is None:
                launch.error = (f"no service fits this dataset of {dataset.facility}: "
                                + "; ".join(f"{c.service_id}: {c.reason}" for c in candidates) if candidates else
                                f"{dataset.facility} has no compute service registered")
                new_state, message = LaunchState.FAILED, launch.error
            else:
                service = assign(session, launch, chosen.service_id, identities, dataset.pid)
                new_state, message = LaunchState.ROUTED, f"routed to {service.title} ({chosen.reason})"
        self.records.move(launch_id, new_state, message)

    def preview(self, actor: Principal | None, dataset: Dataset, wanted: dict) -> list[dict]:
        """The routing decision a launch of ``dataset`` would get now: every candidate with its reason
        (no launch is recorded). Without a signed-in person, no identity is accepted anywhere."""
        identities: tuple[LinkedIdentity, ...] = ()
        with self.store.session() as session:
            if actor is not None and actor.person_id is not None:
                person = session.get(Person, actor.person_id)
                identities = identities_of(person) if person else ()
            return [c.as_dict() for c in self.candidates(session, dataset, identities, wanted)]

    def candidates(self, session: Session, dataset: Dataset, identities: tuple[LinkedIdentity, ...],
                   wanted: dict) -> list[Candidate]:
        issuers = {i.issuer for i in identities}
        home = session.get(Facility, dataset.facility)
        services = list(home.services) if home else []
        found = [judge(s, home, dataset, issuers, wanted, home=True, identities=identities)
                 for s in sorted(services, key=lambda s: s.id)]
        if dataset.is_public and not any(c.fits for c in found):
            for facility in self._federation_wide(session):
                if facility is not home:
                    found += [judge(s, facility, dataset, issuers, wanted, home=False, identities=identities)
                              for s in sorted(facility.services, key=lambda s: s.id)]
        return found

    def _federation_wide(self, session: Session) -> list[Facility]:
        """The facilities whose services may analyse any facility's public data: marked so in the registry,
        or named in the ``federation_wide_facilities`` setting."""
        marked = session.scalars(select(Facility).where(Facility.federation_wide.is_(True)).order_by(Facility.id))
        named = [f for f in (session.get(Facility, i) for i in self.federation_wide) if f is not None]
        return list({f.id: f for f in (*marked, *named)}.values())


def wanted_of(request: dict[str, Any]) -> dict[str, Any]:
    """What a launch request asks of a service, as routing judges it."""
    return {**request.get("resources", {}), **{k: request.get(k) for k in ("service_id", "kind", "interface")}}


def assign(session: Session, launch: Launch, service_id: str, identities: tuple[LinkedIdentity, ...],
           server_key: str) -> ComputeService:
    """Give the launch its service, the person's name there and the server's name (one per ``server_key``:
    the same dataset, or the same basket, at the same hub is the same server)."""
    service = session.get(ComputeService, service_id)
    facility = session.get(Facility, service.facility_id)
    identity = next(i for i in identities if i.issuer in (facility.accepted_issuers or []))
    launch.service_id, launch.facility_id = service.id, service.facility_id
    # JupyterHub lower-cases user names; a hub may name people by another claim (username_claim)
    launch.username = (hub_username(service, facility, identities)[0]
                       if connector_for(service.kind).username_from_claims
                       else None) or identity.subject.lower()
    launch.server_name = "pb-" + hashlib.sha256(server_key.encode()).hexdigest()[:12]
    return service


def identities_of(person: Person) -> tuple[LinkedIdentity, ...]:
    return tuple(LinkedIdentity(i.issuer, i.subject, dict(i.claims or {})) for i in person.identities)


__all__ = ["Placement", "assign", "identities_of", "wanted_of"]
