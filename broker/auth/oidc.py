"""The OpenID Connect client of the broker: authlib builds the authorization request (PKCE S256, state,
nonce), makes the token requests and validates ID-token and access-token claims; every byte travels
through the broker's own outbound client (``connectors.http``: SSRF guard, timeouts, breaker, size cap).

What authlib has no client side for stays here: discovery is fetched through that client and must name
the configured issuer (authlib's metadata models insist on https, which loopback peers in tests and the
demo are not), and the issuer's keys are cached and fetched again when an unknown key id appears, at
most every ``key_refetch_seconds`` (authlib would fetch on every unknown ``kid``).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlencode

import requests
from authlib.common.urls import url_decode
from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.claims import JWTClaims
from authlib.oauth2.client import OAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from broker.auth.issuers import IssuerConfig
from panmodel.errors import BrokerError
from connectors.errors import UpstreamError
from connectors.http import HttpClient, json_body

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]  # never "none" or HMAC
LEEWAY_SECONDS = 30
KEY_REFETCH_SECONDS = 10.0
DISCOVERY_TIMEOUT = 5.0
TOKEN_TIMEOUT = 10.0


class LoginRefused(BrokerError):
    """A login or token that must not be accepted; nothing was created."""

    status = 400
    title = "Login refused"
    type_suffix = "login-refused"


@dataclass(frozen=True)
class TokenSet:
    """What a token endpoint answered; the tokens never show in a repr (logs, tracebacks)."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)
    expires_in: int = 300

    @classmethod
    def from_answer(cls, body: Mapping[str, Any]) -> TokenSet:
        try:
            expires_in = int(body.get("expires_in") or 300)
        except (TypeError, ValueError):
            expires_in = 300
        return cls(str(body["access_token"]), _text(body.get("refresh_token")), _text(body.get("id_token")),
                   expires_in)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass
class _Provider:
    metadata: dict[str, Any]
    keys: KeySet | None = None
    fetched_at: float = float("-inf")
    lock: threading.Lock = field(default_factory=threading.Lock)


class _GuardedSession:
    """The one thing authlib's ``OAuth2Client`` asks of its session, a form POST, sent through the
    broker's outbound client; authlib's client authentication (``client_secret_basic``) is applied here
    as requests would apply it."""

    def __init__(self, http: HttpClient, timeout: float):
        self.http = http
        self.timeout = timeout

    def post(self, url: str, data: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
             auth: Any = None, **_: Any) -> requests.Response:
        body, sent_headers = urlencode(dict(data or {})), dict(headers or {})
        if auth is not None:
            url, sent_headers, body = auth.prepare("POST", url, sent_headers, body)
        return self.http.request("POST", url, headers=sent_headers, form=dict(url_decode(body)),
                                 timeout=self.timeout)


class OidcClient:
    """One relying party towards every configured issuer; thread-safe."""

    def __init__(self, http: HttpClient):
        self.http = http
        self.token_timeout = TOKEN_TIMEOUT
        self.key_refetch_seconds = KEY_REFETCH_SECONDS
        self._providers: dict[str, _Provider] = {}
        self._lock = threading.Lock()

    # -- discovery and keys -------------------------------------------------------------------
    def metadata(self, config: IssuerConfig) -> dict[str, Any]:
        """The issuer's discovery document (fetched once); ``LoginRefused`` when it cannot be read or
        names another issuer (mix-up)."""
        return self._provider(config).metadata

    def _provider(self, config: IssuerConfig) -> _Provider:
        with self._lock:
            provider = self._providers.get(config.name)
        if provider is not None:
            return provider
        try:
            metadata = json_body(self.http.get(f"{config.issuer.rstrip('/')}/.well-known/openid-configuration",
                                               timeout=DISCOVERY_TIMEOUT))
        except UpstreamError as exc:
            raise LoginRefused(f"{config.title} cannot be reached: {exc.detail}") from exc
        if not isinstance(metadata, dict) or metadata.get("issuer") != config.issuer:
            raise LoginRefused(f"{config.title}'s discovery document names another issuer")
        for needed in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(metadata.get(needed), str):
                raise LoginRefused(f"{config.title}'s discovery document has no {needed}")
        with self._lock:
            return self._providers.setdefault(config.name, _Provider(metadata))

    def _keys(self, config: IssuerConfig, kid: str | None) -> KeySet:
        provider = self._provider(config)
        with provider.lock:
            known = provider.keys is not None and (kid is None or any(
                k.kid == kid for k in provider.keys.keys))
            # an unknown key id means rotation: fetch again, but not more than once every few seconds
            if not known and time.monotonic() - provider.fetched_at > self.key_refetch_seconds:
                try:
                    document = json_body(self.http.get(provider.metadata["jwks_uri"], timeout=DISCOVERY_TIMEOUT))
                    provider.keys = KeySet.import_key_set(document)
                except (UpstreamError, ValueError, TypeError, KeyError, JoseError) as exc:
                    raise LoginRefused(f"{config.title}'s signing keys cannot be read") from exc
                finally:
                    provider.fetched_at = time.monotonic()
            if provider.keys is None:
                raise LoginRefused(f"{config.title}'s signing keys cannot be read")
            return provider.keys

    # -- the authorization request and the token endpoint --------------------------------------
    def authorization_url(self, config: IssuerConfig, *, redirect_uri: str, state: str, nonce: str,
                          code_verifier: str, **extra: str) -> str:
        """Where to send the browser: authorization code flow with PKCE (S256), ``state`` and ``nonce``."""
        client = OAuth2Client(None, client_id=config.client_id, redirect_uri=redirect_uri, scope=config.scopes,
                              code_challenge_method="S256")
        url, _state = client.create_authorization_url(self.metadata(config)["authorization_endpoint"], state=state,
                                                      code_verifier=code_verifier, nonce=nonce, **extra)
        return url

    def request_token(self, config: IssuerConfig, grant_type: str, **params: str) -> TokenSet:
        """One token request (authorization code, refresh, RFC 8693 exchange) with the client's secret;
        ``LoginRefused`` saying why when the endpoint is unreachable, slow, refuses or answers garbage."""
        client = OAuth2Client(_GuardedSession(self.http, self.token_timeout), client_id=config.client_id,
                              client_secret=config.client_secret, token_endpoint_auth_method="client_secret_basic")
        endpoint = self.metadata(config)["token_endpoint"]
        try:
            body = client.fetch_token(endpoint, grant_type=grant_type, **params)
        except UpstreamError as exc:
            raise LoginRefused(f"{config.title} could not be asked for a token: {exc.detail}") from exc
        except OAuth2Error as exc:
            reason = exc.description or exc.error
            raise LoginRefused(f"{config.title} refused the token request" + (f": {reason}" if reason else "")) from exc
        except requests.HTTPError as exc:
            raise LoginRefused(f"{config.title} could not be asked for a token: HTTP "
                               f"{exc.response.status_code if exc.response is not None else '?'}") from exc
        except (ValueError, TypeError) as exc:  # authlib: not a JSON object; a description it will not carry
            raise LoginRefused(f"{config.title} answered the token request with something other than a token") from exc
        if not isinstance(body.get("access_token"), str) or not body["access_token"]:
            raise LoginRefused(f"{config.title} refused the token request: no access token in its answer")
        return TokenSet.from_answer(body)

    # -- token validation ---------------------------------------------------------------------
    def verify_id_token(self, config: IssuerConfig, tokens: TokenSet, nonce: str) -> dict[str, Any]:
        """The claims of the ID token of a code flow: signed by a key of the issuer's JWKS, for this client
        (``aud``, ``azp``), from this issuer, unexpired, with this login's nonce and a matching ``at_hash``."""
        if not tokens.id_token:
            raise LoginRefused(f"{config.title} sent no ID token")
        header, claims = self._decode(config, tokens.id_token)
        options = {"iss": {"essential": True, "value": config.issuer},
                   "aud": {"essential": True, "value": config.client_id}, "exp": {"essential": True}}
        params = {"nonce": nonce, "client_id": config.client_id, "access_token": tokens.access_token}
        return self._validate(CodeIDToken(claims, header, options, params))

    def verify_access_token(self, config: IssuerConfig, token: str, audience: str) -> dict[str, Any]:
        """The claims of a JWT access token of this issuer for ``audience``: signature, iss, aud, exp."""
        header, claims = self._decode(config, token)
        options = {"iss": {"essential": True, "value": config.issuer},
                   "aud": {"essential": True, "value": audience}, "exp": {"essential": True}}
        return self._validate(JWTClaims(claims, header, options))

    def _decode(self, config: IssuerConfig, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            kid = jws.extract_compact(token.encode()).protected.get("kid")
            decoded = jwt.decode(token, self._keys(config, kid if isinstance(kid, str) else None),
                                 algorithms=ALGORITHMS)
        except (JoseError, ValueError, TypeError, AttributeError) as exc:
            raise LoginRefused(f"token refused: {_why(exc)}") from exc
        return dict(decoded.header), dict(decoded.claims)

    @staticmethod
    def _validate(claims: JWTClaims) -> dict[str, Any]:
        try:
            claims.validate(leeway=LEEWAY_SECONDS)
        except (JoseError, ValueError, TypeError) as exc:
            raise LoginRefused(f"token refused: {_why(exc)}") from exc
        return dict(claims)

    def end_session_url(self, config: IssuerConfig, post_logout_redirect_uri: str) -> str | None:
        """The provider's logout page for this client, or None (no such page, or the provider is down).
        No token travels in it: the provider is told the client, not shown the ID token."""
        try:
            end = self.metadata(config).get("end_session_endpoint")
        except LoginRefused:
            return None
        if not isinstance(end, str) or not end:
            return None
        query = {"client_id": config.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        return f"{end}?{urlencode(query)}"


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload of a compact JWS before any check (only to pick the issuer whose keys verify it)."""
    try:
        claims = json.loads(jws.extract_compact(token.encode()).payload)
    except (JoseError, ValueError, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None


def _why(exc: BaseException) -> str:
    return str(getattr(exc, "description", None) or exc)[:200]
