"""Federated login: an OpenID Connect relying party for several issuers at once (UmbrellaID, EGI
Check-in, ORCID, facility Keycloaks), browser sessions, and bearer JWTs from the same issuers.

Every authorization request is a single-use transaction bound to its issuer and to the browser that
started it (a hash of a random cookie set then), with PKCE (S256), state and nonce; the answer must come
back to that browser, with the issuer that was asked (RFC 9207 ``iss``, and the ID token's ``iss``), which
defeats login CSRF and mix-up. Linking a second identity needs a recent sign-in of the account it joins.
ID tokens prove a sign-in to the broker only: an API bearer JWT must be an access token for the
configured API audience. Tokens are verified against the issuer's JWKS (fetched again when an unknown key
id appears, so key rotation works).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from joserfc import jwk, jwt
from joserfc.errors import JoseError
from sqlalchemy import delete, select

from broker.authz import Principal
from panmodel.errors import BrokerError, ConfigurationError, NotFound
from broker.people import PeopleService
from broker.secretbox import SecretBox
from connectors.errors import UpstreamError
from connectors.http import HttpClient, json_body
from panmodel.clock import as_utc, utcnow
from registry.models import LoginTransaction, RoleGrant, UserToken, WebSession
from registry.store import Store

TRANSACTION_TTL = timedelta(minutes=10)
SESSION_TTL = timedelta(hours=12)
LINK_FRESHNESS = timedelta(minutes=5)  # linking an identity needs a sign-in at most this old
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]  # never "none" or HMAC


class LoginRefused(BrokerError):
    """A login or token that must not be accepted; nothing was created."""

    status = 400
    title = "Login refused"
    type_suffix = "login-refused"


@dataclass(frozen=True)
class IssuerConfig:
    name: str
    title: str
    issuer: str  # the exact `iss` value; discovery is {issuer}/.well-known/openid-configuration
    client_id: str = ""
    client_secret: str = ""
    scopes: str = "openid profile email"
    subject_claim: str = "sub"
    entitlements_claim: str = "eduperson_entitlement"
    audience: str = ""  # `aud` of API access tokens; empty: bearer JWTs from this issuer are not accepted
    admin_entitlements: tuple[str, ...] = ()
    operator_entitlement_prefix: str = ""  # e.g. "urn:panbroker:role:operator:" + facility id
    enabled: bool = True

    @property
    def usable(self) -> bool:
        return self.enabled and bool(self.client_id)


# Shipped disabled: they need credentials (and UmbrellaID's OIDC issuer must be confirmed per deployment)
DEFAULT_ISSUERS = (
    IssuerConfig("umbrellaid", "UmbrellaID", "https://umbrellaid.org", enabled=False),
    IssuerConfig("egi-checkin", "EGI Check-in", "https://aai.egi.eu/auth/realms/egi",
                 scopes="openid profile email voperson_id eduperson_entitlement", subject_claim="voperson_id",
                 enabled=False),
    IssuerConfig("orcid", "ORCID", "https://orcid.org", scopes="openid", enabled=False),
)


def load_issuers(raw: str) -> tuple[IssuerConfig, ...]:
    """Issuers from PANBROKER_OIDC_ISSUERS (a JSON list); entries replace the defaults of the same name."""
    configured = {}
    try:
        for entry in json.loads(raw) if raw else []:
            entry = dict(entry)
            for key in ("admin_entitlements",):
                entry[key] = tuple(entry.get(key, ()))
            configured[entry["name"]] = IssuerConfig(**entry)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigurationError(f"PANBROKER_OIDC_ISSUERS: {exc} (a JSON list of objects with name, title, "
                                 "issuer, client_id, ...)") from exc
    merged = {i.name: i for i in DEFAULT_ISSUERS}
    merged.update(configured)
    return tuple(merged.values())


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything pointing elsewhere becomes '/' (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


def _looks_like_id_token(claims: dict[str, Any]) -> bool:
    """ID tokens carry what access tokens do not: a nonce, hashes of the code or access token, or
    Keycloak's ``typ: ID``."""
    return any(k in claims for k in ("nonce", "at_hash", "c_hash")) or claims.get("typ") == "ID"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class _Provider:
    metadata: dict[str, Any]
    keys: Any = None
    fetched_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Login:
    session_id: str
    person_id: str
    next_url: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class AuthService:
    def __init__(self, store: Store, http: HttpClient, people: PeopleService, box: SecretBox,
                 issuers: tuple[IssuerConfig, ...], public_url: str):
        self.store = store
        self.http = http
        self.people = people
        self.box = box
        self.issuers = {i.name: i for i in issuers}
        self.public_url = public_url.rstrip("/")
        self._providers: dict[str, _Provider] = {}
        self._lock = threading.Lock()

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/auth/callback"

    def available(self) -> list[dict[str, str]]:
        return [{"name": i.name, "title": i.title} for i in self.issuers.values() if i.usable]

    # -- provider metadata and keys -------------------------------------------------------------
    def _provider(self, config: IssuerConfig) -> _Provider:
        with self._lock:
            provider = self._providers.get(config.name)
        if provider is not None:
            return provider
        try:
            response = self.http.get(f"{config.issuer.rstrip('/')}/.well-known/openid-configuration", timeout=5)
            metadata = json_body(response)
        except UpstreamError as exc:
            raise LoginRefused(f"{config.title} cannot be reached: {exc.detail}") from exc
        if not isinstance(metadata, dict) or metadata.get("issuer") != config.issuer:
            raise LoginRefused(f"{config.title}'s discovery document names another issuer")
        provider = _Provider(metadata)
        with self._lock:
            self._providers[config.name] = provider
        return provider

    def _keys(self, config: IssuerConfig, kid: str | None) -> Any:
        provider = self._provider(config)
        with provider.lock:
            known = provider.keys is not None and (kid is None or any(
                k.get("kid") == kid for k in provider.keys.as_dict()["keys"]))
            # an unknown key id means rotation: fetch again, but not more than once every 10 s
            if not known and time.monotonic() - provider.fetched_at > 10:
                try:
                    provider.keys = jwk.KeySet.import_key_set(json_body(self.http.get(provider.metadata["jwks_uri"],
                                                                                      timeout=5)))
                except (UpstreamError, ValueError, JoseError) as exc:
                    raise LoginRefused(f"{config.title}'s signing keys cannot be read") from exc
                provider.fetched_at = time.monotonic()
            return provider.keys

    # -- browser login ------------------------------------------------------------------------
    def start(self, issuer_name: str, next_url: str | None, browser: str, link_person_id: str | None = None,
              fresh: bool = False) -> str:
        """The URL to send the browser to; records the single-use transaction, bound to ``browser`` (the
        secret of the cookie the caller sets on that browser). ``fresh`` asks the provider to sign in
        again even when it holds a session."""
        config = self.issuers.get(issuer_name)
        if config is None or not config.usable:
            raise NotFound(f"no sign-in with {issuer_name!r}; use one of {[i['name'] for i in self.available()]}")
        if not browser:
            raise LoginRefused("the sign-in must be started by a browser")
        provider = self._provider(config)
        state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
        with self.store.session() as session:
            session.execute(delete(LoginTransaction).where(LoginTransaction.created_at < utcnow() - TRANSACTION_TTL))
            session.add(LoginTransaction(state=state, issuer=issuer_name, nonce=nonce, code_verifier=verifier,
                                         next_url=safe_next(next_url), link_person_id=link_person_id,
                                         browser_hash=_hash(browser)))
        query = {"response_type": "code", "client_id": config.client_id, "redirect_uri": self.redirect_uri,
                 "scope": config.scopes, "state": state, "nonce": nonce,
                 "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()), "code_challenge_method": "S256"}
        if fresh:
            query.update(prompt="login", max_age="0")
        if "offline_access" in config.scopes.split():
            query["prompt"] = " ".join(filter(None, [query.get("prompt"), "consent"]))  # offline access needs it
        return f"{provider.metadata['authorization_endpoint']}?{urlencode(query)}"

    def finish(self, params: dict[str, str], browser: str | None, session_id: str | None = None) -> Login:
        """Complete a login from the callback's query in the browser (login cookie secret ``browser``,
        current session ``session_id``) that started it; ``LoginRefused`` and no session otherwise."""
        if params.get("error"):
            raise LoginRefused(f"the identity provider refused: {params.get('error_description') or params['error']}")
        state, code = params.get("state", ""), params.get("code", "")
        with self.store.session() as session:
            transaction = session.get(LoginTransaction, state) if state else None
            if transaction is None:
                raise LoginRefused("unknown or already used state: start the sign-in again")
            session.delete(transaction)  # single use, whatever happens next
            issuer_name, nonce, verifier, next_url, link_person, bound = (
                transaction.issuer, transaction.nonce, transaction.code_verifier, transaction.next_url,
                transaction.link_person_id, transaction.browser_hash)
            created = transaction.created_at
        if not browser or not bound or not hmac.compare_digest(bound, _hash(browser)):
            raise LoginRefused("this sign-in was started in another browser: start it again here")
        if utcnow() - as_utc(created) > TRANSACTION_TTL:
            raise LoginRefused("the sign-in took too long: start it again")
        if link_person is not None:
            current = self._session_row(session_id)
            if current is None or current[0] != link_person:
                raise LoginRefused("linking must end in the session that started it: sign in and link again")
        config = self.issuers[issuer_name]
        provider = self._provider(config)
        if params.get("iss") is not None and params["iss"] != config.issuer:
            raise LoginRefused("the answer comes from another issuer than the one asked (mix-up refused)")
        if params.get("iss") is None and provider.metadata.get("authorization_response_iss_parameter_supported"):
            raise LoginRefused("the answer lacks the issuer its provider always sends (mix-up refused)")
        if not code:
            raise LoginRefused("the answer carries no authorization code")
        tokens = self._exchange(config, code, verifier)
        claims = self._verify(config, tokens.get("id_token", ""), audience=config.client_id, nonce=nonce)
        subject = claims.get(config.subject_claim)
        if not subject:
            raise LoginRefused(f"the ID token has no {config.subject_claim!r} claim")
        person_id = self._person(config, str(subject), claims, link_person)
        self._sync_entitlements(config, person_id, claims)
        self._keep_tokens(person_id, issuer_name, tokens)
        return Login(self._open_session(person_id, issuer_name), person_id, next_url)

    def _exchange(self, config: IssuerConfig, code: str, verifier: str) -> dict[str, Any]:
        try:
            body = self._token_request(config, {"grant_type": "authorization_code", "code": code,
                                                "redirect_uri": self.redirect_uri, "code_verifier": verifier})
        except LoginRefused as exc:
            raise LoginRefused(exc.detail.replace("refused the token request", "refused the code")) from exc
        if "id_token" not in body:
            raise LoginRefused(f"{config.title} sent no ID token")
        return body

    def _verify(self, config: IssuerConfig, token: str, *, audience: str, nonce: str | None) -> dict[str, Any]:
        try:
            header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
            decoded = jwt.decode(token, self._keys(config, header.get("kid")), algorithms=ALGORITHMS)
            jwt.JWTClaimsRegistry(
                leeway=30, iss={"essential": True, "value": config.issuer}, aud={"essential": True, "value": audience},
                exp={"essential": True},
                **({"nonce": {"essential": True, "value": nonce}} if nonce is not None else {}),
            ).validate(decoded.claims)
        except (JoseError, ValueError, IndexError, TypeError, AttributeError) as exc:
            raise LoginRefused(f"token refused: {getattr(exc, 'description', None) or exc}") from exc
        return dict(decoded.claims)

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
        values = claims.get(config.entitlements_claim) or []
        values = [values] if isinstance(values, str) else list(values)
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

    # -- the user's own tokens, for services that must be called on their behalf --------------
    def _keep_tokens(self, person_id: str, issuer_name: str, tokens: dict[str, Any]) -> None:
        if not tokens.get("access_token"):
            return
        with self.store.session() as session:
            row = session.get(UserToken, (person_id, issuer_name)) or UserToken(person_id=person_id,
                                                                                issuer=issuer_name)
            row.access_token_encrypted = self.box.encrypt(tokens["access_token"])
            if tokens.get("refresh_token"):
                row.refresh_token_encrypted = self.box.encrypt(tokens["refresh_token"])
            row.expires_at = utcnow() + timedelta(seconds=int(tokens.get("expires_in") or 300))
            row.updated_at = utcnow()
            session.merge(row)

    def downstream_token(self, person_id: str, issuer_name: str, audience: str | None = None) -> str:
        """An access token of the person from ``issuer_name``, refreshed when about to expire; with
        ``audience``, exchanged (RFC 8693) for a token of that audience."""
        config = self.issuers.get(issuer_name)
        if config is None or not config.usable:
            raise NotFound(f"no issuer {issuer_name!r} is configured")
        with self.store.session() as session:
            row = session.get(UserToken, (person_id, issuer_name))
            if row is None:
                raise LoginRefused(f"sign in with {config.title} first: the service needs your token from it")
            expires = as_utc(row.expires_at)
            access = self.box.decrypt(row.access_token_encrypted)
            refresh = self.box.decrypt(row.refresh_token_encrypted) if row.refresh_token_encrypted else None
        if expires - utcnow() < timedelta(seconds=60):
            if not refresh:
                raise LoginRefused(f"your {config.title} session has expired: sign in again")
            tokens = self._token_request(config, {"grant_type": "refresh_token", "refresh_token": refresh})
            self._keep_tokens(person_id, issuer_name, tokens)
            access = tokens["access_token"]
        if not audience:
            return access
        exchanged = self._token_request(config, {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": access,
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "requested_token_type": "urn:ietf:params:oauth:token-type:access_token", "audience": audience})
        return exchanged["access_token"]

    def _token_request(self, config: IssuerConfig, form: dict[str, str]) -> dict[str, Any]:
        provider = self._provider(config)
        basic = base64.b64encode(f"{config.client_id}:{config.client_secret}".encode()).decode()
        try:
            response = self.http.request("POST", provider.metadata["token_endpoint"], timeout=10, form=form,
                                         headers={"Authorization": f"Basic {basic}"})
            body = json_body(response)
        except UpstreamError as exc:
            raise LoginRefused(f"{config.title} could not be asked for a token: {exc.detail}") from exc
        if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
            reason = (body.get("error_description") or body.get("error")) if isinstance(body, dict) else None
            raise LoginRefused(f"{config.title} refused the token request" + (f": {reason}" if reason else ""))
        return body

    # -- sessions -----------------------------------------------------------------------------
    def _open_session(self, person_id: str, issuer: str) -> str:
        session_id = secrets.token_urlsafe(32)  # a new id at every sign-in: no session fixation
        with self.store.session() as session:
            session.add(WebSession(id_hash=_hash(session_id), person_id=person_id, issuer=issuer,
                                   expires_at=utcnow() + SESSION_TTL))
        return session_id

    def _session_row(self, session_id: str | None) -> tuple[str, str, Any] | None:
        """(person id, issuer, signed-in time) of a live session."""
        if not session_id:
            return None
        with self.store.session() as session:
            found = session.get(WebSession, _hash(session_id))
            if found is None or as_utc(found.expires_at) <= utcnow():
                return None
            return found.person_id, found.issuer, as_utc(found.created_at)

    def link_start(self, session_id: str | None, issuer_name: str, next_url: str | None, browser: str) -> str:
        """Where to send a signed-in browser that confirmed linking an identity from ``issuer_name``: that
        provider, asked for a fresh sign-in, when the account's own sign-in is recent; otherwise a fresh
        sign-in of the account itself first, coming back to the confirmation."""
        current = self._session_row(session_id)
        if current is None:
            raise LoginRefused("linking an identity needs the session of the first one: sign in first")
        person_id, own_issuer, signed_in = current
        if utcnow() - signed_in > LINK_FRESHNESS and own_issuer in self.issuers:
            back = f"/auth/link/{issuer_name}" + (f"?{urlencode({'next': safe_next(next_url)})}" if next_url else "")
            return self.start(own_issuer, back, browser, fresh=True)
        return self.start(issuer_name, next_url, browser, link_person_id=person_id, fresh=True)

    def session_principal(self, session_id: str | None) -> Principal | None:
        if not session_id:
            return None
        with self.store.session() as session:
            found = session.get(WebSession, _hash(session_id))
            if found is None:
                return None
            expires = as_utc(found.expires_at)
            if expires <= utcnow():
                session.delete(found)
                return None
            person_id = found.person_id
        return self.people.principal(person_id)

    def logout(self, session_id: str | None) -> str:
        """End the session; where to send the browser (the provider's logout page when it has one). No
        token travels in that URL: the provider is told the client, not shown the ID token."""
        if not session_id:
            return "/"
        with self.store.session() as session:
            found = session.get(WebSession, _hash(session_id))
            if found is None:
                return "/"
            issuer = found.issuer
            session.delete(found)
        config = self.issuers.get(issuer)
        try:
            end = self._provider(config).metadata.get("end_session_endpoint") if config and config.usable else None
        except LoginRefused:
            end = None  # the provider is down: the broker's own session is over all the same
        if not end:
            return "/"
        return f"{end}?{urlencode({'client_id': config.client_id, 'post_logout_redirect_uri': self.public_url + '/'})}"

    # -- bearer JWTs ----------------------------------------------------------------------------
    def bearer_principal(self, token: str) -> Principal | None:
        """The person a JWT access token from a configured issuer stands for; None when unknown, malformed,
        or not an access token for the broker's API audience (an ID token, whose audience is the broker's
        client id, never is)."""
        try:
            unverified = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        except (ValueError, IndexError, UnicodeDecodeError):
            return None
        if not isinstance(unverified, dict):
            return None
        config = next((i for i in self.issuers.values() if i.usable and i.issuer == unverified.get("iss")), None)
        if config is None or not config.audience or config.audience == config.client_id:
            return None
        try:
            claims = self._verify(config, token, audience=config.audience, nonce=None)
        except LoginRefused:
            return None
        if _looks_like_id_token(claims):
            return None
        subject = claims.get(config.subject_claim)
        known = self.people.find(config.name, str(subject)) if subject else None
        return self.people.principal(known["id"]) if known else None
