"""Federated login: an OpenID Connect relying party for several issuers at once (UmbrellaID, EGI
Check-in, ORCID, facility Keycloaks), browser sessions, and bearer JWTs from the same issuers.

Every authorization request is a single-use transaction bound to its issuer, with PKCE (S256), state
and nonce; the answer must come back with the issuer that was asked (RFC 9207 ``iss``, and the ID
token's ``iss``), which defeats mix-up. ID tokens and bearer tokens are verified against the issuer's
JWKS (fetched again when an unknown key id appears, so key rotation works).
"""
from __future__ import annotations

import base64
import hashlib
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
from broker.errors import BrokerError, NotFound
from broker.people import PeopleService
from broker.secretbox import SecretBox
from connectors.errors import UpstreamError
from connectors.http import HttpClient, json_body
from registry.models import LoginTransaction, RoleGrant, UserToken, WebSession, as_utc, utcnow
from registry.store import Store

TRANSACTION_TTL = timedelta(minutes=10)
SESSION_TTL = timedelta(hours=12)
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
    audience: str = ""  # expected `aud` of bearer tokens (default: client_id)
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
    for entry in json.loads(raw) if raw else []:
        entry = dict(entry)
        for key in ("admin_entitlements",):
            entry[key] = tuple(entry.get(key, ()))
        configured[entry["name"]] = IssuerConfig(**entry)
    merged = {i.name: i for i in DEFAULT_ISSUERS}
    merged.update(configured)
    return tuple(merged.values())


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything pointing elsewhere becomes '/' (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


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
    def start(self, issuer_name: str, next_url: str | None, link_person_id: str | None = None) -> str:
        """The URL to send the browser to; records the single-use transaction."""
        config = self.issuers.get(issuer_name)
        if config is None or not config.usable:
            raise NotFound(f"no sign-in with {issuer_name!r}; use one of {[i['name'] for i in self.available()]}")
        provider = self._provider(config)
        state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
        with self.store.session() as session:
            session.execute(delete(LoginTransaction).where(LoginTransaction.created_at < utcnow() - TRANSACTION_TTL))
            session.add(LoginTransaction(state=state, issuer=issuer_name, nonce=nonce, code_verifier=verifier,
                                         next_url=safe_next(next_url), link_person_id=link_person_id))
        query = {"response_type": "code", "client_id": config.client_id, "redirect_uri": self.redirect_uri,
                 "scope": config.scopes, "state": state, "nonce": nonce,
                 "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()), "code_challenge_method": "S256"}
        if "offline_access" in config.scopes.split():
            query["prompt"] = "consent"  # OpenID Connect grants offline access only with consent
        return f"{provider.metadata['authorization_endpoint']}?{urlencode(query)}"

    def finish(self, params: dict[str, str]) -> Login:
        """Complete a login from the callback's query; ``LoginRefused`` and no session otherwise."""
        if params.get("error"):
            raise LoginRefused(f"the identity provider refused: {params.get('error_description') or params['error']}")
        state, code = params.get("state", ""), params.get("code", "")
        with self.store.session() as session:
            transaction = session.get(LoginTransaction, state) if state else None
            if transaction is None:
                raise LoginRefused("unknown or already used state: start the sign-in again")
            session.delete(transaction)  # single use, whatever happens next
            issuer_name, nonce, verifier, next_url, link_person = (
                transaction.issuer, transaction.nonce, transaction.code_verifier, transaction.next_url,
                transaction.link_person_id)
            created = transaction.created_at
        if utcnow() - as_utc(created) > TRANSACTION_TTL:
            raise LoginRefused("the sign-in took too long: start it again")
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
        return Login(self._open_session(person_id, issuer_name, tokens["id_token"]), person_id, next_url)

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
        except (JoseError, ValueError, IndexError, TypeError) as exc:
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
    def _open_session(self, person_id: str, issuer: str, id_token: str) -> str:
        session_id = secrets.token_urlsafe(32)  # a new id at every sign-in: no session fixation
        with self.store.session() as session:
            session.add(WebSession(id_hash=hashlib.sha256(session_id.encode()).hexdigest(), person_id=person_id,
                                   issuer=issuer, id_token_encrypted=self.box.encrypt(id_token),
                                   expires_at=utcnow() + SESSION_TTL))
        return session_id

    def session_principal(self, session_id: str | None) -> Principal | None:
        if not session_id:
            return None
        with self.store.session() as session:
            found = session.get(WebSession, hashlib.sha256(session_id.encode()).hexdigest())
            if found is None:
                return None
            expires = as_utc(found.expires_at)
            if expires <= utcnow():
                session.delete(found)
                return None
            person_id = found.person_id
        return self.people.principal(person_id)

    def logout(self, session_id: str | None) -> str:
        """End the session; where to send the browser (the provider's logout page when it has one)."""
        if not session_id:
            return "/"
        with self.store.session() as session:
            found = session.get(WebSession, hashlib.sha256(session_id.encode()).hexdigest())
            if found is None:
                return "/"
            issuer, id_token = found.issuer, self.box.decrypt(found.id_token_encrypted or "") if \
                found.id_token_encrypted else None
            session.delete(found)
        config = self.issuers.get(issuer)
        end = self._provider(config).metadata.get("end_session_endpoint") if config and config.usable else None
        if not end:
            return "/"
        return f"{end}?{urlencode({'id_token_hint': id_token, 'post_logout_redirect_uri': self.public_url + '/'})}"

    # -- bearer JWTs ----------------------------------------------------------------------------
    def bearer_principal(self, token: str) -> Principal | None:
        """The person a JWT access token from a configured issuer stands for; None when unknown."""
        try:
            unverified = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        except (ValueError, IndexError):
            return None
        config = next((i for i in self.issuers.values() if i.usable and i.issuer == unverified.get("iss")), None)
        if config is None:
            return None
        try:
            claims = self._verify(config, token, audience=config.audience or config.client_id, nonce=None)
        except LoginRefused:
            return None
        subject = claims.get(config.subject_claim)
        known = self.people.find(config.name, str(subject)) if subject else None
        return self.people.principal(known["id"]) if known else None
