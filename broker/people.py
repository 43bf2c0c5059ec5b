"""People, their linked identities, their roles, and their personal API tokens.

A person is known through one or more (issuer, subject) identities; roles (admin, operator of a
facility) are granted by an admin; personal API tokens let scripts act as the person. Token secrets are
shown once, at creation, and only their SHA-256 is stored.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta
from typing import Any

from marshmallow import fields, validate
from sqlalchemy import select

from broker.authz import PERSON, Principal
from panmodel.errors import AlreadyExists, Conflict, FieldError, InvalidInput, NotFound
from broker.registry_kinds import iso, load
from panmodel.clock import as_utc, utcnow
from registry.models import ApiToken, AuditEvent, Facility, Identity, Person, Role, RoleGrant
from registry.schemas import ISSUER_NAME, SLUG, StrictSchema
from registry.store import Store

TOKEN_PREFIX = "pbk"
# claims about the token, not the person: never kept
PLUMBING_CLAIMS = frozenset({"iss", "aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "auth_time", "azp",
                             "sid", "jti", "acr", "amr", "typ", "session_state", "s_hash"})
MAX_TOKEN_DAYS = 366


class IdentitySchema(StrictSchema):
    issuer = fields.String(required=True, validate=ISSUER_NAME)
    subject = fields.String(required=True, validate=validate.Length(min=1, max=500))


class PersonSchema(StrictSchema):
    display_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.Email(allow_none=True)
    identities = fields.List(fields.Nested(IdentitySchema), required=True, validate=validate.Length(min=1, max=20))


class RoleSchema(StrictSchema):
    role = fields.String(required=True, validate=validate.OneOf([r.value for r in Role]))
    facility_id = fields.String(allow_none=True, validate=SLUG)


class TokenSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    expires_in_days = fields.Integer(load_default=90, validate=validate.Range(min=1, max=MAX_TOKEN_DAYS))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class PeopleService:
    def __init__(self, store: Store):
        self.store = store

    # -- people and identities -----------------------------------------------------------------
    def create(self, actor: Principal, payload: Any) -> dict[str, Any]:
        actor.require_admin()
        values = load(PersonSchema, payload)
        with self.store.session() as session:
            person = Person(id=str(uuid.uuid4()), display_name=values["display_name"], email=values.get("email"))
            session.add(person)
            for identity in values["identities"]:
                self._claim(session, person, identity["issuer"], identity["subject"])
            self._audit(session, actor, "create", person.id, None, {"display_name": person.display_name})
            session.flush()
            return self._show(person)

    def me(self, actor: Principal) -> dict[str, Any]:
        """The caller: roles, and when a person, their identities and where they can launch."""
        body: dict[str, Any] = {"subject": actor.subject, "admin": actor.admin,
                                "operator_of": sorted(actor.operator_of), "person": None, "launch_facilities": []}
        if (person_id := actor.person_id) is not None:
            body["person"], body["launch_facilities"] = self.get(person_id), self.launch_facilities(person_id)
        return body

    def get_as(self, actor: Principal, person_id: str) -> dict[str, Any]:
        actor.require_act_for(person_id)
        return self.get(person_id)

    def get(self, person_id: str) -> dict[str, Any]:
        with self.store.session() as session:
            return self._show(self._person(session, person_id))

    def list_as(self, actor: Principal) -> list[dict[str, Any]]:
        """Everyone registered: admins only."""
        actor.require_admin()
        return self.list()

    def list(self) -> list[dict[str, Any]]:
        with self.store.session() as session:
            return [self._show(p) for p in session.scalars(select(Person).order_by(Person.display_name))]

    def find(self, issuer: str, subject: str) -> dict[str, Any] | None:
        """The person signing in with this identity, if known."""
        with self.store.session() as session:
            identity = session.scalar(select(Identity).where(Identity.issuer == issuer, Identity.subject == subject))
            return self._show(identity.person) if identity else None

    def link(self, actor: Principal, person_id: str, payload: Any) -> dict[str, Any]:
        values = load(IdentitySchema, payload)
        actor.require_act_for(person_id)
        with self.store.session() as session:
            person = self._person(session, person_id)
            self._claim(session, person, values["issuer"], values["subject"])
            self._audit(session, actor, "link", person_id, None, {"issuer": values["issuer"]})
            session.flush()
            return self._show(person)

    def remember_claims(self, issuer: str, subject: str, claims: dict[str, Any]) -> None:
        """Keep the naming claims an issuer sent at sign-in (short strings only: user names, e-mail, a
        facility's uid), replacing the previous ones; services that map users read them at launch."""
        kept = {k: v for k, v in claims.items() if isinstance(k, str) and isinstance(v, str) and len(k) <= 100
                and len(v) <= 300 and k not in PLUMBING_CLAIMS}
        with self.store.session() as session:
            identity = session.scalar(select(Identity).where(Identity.issuer == issuer, Identity.subject == subject))
            if identity is not None:
                identity.claims = dict(sorted(kept.items())[:50])

    def unlink(self, actor: Principal, person_id: str, issuer: str, subject: str) -> dict[str, Any]:
        actor.require_act_for(person_id)
        with self.store.session() as session:
            person = self._person(session, person_id)
            identity = next((i for i in person.identities if (i.issuer, i.subject) == (issuer, subject)), None)
            if identity is None:
                raise NotFound(f"{person.display_name} has no identity {subject!r} at {issuer!r}")
            if len(person.identities) == 1:
                raise Conflict("this is the person's last identity; link another one before unlinking it")
            person.identities.remove(identity)
            self._audit(session, actor, "unlink", person_id, {"issuer": issuer}, None)
            session.flush()
            return self._show(person)

    @staticmethod
    def _claim(session, person: Person, issuer: str, subject: str) -> None:  # noqa: ANN001
        taken = session.scalar(select(Identity).where(Identity.issuer == issuer, Identity.subject == subject))
        if taken is not None:
            raise AlreadyExists(f"the identity {subject!r} at {issuer!r} already belongs to someone",
                                errors=[FieldError("subject", "already linked")])
        person.identities.append(Identity(issuer=issuer, subject=subject))

    # -- roles ---------------------------------------------------------------------------------
    def grant(self, actor: Principal, person_id: str, payload: Any) -> dict[str, Any]:
        actor.require_admin()
        values = load(RoleSchema, payload)
        role, facility = values["role"], values.get("facility_id")
        if (role == Role.OPERATOR) != bool(facility):
            raise InvalidInput.from_fields([FieldError("facility_id", "required for operator, absent for admin")])
        with self.store.session() as session:
            person = self._person(session, person_id)
            if facility and session.get(Facility, facility) is None:
                raise InvalidInput.from_fields([FieldError("facility_id", f"no facility {facility!r}")])
            if any((g.role, g.facility_id) == (role, facility) for g in person.roles):
                return self._show(person)
            person.roles.append(RoleGrant(role=role, facility_id=facility, granted_by=actor.subject))
            self._audit(session, actor, "grant", person_id, None, {"role": role, "facility_id": facility})
            session.flush()
            return self._show(person)

    def revoke_role(self, actor: Principal, person_id: str, role: str, facility_id: str | None) -> dict[str, Any]:
        actor.require_admin()
        with self.store.session() as session:
            person = self._person(session, person_id)
            grant = next((g for g in person.roles if (g.role, g.facility_id) == (role, facility_id)), None)
            if grant is None:
                raise NotFound(f"{person.display_name} has no {role} role" + (f" at {facility_id}" if facility_id else ""))
            person.roles.remove(grant)
            self._audit(session, actor, "revoke", person_id, {"role": role, "facility_id": facility_id}, None)
            session.flush()
            return self._show(person)

    def principal(self, person_id: str) -> Principal:
        with self.store.session() as session:
            person = self._person(session, person_id)
            return Principal(f"{PERSON}{person.id}", admin=any(g.role == Role.ADMIN for g in person.roles),
                             operator_of=frozenset(g.facility_id for g in person.roles if g.role == Role.OPERATOR))

    # -- personal API tokens -------------------------------------------------------------------
    def issue_token(self, actor: Principal, person_id: str | None, payload: Any) -> dict[str, Any]:
        """A new token of the person (None: the caller); its secret is in this answer only."""
        person_id = self._acting_for(actor, person_id)
        values = load(TokenSchema, payload)
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        with self.store.session() as session:
            self._person(session, person_id)
            token = ApiToken(id=token_id, person_id=person_id, name=values["name"], secret_hash=_hash(secret),
                             expires_at=utcnow() + timedelta(days=values["expires_in_days"]))
            session.add(token)
            self._audit(session, actor, "token", person_id, None, {"token_id": token_id, "name": values["name"]})
            session.flush()
            return {**self._show_token(token), "token": f"{TOKEN_PREFIX}_{token_id}_{secret}"}

    def tokens(self, actor: Principal, person_id: str | None = None) -> list[dict[str, Any]]:
        """The person's tokens (None: the caller's), without their secrets."""
        person_id = self._acting_for(actor, person_id)
        with self.store.session() as session:
            return [self._show_token(t) for t in session.scalars(
                select(ApiToken).where(ApiToken.person_id == person_id).order_by(ApiToken.created_at))]

    def revoke_token(self, actor: Principal, person_id: str | None, token_id: str) -> None:
        person_id = self._acting_for(actor, person_id)
        with self.store.session() as session:
            token = session.get(ApiToken, token_id)
            if token is None or token.person_id != person_id:
                raise NotFound(f"no token {token_id!r}")
            token.revoked_at = token.revoked_at or utcnow()
            self._audit(session, actor, "revoke-token", person_id, None, {"token_id": token_id})

    def authenticate(self, raw: str) -> Principal | None:
        """The person a personal token stands for, or None (unknown, wrong, expired or revoked)."""
        parts = raw.split("_", 2)
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            return None
        with self.store.session() as session:
            token = session.get(ApiToken, parts[1])
            if token is None or not hmac.compare_digest(token.secret_hash, _hash(parts[2])):
                return None
            now = utcnow()
            if token.revoked_at is not None or as_utc(token.expires_at) <= now:
                return None
            token.last_used_at = now
            person_id = token.person_id
        return self.principal(person_id)

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _acting_for(actor: Principal, person_id: str | None) -> str:
        """The person an action is for: the one named, if the caller may act for them, else the caller."""
        if person_id is None:
            return actor.require_person()
        actor.require_act_for(person_id)
        return person_id

    @staticmethod
    def _person(session, person_id: str) -> Person:  # noqa: ANN001
        person = session.get(Person, person_id)
        if person is None:
            raise NotFound(f"no person {person_id!r}")
        return person

    @staticmethod
    def _show(person: Person) -> dict[str, Any]:
        return {"id": person.id, "display_name": person.display_name, "email": person.email,
                "identities": [{"issuer": i.issuer, "subject": i.subject} for i in person.identities],
                "roles": [{"role": g.role, "facility_id": g.facility_id} for g in person.roles],
                "created_at": iso(person.created_at)}

    @staticmethod
    def _show_token(token: ApiToken) -> dict[str, Any]:
        return {"id": token.id, "name": token.name, "created_at": iso(token.created_at),
                "expires_at": iso(token.expires_at), "revoked_at": iso(token.revoked_at),
                "last_used_at": iso(token.last_used_at)}

    @staticmethod
    def _audit(session, actor: Principal, action: str, person_id: str, before, after) -> None:  # noqa: ANN001
        session.add(AuditEvent(actor=actor.subject, action=action, object_type="person", object_id=person_id,
                               before=before, after=after, changed=[]))

    def launch_facilities(self, person_id: str) -> list[str]:
        """Facilities that accept one of the person's identity issuers."""
        with self.store.session() as session:
            issuers = {i.issuer for i in self._person(session, person_id).identities}
            return sorted(f.id for f in session.scalars(select(Facility))
                          if issuers & set(f.accepted_issuers or []))


