"""Federated login against two real OpenID providers (npm oidc-provider): sign-in, sessions, logout,
linking, roles from entitlements, bearer JWTs, and every refusal the issue lists."""
from __future__ import annotations

import json
import logging
from urllib.parse import quote

import pytest
import requests

from panbroker.app import build_broker, create_app
from broker.authz import Principal
from broker.registry_kinds import KINDS
from tests.conftest import make_settings
from tests.oidc_fixtures import BROKER, CLIENT_SECRET, Browser, query_of, start_provider

pytestmark = pytest.mark.slow  # two real OpenID providers (npm oidc-provider)


@pytest.fixture(scope="module")
def providers():  # noqa: ANN201
    started = [start_provider("idp-a"), start_provider("idp-b")]
    yield {p.name: p for p in started}
    for provider in started:
        provider.process.kill()
        provider.process.wait(timeout=5)


@pytest.fixture
def broker(providers, tmp_path):  # noqa: ANN001, ANN201
    issuers = [providers["idp-a"].config(operator_entitlement_prefix="urn:panbroker:role:operator:"),
               providers["idp-b"].config()]
    built = build_broker(make_settings(tmp_path, public_url=BROKER, oidc_issuers=json.dumps(issuers)))
    built.registry.create(Principal("t", admin=True), KINDS.facility, {
        "id": "esrf", "name": "ESRF", "country": "FR", "accepted_issuers": ["idp-a"]})
    yield built
    built.index.close()


@pytest.fixture
def browser(broker):  # noqa: ANN001, ANN201
    return Browser(create_app(broker=broker).test_client(base_url=BROKER))


def me(browser):  # noqa: ANN001, ANN201
    return browser.client.get("/api/v1/me")


def test_sign_in_creates_a_person_and_a_session_then_logout_ends_it(browser, providers):  # noqa: ANN001
    assert me(browser).status_code == 401
    landed = browser.sign_in("idp-a", "alice", next_url="/api/v1/services")
    assert landed.status_code == 200 and landed.url.path == "/api/v1/services"
    cookie = browser.client.cookies.get("panbroker_session")
    assert cookie
    body = me(browser).json()
    assert body["person"]["identities"] == [{"issuer": "idp-a", "subject": "alice"}]
    assert body["person"]["display_name"] == "Test user alice" and body["launch_facilities"] == ["esrf"]
    assert browser.client.get("/auth/logout", follow_redirects=False).status_code == 405  # no logout by GET
    forged = browser.client.post("/auth/logout", data={"csrf_token": "x" * 64}, follow_redirects=False)
    assert forged.status_code == 403 and me(browser).status_code == 200  # a forged sign-out ends nothing
    out = browser.logout()
    assert out.status_code == 303 and out.headers["location"].startswith(providers["idp-a"].issuer + "/session/end")
    assert "client_id=broker" in out.headers["location"] and "token" not in out.headers["location"]
    browser.client.cookies.set("panbroker_session", cookie)  # the old cookie is dead server-side too
    assert me(browser).status_code == 401


def test_the_same_identity_signs_in_to_the_same_person_with_a_new_session_id(browser):  # noqa: ANN001
    browser.sign_in("idp-a", "bob")
    first_cookie, first = browser.client.cookies.get("panbroker_session"), me(browser).json()["person"]["id"]
    browser.sign_in("idp-a", "bob")
    assert me(browser).json()["person"]["id"] == first
    assert browser.client.cookies.get("panbroker_session") != first_cookie  # rotated at login


def test_linking_a_second_identity_and_unlinking(browser):  # noqa: ANN001
    browser.sign_in("idp-a", "carol")
    person = me(browser).json()["person"]
    linked = browser.link("idp-b", "carol-b")
    assert linked.status_code == 200 and linked.url.path == "/account"
    identities = me(browser).json()["person"]["identities"]
    assert {(i["issuer"], i["subject"]) for i in identities} == {("idp-a", "carol"), ("idp-b", "carol-b")}
    browser2 = Browser(browser.client)
    browser2.client.cookies.clear()
    browser2.sign_in("idp-b", "carol-b")
    assert me(browser2).json()["person"]["id"] == person["id"]  # either identity signs in the same person


def test_linking_needs_a_session(browser):  # noqa: ANN001
    assert browser.client.get("/auth/link/idp-b", follow_redirects=False).status_code == 401
    assert browser.client.post("/auth/link/idp-b", follow_redirects=False).status_code == 401


def test_linking_is_a_confirmed_post_with_the_pages_csrf_token(browser):  # noqa: ANN001
    browser.sign_in("idp-a", "gus")
    page = browser.client.get("/auth/link/idp-b")
    assert page.status_code == 200 and "Link a Provider idp-b identity to your account" in page.text
    for forged in ({}, {"csrf_token": "0" * 64}):
        assert browser.client.post("/auth/link/idp-b", data=forged, follow_redirects=False).status_code == 403
    cross_site = browser.client.post("/auth/link/idp-b", data={"csrf_token": browser.csrf()},
                                     headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert cross_site.status_code == 403
    assert len(me(browser).json()["person"]["identities"]) == 1


def test_linking_asks_for_a_fresh_sign_in_of_the_account_first(browser, broker):  # noqa: ANN001
    from datetime import timedelta

    from panmodel.clock import utcnow
    from registry.models import WebSession

    browser.sign_in("idp-a", "hal")
    with broker.store.session() as session:
        for row in session.query(WebSession):
            row.created_at = utcnow() - timedelta(minutes=30)  # signed in half an hour ago
    started = browser.start_link("idp-b")
    location = started.headers["location"]
    assert location.startswith(broker.auth.issuers["idp-a"].issuer) and "prompt=login" in location
    back = browser.go(location, "hal")  # signs in again at its own provider, back to the confirmation
    assert back.status_code == 200 and back.url.path == "/auth/link/idp-b"
    again = browser.start_link("idp-b")
    assert again.headers["location"].startswith(broker.auth.issuers["idp-b"].issuer)
    assert browser.go(again.headers["location"], "hal-b").status_code == 200
    assert {i["issuer"] for i in me(browser).json()["person"]["identities"]} == {"idp-a", "idp-b"}


def test_a_link_started_by_one_person_and_finished_by_another_links_nothing(browser, broker):  # noqa: ANN001
    """The attack of the issue: an operator starts linking, sends the provider URL to an admin; the
    admin's sign-in must not end up on the operator's account."""
    browser.sign_in("idp-a", "op-esrf-otto")
    started = browser.start_link("idp-a")  # the admin has an idp-a identity with admin entitlement
    victim = Browser(create_app(broker=broker).test_client(base_url=BROKER))
    refused = victim.go(started.headers["location"], "admin-vera")
    assert refused.status_code == 400 and "another browser" in refused.json()["detail"]
    operator = me(browser).json()
    assert operator["admin"] is False and [i["subject"] for i in operator["person"]["identities"]] == ["op-esrf-otto"]
    assert me(victim).status_code == 401


def test_a_callback_opened_in_another_browser_signs_nobody_in(browser, broker):  # noqa: ANN001
    """Login CSRF: the attacker's own callback URL, opened in the victim's browser."""
    attacker_callback = browser.callback_url("idp-a", "mallory")
    victim = Browser(create_app(broker=broker).test_client(base_url=BROKER))
    victim.client.get("/auth/login/idp-b", follow_redirects=False)  # the victim has a login cookie of its own
    response = victim.client.get(attacker_callback, follow_redirects=False)
    assert response.status_code == 400 and "another browser" in response.json()["detail"]
    assert "panbroker_session" not in response.headers.get("set-cookie", "")
    assert me(victim).status_code == 401


def test_an_id_token_is_never_an_api_credential(browser, broker, providers):  # noqa: ANN001
    seen = {}
    request_token = broker.auth.oidc.request_token  # to see the ID token the provider issued

    def keep(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen["tokens"] = request_token(*args, **kwargs)
        return seen["tokens"]

    broker.auth.oidc.request_token = keep
    browser.sign_in("idp-a", "ida")
    id_token = seen["tokens"].id_token
    anonymous = Browser(create_app(broker=broker).test_client(base_url=BROKER))
    assert me(anonymous).status_code == 401
    assert anonymous.client.get("/api/v1/me", headers={"Authorization": f"Bearer {id_token}"}).status_code == 401
    for audience in ("broker", "panbroker-api"):  # API audience unset, the client id itself, or another
        object.__setattr__(broker.auth.issuers["idp-a"], "audience", audience)
        assert anonymous.client.get("/api/v1/me", headers={"Authorization": f"Bearer {id_token}"}).status_code == 401


@pytest.mark.parametrize("token", ["a.W10.c", "a.bnVsbA.c", "a.Ig.c", "..", "a.%%%.c", "a.8J-YgA.c"])
def test_malformed_bearer_tokens_are_401(browser, token):  # noqa: ANN001
    response = browser.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_roles_follow_entitlements(browser):  # noqa: ANN001
    browser.sign_in("idp-a", "admin-dora")
    assert me(browser).json()["admin"] is True
    browser.client.cookies.clear()
    fresh = Browser(browser.client)  # a new browser: no session at the provider either
    fresh.sign_in("idp-a", "erin")
    assert me(fresh).json()["admin"] is False


@pytest.mark.parametrize("case", ["tampered-state", "replayed-state", "mix-up", "missing-iss", "provider-error"])
def test_bad_callbacks_are_refused_without_a_session(browser, providers, case):  # noqa: ANN001
    callback = browser.callback_url("idp-a", "mallory")
    params = query_of(callback)
    if case == "tampered-state":
        callback = callback.replace(params["state"], params["state"][:-2] + "xx")
    elif case == "mix-up":
        other = quote(providers["idp-b"].issuer, safe="")  # the answer claims to come from the other provider
        callback = callback.replace(f"iss={params['iss']}", f"iss={other}")
    elif case == "missing-iss":
        callback = callback.replace(f"&iss={params['iss']}", "").replace(f"iss={params['iss']}&", "")
    elif case == "provider-error":
        callback = f"/auth/callback?error=access_denied&state={params['state']}"
    elif case == "replayed-state":
        assert browser.client.get(callback, follow_redirects=False).status_code == 302
        browser.client.cookies.clear()
    response = browser.client.get(callback, follow_redirects=False)
    assert response.status_code == 400 and response.headers["content-type"].startswith("application/problem+json")
    assert "panbroker_session" not in response.headers.get("set-cookie", "")
    assert me(browser).status_code == 401


def test_a_wrong_nonce_is_refused(browser, broker):  # noqa: ANN001
    from registry.models import LoginTransaction

    callback = browser.callback_url("idp-a", "nina")
    with broker.store.session() as session:
        session.get(LoginTransaction, query_of(callback)["state"]).nonce = "not-the-nonce-sent"
    response = browser.client.get(callback, follow_redirects=False)
    assert response.status_code == 400 and "nonce" in response.json()["detail"]


def test_a_replayed_code_is_refused(browser):  # noqa: ANN001
    first = browser.callback_url("idp-a", "oscar")
    assert browser.client.get(first, follow_redirects=False).status_code == 302
    second = browser.callback_url("idp-a", "oscar")
    replay = second.replace(query_of(second)["code"], query_of(first)["code"])
    response = browser.client.get(replay, follow_redirects=False)
    assert response.status_code == 400 and "refused the code" in response.json()["detail"]


@pytest.mark.parametrize("target, expected", [("https://evil.example/", "/"), ("//evil.example/x", "/"),
                                              ("/api/v1/services?kind=visa", "/api/v1/services?kind=visa"),
                                              ("javascript:alert(1)", "/")])
def test_next_never_leaves_the_site(browser, target, expected):  # noqa: ANN001
    start = browser.client.get("/auth/login/idp-a", params={"next": target}, follow_redirects=False)
    callback = browser.go(start.headers["location"], "pat", stop_at_callback=True)
    response = browser.client.get(callback, follow_redirects=False)
    assert response.headers["location"] == expected


def test_an_unknown_issuer_is_refused(browser):  # noqa: ANN001
    assert browser.client.get("/auth/login/not-configured", follow_redirects=False).status_code == 404
    assert browser.client.get("/auth/login/orcid", follow_redirects=False).status_code == 404  # shipped disabled


def client_credentials_token(provider) -> str:  # noqa: ANN001
    response = requests.post(f"{provider.issuer}/token", data={"grant_type": "client_credentials"},
                             auth=("broker", CLIENT_SECRET), timeout=5)
    return response.json()["access_token"]


def test_bearer_tokens_that_are_not_jwts_from_a_known_key_are_refused(browser, providers):  # noqa: ANN001
    opaque = client_credentials_token(providers["idp-a"])  # oidc-provider issues opaque access tokens
    assert browser.client.get("/api/v1/me", headers={"Authorization": f"Bearer {opaque}"}).status_code == 401
    unsigned = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xIn0.sig"  # alg none
    assert browser.client.get("/api/v1/me", headers={"Authorization": f"Bearer {unsigned}"}).status_code == 401


def test_secrets_and_tokens_never_reach_the_logs(browser, caplog):  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    browser.sign_in("idp-a", "rita")
    cookie = browser.client.cookies.get("panbroker_session")
    assert cookie not in caplog.text and CLIENT_SECRET not in caplog.text
    assert CLIENT_SECRET not in browser.client.get("/auth/providers").text


def test_a_jwt_access_token_from_a_configured_issuer_is_accepted_and_key_rotation_followed(tmp_path):  # noqa: ANN001
    """An issuer whose keys the test holds (served on loopback): signature, iss, aud, exp, kid rotation."""
    import time

    from joserfc import jwk, jwt
    from werkzeug.wrappers import Response

    from demo import federation as sim

    keys = {"current": jwk.RSAKey.generate_key(2048, private=True, parameters={"kid": "k1"})}
    state = {}

    def issuer(request):  # noqa: ANN001, ANN202
        if request.path == "/.well-known/openid-configuration":
            return Response(json.dumps({"issuer": state["iss"], "jwks_uri": state["iss"] + "/jwks",
                                        "authorization_endpoint": state["iss"] + "/auth",
                                        "token_endpoint": state["iss"] + "/token"}), content_type="application/json")
        return Response(json.dumps({"keys": [keys["current"].as_dict(private=False)]}), content_type="application/json")

    with sim.Federation() as fed:
        fed.add("iss", issuer)
        fed.start()
        state["iss"] = fed.url("iss")
        config = {"name": "facility-kc", "title": "Facility Keycloak", "issuer": state["iss"], "client_id": "broker",
                  "client_secret": "x", "audience": "panbroker-api"}
        broker = build_broker(make_settings(tmp_path, public_url=BROKER, oidc_issuers=json.dumps([config])))
        broker.people.create(Principal("t", admin=True), {"display_name": "Kim", "identities": [
            {"issuer": "facility-kc", "subject": "kim"}]})
        client = create_app(broker=broker).test_client(base_url=BROKER)

        def token(key, **claims):  # noqa: ANN001, ANN003, ANN202
            body = {"iss": state["iss"], "aud": "panbroker-api", "sub": "kim", "exp": int(time.time()) + 300, **claims}
            return {"Authorization": "Bearer " + jwt.encode({"alg": "RS256", "kid": key.kid}, body, key)}

        assert client.get("/api/v1/me", headers=token(keys["current"])).json()["person"]["display_name"] == "Kim"
        assert client.get("/api/v1/me", headers=token(keys["current"], aud="other")).status_code == 401
        assert client.get("/api/v1/me", headers=token(keys["current"], exp=1000)).status_code == 401
        assert client.get("/api/v1/me", headers=token(keys["current"], sub="nobody")).status_code == 401
        # an ID token of this issuer, even one naming the API audience, is no API credential
        assert client.get("/api/v1/me", headers=token(keys["current"], nonce="n")).status_code == 401
        assert client.get("/api/v1/me", headers=token(keys["current"], typ="ID")).status_code == 401
        old = keys["current"]
        keys["current"] = jwk.RSAKey.generate_key(2048, private=True, parameters={"kid": "k2"})
        broker.auth.oidc.key_refetch_seconds = 0  # skip the 10 s refetch guard
        assert client.get("/api/v1/me", headers=token(keys["current"])).status_code == 200  # rotated in
        assert client.get("/api/v1/me", headers=token(old)).status_code == 401  # rotated out
        broker.index.close()


def test_the_users_tokens_are_kept_encrypted_refreshed_and_usable_downstream(browser, broker, providers):  # noqa: ANN001
    from datetime import timedelta

    from panmodel.clock import utcnow
    from registry.models import UserToken

    browser.sign_in("idp-a", "uma")
    person_id = me(browser).json()["person"]["id"]
    token = broker.auth.tokens.downstream_token(person_id, "idp-a")
    userinfo = f"{providers['idp-a'].issuer}/me"
    assert requests.get(userinfo, headers={"Authorization": f"Bearer {token}"}, timeout=5).json()["sub"] == "uma"
    with broker.store.session() as session:
        row = session.get(UserToken, (person_id, "idp-a"))
        assert token not in row.access_token_encrypted and row.refresh_token_encrypted
        row.expires_at = utcnow() - timedelta(seconds=1)
    refreshed = broker.auth.tokens.downstream_token(person_id, "idp-a")
    assert refreshed != token
    assert requests.get(userinfo, headers={"Authorization": f"Bearer {refreshed}"}, timeout=5).json()["sub"] == "uma"
    with pytest.raises(Exception, match="sign in with Provider idp-b first"):
        broker.auth.tokens.downstream_token(person_id, "idp-b")


def test_token_exchange_request_shape(tmp_path):  # noqa: ANN001
    """RFC 8693 at a facility Keycloak (no such provider runs here: the request shape is checked)."""
    import responses
    from urllib.parse import parse_qs

    from panmodel.clock import utcnow
    from registry.models import UserToken
    from datetime import timedelta

    issuer = "https://kc.facility.example/realms/pan"
    config = {"name": "facility-kc", "title": "Facility Keycloak", "issuer": issuer, "client_id": "broker",
              "client_secret": "kc-secret"}
    broker = build_broker(make_settings(tmp_path, public_url=BROKER, oidc_issuers=json.dumps([config])))
    person = broker.people.create(Principal("t", admin=True), {"display_name": "Vic", "identities": [
        {"issuer": "facility-kc", "subject": "vic"}]})
    with broker.store.session() as session:
        session.add(UserToken(person_id=person["id"], issuer="facility-kc",
                              access_token_encrypted=broker.auth.box.encrypt("user-access-token"),
                              expires_at=utcnow() + timedelta(hours=1)))
    with responses.RequestsMock() as mock:
        mock.get(f"{issuer}/.well-known/openid-configuration", json={
            "issuer": issuer, "token_endpoint": f"{issuer}/token", "authorization_endpoint": f"{issuer}/auth",
            "jwks_uri": f"{issuer}/certs"})
        mock.post(f"{issuer}/token", json={"access_token": "visa-audience-token", "token_type": "Bearer",
                                           "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"})
        assert broker.auth.tokens.downstream_token(person["id"], "facility-kc", audience="visa") == "visa-audience-token"
        sent = mock.calls[-1].request
        form = parse_qs(sent.body)
        assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:token-exchange"]
        assert form["subject_token"] == ["user-access-token"] and form["audience"] == ["visa"]
        assert form["subject_token_type"] == ["urn:ietf:params:oauth:token-type:access_token"]
        assert sent.headers["Authorization"].startswith("Basic ")
    broker.index.close()


def test_an_operator_signed_in_through_the_provider_writes_only_their_facility(browser, broker):  # noqa: ANN001
    """Roles from entitlements, end to end: sign in, create a personal token, write the registry with it."""
    broker.registry.create(Principal("t", admin=True), KINDS.facility, {"id": "ill", "name": "ILL", "country": "FR"})
    browser.sign_in("idp-a", "op-esrf-olga")
    assert me(browser).json()["operator_of"] == ["esrf"]
    issued = browser.client.post("/api/v1/me/tokens", json={"name": "my script"})
    assert issued.status_code == 201
    script = {"Authorization": f"Bearer {issued.json()['token']}"}
    browser.client.cookies.clear()
    service = {"kind": "jupyterhub", "title": "Hub", "base_url": "https://hub.example"}
    assert browser.client.post("/api/v1/services", headers=script,
                               json={**service, "facility_id": "esrf"}).status_code == 201
    refused = browser.client.post("/api/v1/services", headers=script, json={**service, "facility_id": "ill"})
    assert refused.status_code == 403
