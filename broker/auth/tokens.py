"""Tokens beyond the browser session: the person's own tokens from an issuer, kept to call services on
their behalf, and bearer JWTs that API clients send.

ID tokens prove a sign-in to the broker only: an API bearer JWT must be an access token for the
issuer's configured API audience, which is never the broker's client id.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from broker.auth.issuers import Issuers
from broker.auth.oidc import LoginRefused, OidcClient, TokenSet, unverified_claims
from broker.authz import Principal
from panmodel.errors import NotFound
from broker.people import PeopleService
from broker.secretbox import SecretBox
from panmodel.clock import as_utc, utcnow
from registry.models import UserToken
from registry.store import Store

REFRESH_BEFORE = timedelta(seconds=60)
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


class UserTokens:
    """The person's tokens from each issuer, stored encrypted, refreshed and exchanged on demand."""

    def __init__(self, store: Store, box: SecretBox, oidc: OidcClient, issuers: Issuers):
        self.store = store
        self.box = box
        self.oidc = oidc
        self.issuers = issuers

    def keep(self, person_id: str, issuer_name: str, tokens: TokenSet) -> None:
        """Store (encrypted) the tokens a sign-in or a refresh brought."""
        with self.store.session() as session:
            row = session.get(UserToken, (person_id, issuer_name)) or UserToken(person_id=person_id,
                                                                                issuer=issuer_name)
            row.access_token_encrypted = self.box.encrypt(tokens.access_token)
            if tokens.refresh_token:
                row.refresh_token_encrypted = self.box.encrypt(tokens.refresh_token)
            row.expires_at = utcnow() + timedelta(seconds=tokens.expires_in)
            row.updated_at = utcnow()
            session.merge(row)

    def downstream_token(self, person_id: str, issuer_name: str, audience: str | None = None) -> str:
        """An access token of the person from ``issuer_name``, refreshed when about to expire; with
        ``audience``, exchanged (RFC 8693) for a token of that audience."""
        config = self.issuers.usable(issuer_name)
        if config is None:
            raise NotFound(f"no issuer {issuer_name!r} is configured")
        with self.store.session() as session:
            row = session.get(UserToken, (person_id, issuer_name))
            if row is None:
                raise LoginRefused(f"sign in with {config.title} first: the service needs your token from it")
            expires = as_utc(row.expires_at)
            access = self.box.decrypt(row.access_token_encrypted)
            refresh = self.box.decrypt(row.refresh_token_encrypted) if row.refresh_token_encrypted else None
        if expires - utcnow() < REFRESH_BEFORE:
            if not refresh:
                raise LoginRefused(f"your {config.title} session has expired: sign in again")
            tokens = self.oidc.request_token(config, "refresh_token", refresh_token=refresh)
            self.keep(person_id, issuer_name, tokens)
            access = tokens.access_token
        if not audience:
            return access
        return self.oidc.request_token(config, TOKEN_EXCHANGE, subject_token=access,
                                       subject_token_type=ACCESS_TOKEN_TYPE, requested_token_type=ACCESS_TOKEN_TYPE,
                                       audience=audience).access_token


def _looks_like_id_token(claims: dict[str, Any]) -> bool:
    """ID tokens carry what access tokens do not: a nonce, hashes of the code or access token, or
    Keycloak's ``typ: ID``."""
    return any(k in claims for k in ("nonce", "at_hash", "c_hash")) or claims.get("typ") == "ID"


class BearerTokens:
    """API clients' bearer JWTs from configured issuers, verified against the issuer's keys."""

    def __init__(self, oidc: OidcClient, people: PeopleService, issuers: Issuers):
        self.oidc = oidc
        self.people = people
        self.issuers = issuers

    def principal(self, token: str) -> Principal | None:
        """The person a JWT access token from a configured issuer stands for; None when unknown, malformed,
        or not an access token for the issuer's API audience (an ID token, whose audience is the broker's
        client id, never is)."""
        unverified = unverified_claims(token)
        config = self.issuers.by_iss(unverified.get("iss")) if unverified else None
        if config is None or not config.audience or config.audience == config.client_id:
            return None
        try:
            claims = self.oidc.verify_access_token(config, token, config.audience)
        except LoginRefused:
            return None
        if _looks_like_id_token(claims):
            return None
        subject = claims.get(config.subject_claim)
        known = self.people.find(config.name, str(subject)) if subject else None
        return self.people.principal(known["id"]) if known else None
