"""A person's account page, as the people and sign-in services answer it: who they are, the identities they
linked (by their providers' titles), the providers they may link next, their roles, and the facilities whose
services accept them, each facility by name. A person sees only their own account."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from broker.auth.issuers import SignInChoice
from broker.authz import Principal
from broker.people import PeopleService


@dataclass(frozen=True)
class FacilityRef:
    id: str
    name: str


@dataclass(frozen=True)
class LinkedIdentity:
    provider: str  # the title of the issuer (its name when the broker no longer offers it)
    subject: str


@dataclass(frozen=True)
class HeldRole:
    role: str
    facility: FacilityRef | None  # the facility an operator operates; None for an admin


@dataclass(frozen=True)
class AccountView:
    display_name: str
    email: str | None
    identities: tuple[LinkedIdentity, ...]
    linkable: tuple[SignInChoice, ...]  # providers offered that none of the identities is at
    roles: tuple[HeldRole, ...]
    launch_facilities: tuple[FacilityRef, ...]  # facilities accepting one of the identities' issuers


class AccountPages:
    def __init__(self, people: PeopleService, facility_names: Callable[[], dict[str, str]],
                 providers: Callable[[], list[SignInChoice]]):
        self.people = people
        self.facility_names = facility_names
        self.providers = providers

    def view(self, actor: Principal) -> AccountView:
        """The caller's own account; ``Forbidden`` for a caller that is not a person (a token, the CLI)."""
        person_id = actor.require_person()
        person = self.people.get(person_id)
        names, providers = self.facility_names(), self.providers()
        titles = {p.name: p.title for p in providers}
        linked = {i["issuer"] for i in person["identities"]}

        def facility(facility_id: str) -> FacilityRef:
            return FacilityRef(facility_id, names.get(facility_id, facility_id))

        return AccountView(
            person["display_name"], person["email"],
            tuple(LinkedIdentity(titles.get(i["issuer"], i["issuer"]), i["subject"]) for i in person["identities"]),
            tuple(p for p in providers if p.name not in linked),
            tuple(HeldRole(r["role"], facility(r["facility_id"]) if r["facility_id"] else None) for r in person["roles"]),
            tuple(facility(f) for f in self.people.launch_facilities(person_id)))


__all__ = ["AccountPages", "AccountView", "FacilityRef", "HeldRole", "LinkedIdentity"]
