"""Signed-in browsers: a random session id in a cookie, only its hash stored, a new id at every sign-in."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from broker.auth.issuers import Issuers
from broker.auth.oidc import OidcClient
from broker.authz import Principal
from broker.people import PeopleService
from panmodel.clock import as_utc, utcnow
from registry.models import WebSession
from registry.store import Store

SESSION_TTL = timedelta(hours=12)


def digest(secret: str) -> str:
    """What is stored of a secret the browser holds (a session id, a login cookie)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class SessionInfo:
    """A live session: who, signed in with which issuer, when."""

    person_id: str
    issuer: str
    signed_in_at: datetime


class SessionService:
    def __init__(self, store: Store, people: PeopleService, oidc: OidcClient, issuers: Issuers, public_url: str):
        self.store = store
        self.people = people
        self.oidc = oidc
        self.issuers = issuers
        self.public_url = public_url.rstrip("/")

    def open(self, person_id: str, issuer: str) -> str:
        """A new session of ``person_id``; its id, for the cookie (a new one every time: no fixation)."""
        session_id = secrets.token_urlsafe(32)
        with self.store.session() as session:
            session.add(WebSession(id_hash=digest(session_id), person_id=person_id, issuer=issuer,
                                   expires_at=utcnow() + SESSION_TTL))
        return session_id

    def current(self, session_id: str | None) -> SessionInfo | None:
        """The live session ``session_id`` names; None when unknown or expired (an expired one is deleted)."""
        if not session_id:
            return None
        with self.store.session() as session:
            found = session.get(WebSession, digest(session_id))
            if found is None:
                return None
            if as_utc(found.expires_at) <= utcnow():
                session.delete(found)
                return None
            return SessionInfo(found.person_id, found.issuer, as_utc(found.created_at))

    def principal(self, session_id: str | None) -> Principal | None:
        """Who the session's browser acts as, with the roles the person holds now."""
        current = self.current(session_id)
        return self.people.principal(current.person_id) if current else None

    def end(self, session_id: str | None) -> str:
        """End the session; where to send the browser (the provider's logout page when it has one)."""
        if not session_id:
            return "/"
        with self.store.session() as session:
            found = session.get(WebSession, digest(session_id))
            if found is None:
                return "/"
            issuer = found.issuer
            session.delete(found)
        config = self.issuers.usable(issuer)
        end = self.oidc.end_session_url(config, self.public_url + "/") if config else None
        return end or "/"
