"""Federated login: an OpenID Connect relying party for several issuers at once (UmbrellaID, EGI
Check-in, ORCID, facility Keycloaks), browser sessions, the person's own tokens and bearer JWTs.

One service per responsibility, wired here: ``login`` (the browser flow, ``login.py``), ``sessions``
(``sessions.py``), ``tokens`` (downstream tokens) and ``bearer`` (API JWTs) (``tokens.py``), all on one
OpenID Connect client (``oidc.py``: authlib over the broker's SSRF-guarded HTTP client).
"""
from __future__ import annotations

from broker.auth.issuers import DEFAULT_ISSUERS, IssuerConfig, Issuers, SignInChoice, load_issuers
from broker.auth.login import Login, LoginFlow, safe_next
from broker.auth.oidc import LoginRefused, OidcClient, TokenSet
from broker.auth.sessions import SessionInfo, SessionService
from broker.auth.tokens import BearerTokens, UserTokens
from broker.people import PeopleService
from broker.secretbox import SecretBox
from connectors.http import HttpClient
from registry.store import Store


class AuthService:
    """The auth services of one broker, sharing its issuers and its OpenID Connect client."""

    def __init__(self, store: Store, http: HttpClient, people: PeopleService, box: SecretBox,
                 issuers: tuple[IssuerConfig, ...], public_url: str):
        self.issuers = Issuers((i.name, i) for i in issuers)
        self.public_url = public_url.rstrip("/")
        self.box = box
        self.oidc = OidcClient(http)
        self.sessions = SessionService(store, people, self.oidc, self.issuers, self.public_url)
        self.tokens = UserTokens(store, box, self.oidc, self.issuers)
        self.bearer = BearerTokens(self.oidc, people, self.issuers)
        self.login = LoginFlow(store, people, self.oidc, self.issuers, self.sessions, self.tokens, self.public_url)

    def available(self) -> list[SignInChoice]:
        """The providers a person may sign in with now."""
        return self.issuers.choices()


__all__ = ["AuthService", "BearerTokens", "DEFAULT_ISSUERS", "IssuerConfig", "Issuers", "Login", "LoginFlow",
           "LoginRefused", "OidcClient", "SessionInfo", "SessionService", "SignInChoice", "TokenSet", "UserTokens",
           "load_issuers", "safe_next"]
