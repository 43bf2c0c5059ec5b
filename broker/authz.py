"""Who may change what. Every registry write asks ``Principal.require_write`` first.

Until federated login lands, the only writer is the bootstrap admin (admin token or the local CLI);
facility operators slot in through ``operator_of``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from panmodel.errors import Forbidden


@dataclass(frozen=True)
class Principal:
    subject: str
    admin: bool = False
    operator_of: frozenset[str] = field(default_factory=frozenset)

    def can_write(self, facility_id: str | None) -> bool:
        """Admins write anything; an operator writes only the objects of their own facilities.
        ``facility_id`` None means a registry-wide write (a new facility): admins only."""
        return self.admin or (facility_id is not None and facility_id in self.operator_of)

    def require_write(self, facility_id: str | None) -> None:
        if not self.can_write(facility_id):
            scope = f"facility {facility_id!r}" if facility_id else "the registry"
            raise Forbidden(f"{self.subject} may not change {scope}; an operator of it or an admin may")


ANONYMOUS = Principal("anonymous")
