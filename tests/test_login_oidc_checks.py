"""The OpenID Connect client's checks, one fault at a time, against a scripted issuer on loopback whose
keys and token endpoint the test holds: every ID-token claim the code flow must check, a token endpoint
that hangs or answers garbage, a discovery document that lies, and the shape of the requests sent."""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
from joserfc import jwk, jwt
from werkzeug.wrappers import Request, Response

from broker.auth import oidc
from panbroker.app import build_broker, create_app
from connectors.http import HttpClient
from demo import federation as sim
from tests.conftest import make_settings
from tests.oidc_fixtures import BROKER

SECRET = "scripted-client-secret-7f3a"
KEY = jwk.RSAKey.generate_key(2048, private=True, parameters={"kid": "k1"})
STRANGER = jwk.RSAKey.generate_key(2048, private=True, parameters={"kid": "k1"})  # same kid, another key


@dataclass
class ScriptedIssuer:
    """Discovery, JWKS and a token endpoint whose answer each test scripts (``answer(request)``)."""

    issuer: str = ""
    discovery: dict[str, Any] = field(default_factory=dict)
    answer: Callable[[Request], Response] | None = None
    token_requests: list[tuple[dict[str, list[str]], dict[str, str]]] = field(default_factory=list)
    delay_discovery: float = 0.0

    def handle(self, request: Request) -> Response:
        if request.path == "/.well-known/openid-configuration":
            time.sleep(self.delay_discovery)
            return _json({"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/auth",
                          "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
                          **self.discovery})
        if request.path == "/jwks":
            return _json({"keys": [KEY.as_dict(private=False)]})
        if request.path == "/token":
            self.token_requests.append((parse_qs(request.get_data(as_text=True)), dict(request.headers)))
            return self.answer(request)
        return Response("not found", status=404)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


@pytest.fixture(scope="module")
def scripted():  # noqa: ANN201
    issuer = ScriptedIssuer()
    with sim.Federation() as fed:
        fed.add("idp", issuer.handle)
        fed.start()
        issuer.issuer = fed.url("idp")
        yield issuer


@pytest.fixture
def scripted_issuer(scripted):  # noqa: ANN001, ANN201
    scripted.discovery, scripted.answer, scripted.delay_discovery = {}, None, 0.0
    scripted.token_requests.clear()
    return scripted


@pytest.fixture(scope="module")
def built(scripted, tmp_path_factory):  # noqa: ANN001, ANN201
    config = {"name": "sim", "title": "Scripted IdP", "issuer": scripted.issuer, "client_id": "broker",
              "client_secret": SECRET, "scopes": "openid profile"}
    broker = build_broker(make_settings(tmp_path_factory.mktemp("oidc-checks"), public_url=BROKER,
                                        oidc_issuers=json.dumps([config])))
    yield broker, create_app(broker=broker)
    broker.index.close()


@pytest.fixture
def broker(built, scripted_issuer, monkeypatch):  # noqa: ANN001, ANN201
    """The module's broker with a fresh outbound client (its own circuit breakers) and no cached discovery."""
    broker = built[0]
    monkeypatch.setattr(broker.auth.oidc, "http", HttpClient(broker.http.policy, broker.http.limits))
    monkeypatch.setattr(broker.auth.oidc, "token_timeout", broker.auth.oidc.token_timeout)
    broker.auth.oidc._providers.clear()  # noqa: SLF001 - each test scripts its own discovery
    return broker


@pytest.fixture
def client(built, broker):  # noqa: ANN001, ANN201 - a new browser each (no cookies)
    return built[1].test_client(base_url=BROKER)


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def good_claims(issuer: str, nonce: str) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": issuer, "aud": "broker", "sub": "sam", "iat": now, "exp": now + 300, "nonce": nonce}


def token_answer(id_token: str | None, access_token: str = "at-1") -> Callable[[Request], Response]:
    body = {"access_token": access_token, "token_type": "Bearer", "expires_in": 300}
    return lambda _request: _json({**body, **({"id_token": id_token} if id_token else {})})


def sign_in(client, issuer: ScriptedIssuer, answer_for: Callable[[dict[str, str]], Callable]):  # noqa: ANN001, ANN201
    """Start a sign-in, script the token endpoint from the authorization request, and call back."""
    start = client.get("/auth/login/sim", follow_redirects=False)
    assert start.status_code == 302, start.text
    asked = query_of(start.headers["location"])
    issuer.answer = answer_for(asked)
    return client.get("/auth/callback", params={"code": "the-code", "state": asked["state"], "iss": issuer.issuer},
                      follow_redirects=False)


def signed(claims: dict[str, Any], key: jwk.RSAKey = KEY, header: dict[str, Any] | None = None) -> str:
    return jwt.encode(header or {"alg": "RS256", "kid": key.kid}, claims, key)


def assert_refused(response, *words: str) -> None:  # noqa: ANN001
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "panbroker_session" not in response.headers.get("set-cookie", "")
    detail = response.json()["detail"]
    for word in words:
        assert word in detail, detail
    assert SECRET not in detail


def test_a_good_id_token_signs_in(client, scripted_issuer, caplog):  # noqa: ANN001
    """The baseline every refusal below differs from by one thing."""
    caplog.set_level(logging.DEBUG)
    response = sign_in(client, scripted_issuer,
                       lambda asked: token_answer(signed(good_claims(scripted_issuer.issuer, asked["nonce"]))))
    assert response.status_code == 302 and "panbroker_session" in response.headers["set-cookie"]
    assert client.get("/api/v1/me").json()["person"]["identities"] == [{"issuer": "sim", "subject": "sam"}]
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("broker", "connectors"))
    assert "/token" in logged  # the broker's own client logged the call, and nothing secret with it
    assert SECRET not in logged and "at-1" not in logged and "the-code" not in logged


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _at_hash(access_token: str) -> str:
    return _b64(hashlib.sha256(access_token.encode()).digest()[:16])


ONE_FAULT = {  # what changes in the ID token -> words of the refusal
    "signed by a key not in the JWKS": (lambda c: signed(c, STRANGER), "token refused"),
    "a key id the JWKS does not hold": (lambda c: signed(c, header={"alg": "RS256", "kid": "k9"}), "token refused"),
    "wrong audience": (lambda c: signed({**c, "aud": "someone-else"}), "aud"),
    "audience list without the broker": (lambda c: signed({**c, "aud": ["a", "b"]}), "aud"),
    "expired": (lambda c: signed({**c, "exp": int(time.time()) - 3600}), "expired"),
    "nonce of another sign-in": (lambda c: signed({**c, "nonce": "not-this-one"}), "nonce"),
    "no nonce": (lambda c: signed({k: v for k, v in c.items() if k != "nonce"}), "nonce"),
    "another issuer than discovery's": (lambda c: signed({**c, "iss": "https://evil.example"}), "iss"),
    "no iat": (lambda c: signed({k: v for k, v in c.items() if k != "iat"}), "iat"),
    "authorised party another client": (lambda c: signed({**c, "aud": ["broker", "x"], "azp": "x"}), "azp"),
    "at_hash of another access token": (lambda c: signed({**c, "at_hash": _at_hash("other")}), "at_hash"),
    "alg none": (lambda c: _b64(b'{"alg":"none"}') + "." + _b64(json.dumps(c).encode()) + ".", "token refused"),
    "HS256 with the client secret": (lambda c: jwt.encode({"alg": "HS256"}, c, jwk.OctKey.import_key(SECRET)),
                                     "token refused"),
    "no subject": (lambda c: signed({k: v for k, v in c.items() if k != "sub"}), "sub"),
}


@pytest.mark.parametrize("fault", ONE_FAULT)
def test_an_id_token_with_one_fault_signs_nobody_in(client, scripted_issuer, fault):  # noqa: ANN001
    make, words = ONE_FAULT[fault]
    response = sign_in(client, scripted_issuer,
                       lambda asked: token_answer(make(good_claims(scripted_issuer.issuer, asked["nonce"]))))
    assert_refused(response, words)
    assert client.get("/api/v1/me").status_code == 401


def test_a_matching_at_hash_is_accepted(client, scripted_issuer):  # noqa: ANN001
    """The at_hash check is no blanket refusal of tokens that carry one."""
    response = sign_in(client, scripted_issuer, lambda asked: token_answer(signed(
        {**good_claims(scripted_issuer.issuer, asked["nonce"]), "at_hash": _at_hash("at-1")})))
    assert response.status_code == 302


def _hang(_request: Request) -> Response:
    time.sleep(3)
    return _json({})


BAD_TOKEN_ENDPOINT = {  # the token endpoint's answer -> words of the refusal
    "hangs": (_hang, "could not be asked for a token"),
    "answers an HTML page": (lambda r: Response("<html>maintenance</html>", content_type="text/html"),
                             "something other than a token"),
    "answers 500": (lambda r: Response("oops", status=500), "HTTP 500"),
    "answers a JSON list": (lambda r: _json(["access_token"]), "something other than a token"),
    "refuses the code": (lambda r: _json({"error": "invalid_grant", "error_description": "code used"}, 400),
                         "refused the code: code used"),
    "refuses with a description authlib will not carry": (
        lambda r: _json({"error": "invalid_grant", "error_description": 'bad "code" \\ é'}, 400), "Scripted IdP"),
    "answers no access token": (lambda r: _json({"token_type": "Bearer", "id_token": "x.y.z"}), "no access token"),
    "answers no ID token": (token_answer(None), "sent no ID token"),
    "redirects elsewhere": (lambda r: Response("", status=302, headers={"Location": "https://evil.example/t"}),
                            "something other than a token"),
}


@pytest.mark.parametrize("fault", BAD_TOKEN_ENDPOINT)
def test_a_token_endpoint_that_misbehaves_is_a_clear_refusal(client, broker, scripted_issuer, fault):  # noqa: ANN001
    answer, words = BAD_TOKEN_ENDPOINT[fault]
    broker.auth.oidc.token_timeout = 1.0
    started = time.monotonic()
    response = sign_in(client, scripted_issuer, lambda asked: answer)
    assert_refused(response, words)
    assert time.monotonic() - started < 2.5  # the hang is cut at the token timeout


def test_the_requests_carry_pkce_s256_state_nonce_and_client_auth(client, scripted_issuer):  # noqa: ANN001
    start = client.get("/auth/login/sim", params={"next": "/account"}, follow_redirects=False)
    asked = query_of(start.headers["location"])
    assert start.headers["location"].startswith(f"{scripted_issuer.issuer}/auth?")
    assert asked["code_challenge_method"] == "S256" and asked["response_type"] == "code"
    assert asked["client_id"] == "broker" and asked["redirect_uri"] == f"{BROKER}/auth/callback"
    assert asked["scope"] == "openid profile" and len(asked["state"]) >= 32 and len(asked["nonce"]) >= 32
    assert "code_verifier" not in asked and SECRET not in start.headers["location"]
    scripted_issuer.answer = token_answer(signed(good_claims(scripted_issuer.issuer, asked["nonce"])))
    done = client.get("/auth/callback", params={"code": "the-code", "state": asked["state"]}, follow_redirects=False)
    assert done.status_code == 302 and done.headers["location"] == "/account"
    form, headers = scripted_issuer.token_requests[-1]
    assert form["grant_type"] == ["authorization_code"] and form["code"] == ["the-code"]
    assert form["redirect_uri"] == [f"{BROKER}/auth/callback"]
    verifier = form["code_verifier"][0]
    assert _b64(hashlib.sha256(verifier.encode()).digest()) == asked["code_challenge"]
    assert headers["Authorization"] == "Basic " + base64.b64encode(f"broker:{SECRET}".encode()).decode()
    assert "client_secret" not in form


def test_a_discovery_document_naming_another_issuer_is_refused(client, scripted_issuer):  # noqa: ANN001
    scripted_issuer.discovery = {"issuer": "https://evil.example"}
    response = client.get("/auth/login/sim", follow_redirects=False)
    assert_refused(response, "names another issuer")


def test_a_discovery_that_hangs_is_a_clear_refusal(client, scripted_issuer, monkeypatch):  # noqa: ANN001
    monkeypatch.setattr(oidc, "DISCOVERY_TIMEOUT", 1.0)  # 5 s in use: the test waits out a shorter one
    scripted_issuer.delay_discovery = 8  # past the discovery timeout
    started = time.monotonic()
    response = client.get("/auth/login/sim", follow_redirects=False)
    assert_refused(response, "cannot be reached")
    assert time.monotonic() - started < 3


def test_the_token_request_goes_through_the_ssrf_guard(client, scripted_issuer):  # noqa: ANN001
    """A discovery document pointing the token endpoint at the cloud metadata address: nothing is sent."""
    scripted_issuer.discovery = {"token_endpoint": "http://169.254.169.254/token"}
    response = sign_in(client, scripted_issuer, lambda asked: token_answer("x.y.z"))
    assert_refused(response, "could not be asked for a token", "SSRF policy does not allow")
    assert scripted_issuer.token_requests == []
