"""The browser sign-in: authorization code flow with PKCE, state and nonce, at any configured issuer.

Every authorization request is a single-use transaction bound to its issuer and to the browser that
started it (a hash of a random cookie set then); the answer must come back to that browser, from the
issuer that was asked (RFC 9207 ``iss``, and the ID token's ``iss``), which defeats login CSRF and
mix-up. Linking a second identity needs a recent sign-in of the account it joins.
"""
from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping
from urllib.parse import urlencode, urlsplit

from sqlalchemy import delete, select

from broker.auth.issuers import IssuerConfig, Issuers
from broker.auth.oidc import LoginRefused, OidcClient, TokenSet
from broker.auth.sessions import SessionService, digest
from broker.auth.tokens import UserTokens
from broker.authz import Principal
from panmodel.errors import NotFound
from broker.people import PeopleService
from panmodel.clock import as_utc, utcnow
from registry.models import LoginTransaction, RoleGrant
from registry.store import Store

TRANSACTION_TTL = timedelta(minutes=10)
LINK_FRESHNESS = timedelta(minutes=5)  # linking an identity needs a sign-in at most this old


@dataclass(frozen=True)
class Login:
    """A finished sign-in: the new session's id (for the cookie), whose it is, where to go next."""

    session_id: str
    person_id: str
    next_url: str


@dataclass(frozen=True)
class _Pending:
    """A login transaction taken (and deleted) from the store."""

    issuer: str
    nonce: str
    code_verifier: str
    next_url: str
    link_person_id: str | None
    browser_hash: str | None


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything pointing elsewhere becomes '/' (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


class LoginFlow:
    def __init__(self, store: Store, people: PeopleService, oidc: OidcClient, issuers: Issuers,
                 sessions: SessionService, tokens: UserTokens, public_url: str):
        self.store = store
        self.people = people
        self.oidc = oidc
        self.issuers = issuers
        self.sessions = sessions
        self.tokens = tokens
        self.public_url = public_url.rstrip("/")

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/auth/callback"

    def start(self, issuer_name: str, next_url: str | None, browser: str, link_person_id: str | None = None,
              fresh: bool = False) -> str:
        """The URL to send the browser to; records the single-use transaction, bound to ``browser`` (the
        secret of the cookie the caller sets on that browser). ``fresh`` asks the provider to sign in
        again even when it holds a session."""
        config = self.issuers.usable(issuer_name)
        if config is None:
            raise NotFound(f"no sign-in with {issuer_name!r}; use one of {[c.name for c in self.issuers.choices()]}")
        if not browser:
            raise LoginRefused("the sign-in must be started by a browser")
        self.oidc.metadata(config)  # an unreachable provider is refused before anything is stored
        state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
        with self.store.session() as session:
            session.execute(delete(LoginTransaction).where(LoginTransaction.created_at < utcnow() - TRANSACTION_TTL))
            session.add(LoginTransaction(state=state, issuer=issuer_name, nonce=nonce, code_verifier=verifier,
                                         next_url=safe_next(next_url), link_person_id=link_person_id,
                                         browser_hash=digest(browser)))
        extra = {"prompt": "login", "max_age": "0"} if fresh else {}
        if "offline_access" in config.scopes.split():  # offline access needs consent
            extra["prompt"] = " ".join(filter(None, [extra.get("prompt"), "consent"]))
        return self.oidc.authorization_url(config, redirect_uri=self.redirect_uri, state=state, nonce=nonce,
                                           code_verifier=verifier, **extra)

    def finish(self, params: Mapping[str, str], browser: str | None, session_id: str | None = None) -> Login:
        """Complete a login from the callback's query in the browser (login cookie secret ``browser``,
        current session ``session_id``) that started it; ``LoginRefused`` and no session otherwise."""
        if params.get("error"):
            raise LoginRefused(f"the identity provider refused: {params.get('error_description') or params['error']}")
        pending = self._take(params.get("state", ""))
        if not browser or not pending.browser_hash or not hmac.compare_digest(pending.browser_hash, digest(browser)):
            raise LoginRefused("this sign-in was started in another browser: start it again here")
        if pending.link_person_id is not None:
            current = self.sessions.current(session_id)
            if current is None or current.person_id != pending.link_person_id:
                raise LoginRefused("linking must end in the session that started it: sign in and link again")
        config = self.issuers[pending.issuer]
        self._check_issuer(config, params)
        if not params.get("code"):
            raise LoginRefused("the answer carries no authorization code")
        tokens = self._redeem(config, params["code"], pending.code_verifier)
        claims = self.oidc.verify_id_token(config, tokens, pending.nonce)
        subject = claims.get(config.subject_claim)
        if not subject:
            raise LoginRefused(f"the ID token has no {config.subject_claim!r} claim")
        person_id = self._person(config, str(subject), claims, pending.link_person_id)
        self._sync_entitlements(config, person_id, claims)
        self.tokens.keep(person_id, config.name, tokens)
        return Login(self.sessions.open(person_id, config.name), person_id, pending.next_url)

    def _take(self, state: str) -> _Pending:
        """The transaction ``state`` names, deleted whatever happens next (single use)."""
        with self.store.session() as session:
            row = session.get(LoginTransaction, state) if state else None
            if row is None:
                raise LoginRefused("unknown or already used state: start the sign-in again")
            session.delete(row)
            pending = _Pending(row.issuer, row.nonce, row.code_verifier, row.next_url, row.link_person_id,
                               row.browser_hash)
            created = as_utc(row.created_at)
        if utcnow() - created > TRANSACTION_TTL:
            raise LoginRefused("the sign-in took too long: start it again")
        return pending

    def _check_issuer(self, config: IssuerConfig, params: Mapping[str, str]) -> None:
        """RFC 9207 on the client side (authlib has it for servers only): the answer names the issuer asked."""
        if params.get("iss") is not None and params["iss"] != config.issuer:
            raise LoginRefused("the answer comes from another issuer than the one asked (mix-up refused)")
        always_sent = self.oidc.metadata(config).get("authorization_response_iss_parameter_supported")
        if params.get("iss") is None and always_sent:
            raise LoginRefused("the answer lacks the issuer its provider always sends (mix-up refused)")

    def _redeem(self, config: IssuerConfig, code: str, verifier: str) -> TokenSet:
        try:
            return self.oidc.request_token(config, "authorization_code", code=code, code_verifier=verifier,
                                           redirect_uri=self.redirect_uri)
        except LoginRefused as exc:
            raise LoginRefused(exc.detail.replace("refused the token request", "refused the code")) from exc

    def _person(self, config: IssuerConfig, subject: str, claims: dict[str, Any], link_person: str | None) -> str:
        person_id = self._find_or_make_person(config, subject, claims, link_person)
        self.people.remember_claims(config.name, subject, claims)  # e.g. the hub user name a service maps to
        return person_id

    def _find_or_make_person(self, config: IssuerConfig, subject: str, claims: dict[str, Any],
                             link_person: str | None) -> str:
        known = self.people.find(config.name, subject)
        system = Principal("login", admin=True)
        if link_person:
            if known and known["id"] != link_person:
                raise LoginRefused("this identity already belongs to someone else")
            if not known:
                self.people.link(system, link_person, {"issuer": config.name, "subject": subject})
            return link_person
        if known:
            return known["id"]
        created = self.people.create(system, {
            "display_name": str(claims.get("name") or claims.get("preferred_username") or subject)[:200],
            "email": claims.get("email") if isinstance(claims.get("email"), str) else None,
            "identities": [{"issuer": config.name, "subject": subject}]})
        return created["id"]

    def _sync_entitlements(self, config: IssuerConfig, person_id: str, claims: dict[str, Any]) -> None:
        """Roles derived from the issuer's entitlements follow them at every sign-in."""
        raw = claims.get(config.entitlements_claim) or []
        listed = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
        values = [v for v in listed if isinstance(v, str)]  # a malformed claim grants nothing
        wanted: set[tuple[str, str | None]] = set()
        if set(values) & set(config.admin_entitlements):
            wanted.add(("admin", None))
        prefix = config.operator_entitlement_prefix
        if prefix:
            wanted |= {("operator", v.removeprefix(prefix)) for v in values if v.startswith(prefix)}
        source = f"entitlement:{config.name}"
        with self.store.session() as session:
            grants = session.scalars(select(RoleGrant).where(RoleGrant.person_id == person_id,
                                                             RoleGrant.granted_by == source)).all()
            have = {(g.role, g.facility_id) for g in grants}
            for grant in grants:
                if (grant.role, grant.facility_id) not in wanted:
                    session.delete(grant)
            for role, facility in wanted - have:
                session.add(RoleGrant(person_id=person_id, role=role, facility_id=facility, granted_by=source))

    def link_start(self, session_id: str | None, issuer_name: str, next_url: str | None, browser: str) -> str:
        """Where to send a signed-in browser that confirmed linking an identity from ``issuer_name``: that
        provider, asked for a fresh sign-in, when the account's own sign-in is recent; otherwise a fresh
        sign-in of the account itself first, coming back to the confirmation."""
        current = self.sessions.current(session_id)
        if current is None:
            raise LoginRefused("linking an identity needs the session of the first one: sign in first")
        if utcnow() - current.signed_in_at > LINK_FRESHNESS and current.issuer in self.issuers:
            back = f"/auth/link/{issuer_name}" + (f"?{urlencode({'next': safe_next(next_url)})}" if next_url else "")
            return self.start(current.issuer, back, browser, fresh=True)
        return self.start(issuer_name, next_url, browser, link_person_id=current.person_id, fresh=True)
