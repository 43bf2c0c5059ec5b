"""Who may do what: the one place the broker's permission rules live. Services ask the caller's
``Principal`` before they read or change anything that is not public; the API handlers and the portal
pages only pass the caller on.

- an admin (the bootstrap admin token, the local CLI, a person granted the admin role) may do anything;
- an operator of a facility may change that facility's services, search endpoints and EOSC entries,
  and read its audit log and operator console; registry-wide changes (a new facility, people, roles,
  the whole audit log, a health run) are the admins';
- a person acts for themselves only (their launches, tokens, notification settings); an admin may act
  for anyone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from panmodel.errors import Forbidden

PERSON = "person:"  # the subject prefix of a signed-in person (other subjects: tokens, the CLI)


@dataclass(frozen=True)
class Principal:
    subject: str
    admin: bool = False
    operator_of: frozenset[str] = field(default_factory=frozenset)

    # -- the registry ----------------------------------------------------------------------------
    def can_write(self, facility_id: str | None) -> bool:
        """Admins write anything; an operator writes only the objects of their own facilities.
        ``facility_id`` None means a registry-wide write (a new facility): admins only."""
        return self.admin or (facility_id is not None and facility_id in self.operator_of)

    def require_write(self, facility_id: str | None) -> None:
        if not self.can_write(facility_id):
            scope = f"facility {facility_id!r}" if facility_id else "the registry"
            raise Forbidden(f"{self.subject} may not change {scope}; an operator of it or an admin may")

    def require_admin(self) -> None:
        """Registry-wide reads and actions (people, the whole audit log, a health run): admins only."""
        self.require_write(None)

    @property
    def operates_any(self) -> bool:
        """Whether the operator console has anything for this caller."""
        return self.admin or bool(self.operator_of)

    # -- people ----------------------------------------------------------------------------------
    @property
    def person_id(self) -> str | None:
        """The person this caller is, or None for a token or the CLI."""
        return self.subject.removeprefix(PERSON) if self.subject.startswith(PERSON) else None

    def require_person(self, why: str | None = None) -> str:
        """The caller's person id; refused for callers that are not a person (the admin token, the CLI)."""
        if self.person_id is None:
            raise Forbidden(why or f"{self.subject} is not a person; use a personal API token or sign in")
        return self.person_id

    def may_act_for(self, person_id: str | None) -> bool:
        return self.admin or (person_id is not None and self.person_id == person_id)

    def require_act_for(self, person_id: str) -> None:
        if not self.may_act_for(person_id):
            raise Forbidden(f"{self.subject} may act only for themselves")


ANONYMOUS = Principal("anonymous")
