"""The operator console's pages, as the service layer answers them: the facilities a person operates,
one facility's registry objects and changes, the objects they may edit, the EOSC completeness of their
services. Whatever the caller may not edit does not exist for them here (``NotFound``), so a console
page of another facility's object is a 404, as its write would be refused."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.authz import PERSON, Principal
from broker.eosc import EoscService
from panmodel.errors import BrokerError, NotFound
from broker.people import PeopleService
from broker.registry_kinds import KINDS, Kind
from broker.registry_service import Precondition, RegistryService

AUDIT_SHOWN = 30
LISTED = 500


@dataclass(frozen=True)
class OperatorView:
    """One facility's console: its registry objects, its latest changes and who made them."""

    facility: dict[str, Any]
    services: list[dict[str, Any]]
    endpoints: list[dict[str, Any]]
    entries: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    actors: dict[str, str]  # audit actor -> display name, for people


@dataclass(frozen=True)
class CompletenessView:
    facility: dict[str, Any]
    report: dict[str, Any]


class OperatorConsole:
    def __init__(self, registry: RegistryService, people: PeopleService, eosc: EoscService):
        self.registry = registry
        self.people = people
        self.eosc = eosc

    def facilities(self, actor: Principal) -> list[dict[str, Any]]:
        """The facilities ``actor`` operates (every one, for admins)."""
        return [f for f in self.registry.list(KINDS.facility, limit=LISTED).items if actor.can_write(f["id"])]

    def facility(self, actor: Principal, facility_id: str) -> dict[str, Any]:
        """The facility, if ``actor`` operates it; else ``NotFound``, as for a facility that does not exist."""
        if not actor.can_write(facility_id):
            raise NotFound(f"no facility {facility_id!r} among those you operate")
        return self.registry.get(KINDS.facility, facility_id)

    def view(self, actor: Principal, facility_id: str) -> OperatorView:
        facility = self.facility(actor, facility_id)
        scope = {"facility": facility_id}
        audit = self.registry.audit_log_as(actor, limit=AUDIT_SHOWN, facility_id=facility_id).items
        return OperatorView(facility, self.registry.list(KINDS.service, scope, limit=LISTED).items,
                            self.registry.list(KINDS.search_endpoint, scope, limit=LISTED).items,
                            self.registry.list(KINDS.eosc_entry, scope, limit=LISTED).items,
                            audit, self._actor_names({a["actor"] for a in audit}))

    def service_ids(self, actor: Principal, facility_id: str) -> tuple[str, ...]:
        """The services of an operated facility (those an EOSC entry may be made for)."""
        self.facility(actor, facility_id)
        return tuple(s["id"] for s in self.registry.list(KINDS.service, {"facility": facility_id}, limit=LISTED).items)

    def editable(self, actor: Principal, facility_id: str, kind: Kind, key: str) -> dict[str, Any]:
        """The object, if it belongs to ``facility_id`` and ``actor`` may change it; else ``NotFound``."""
        self.facility(actor, facility_id)
        try:
            owner = self.registry.owner(kind, key)
        except NotFound:
            owner = None
        if owner != facility_id or not actor.can_write(owner):
            raise NotFound(f"no {kind.name} {key!r} of this facility that you may edit")
        return self.registry.get(kind, key)

    # -- writes through the console: the registry's, on objects of the facility the console is of ------------
    def create(self, actor: Principal, facility_id: str, kind: Kind, payload: dict[str, Any]) -> dict[str, Any]:
        self.facility(actor, facility_id)
        return self.registry.create(actor, kind, payload)

    def update(self, actor: Principal, facility_id: str, kind: Kind, key: str, payload: dict[str, Any],
               version: int) -> dict[str, Any]:
        """Change some fields of the object; refused unless ``version`` is the stored one."""
        self.editable(actor, facility_id, kind, key)
        return self.registry.update(actor, kind, key, payload, Precondition(version, from_header=False), partial=True)

    def delete(self, actor: Principal, facility_id: str, kind: Kind, key: str, version: int | None) -> None:
        self.editable(actor, facility_id, kind, key)
        self.registry.delete(actor, kind, key, Precondition(version, from_header=False) if version is not None else None)

    def completeness(self, actor: Principal, facility_id: str) -> CompletenessView:
        """Whether the EOSC catalogue would accept each service of an operated facility, and what is missing."""
        return CompletenessView(self.facility(actor, facility_id), self.eosc.completeness(facility_id))

    def _actor_names(self, actors: set[str]) -> dict[str, str]:
        """Who made each change, by display name (people); other actors (tokens, the CLI) as recorded."""
        names = {}
        for actor in actors:
            if actor.startswith(PERSON):
                try:
                    names[actor] = self.people.get(actor.removeprefix(PERSON))["display_name"]
                except BrokerError:
                    names[actor] = "a person no longer registered"
        return names


__all__ = ["CompletenessView", "OperatorConsole", "OperatorView"]
