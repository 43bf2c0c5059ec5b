"""People, linked identities, roles and personal API tokens, through the API: operator scoping is
enforced on every registry write, and token secrets never show again."""
from __future__ import annotations

import logging

import pytest

from tests.conftest import ADMIN


@pytest.fixture
def world(sqlite_client):  # noqa: ANN001, ANN201
    for fid in ("esrf", "ill"):
        response = sqlite_client.post("/api/v1/facilities", headers=ADMIN, json={
            "id": fid, "name": fid.upper(), "country": "FR", "accepted_issuers": [f"{fid}-idp"]})
        assert response.status_code == 201
    sqlite_client.post("/api/v1/services", headers=ADMIN, json={"id": "ill-visa", "facility_id": "ill", "kind": "visa",
                                                              "title": "ILL VISA", "base_url": "https://visa.ill.example"})
    person = sqlite_client.post("/api/v1/people", headers=ADMIN, json={
        "display_name": "Olga Operator", "email": "olga@esrf.example",
        "identities": [{"issuer": "esrf-idp", "subject": "olga"}]}).json()
    granted = sqlite_client.post(f"/api/v1/people/{person['id']}/roles", headers=ADMIN,
                                 json={"role": "operator", "facility_id": "esrf"})
    assert granted.status_code == 200
    return person


def token_for(sqlite_broker, person_id: str) -> str:  # noqa: ANN001
    from broker.authz import Principal

    return sqlite_broker.people.issue_token(Principal("admin", admin=True), person_id, {"name": "script"})["token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_operator_writes_their_facility_and_is_refused_elsewhere(sqlite_client, sqlite_broker, world):  # noqa: ANN001
    olga = bearer(token_for(sqlite_broker, world["id"]))
    created = sqlite_client.post("/api/v1/services", headers=olga, json={
        "facility_id": "esrf", "kind": "jupyterhub", "title": "ESRF JupyterHub", "base_url": "https://hub.esrf.example"})
    assert created.status_code == 201
    refused = sqlite_client.patch("/api/v1/services/ill-visa", headers={**olga, "If-Match": '"1"'},
                                  json={"title": "Mine now"})
    assert refused.status_code == 403 and "ill" in refused.json()["detail"]
    assert sqlite_client.get("/api/v1/services/ill-visa").json()["title"] == "ILL VISA"
    assert sqlite_client.post("/api/v1/facilities", headers=olga, json={
        "id": "new", "name": "New", "country": "IT"}).status_code == 403
    audit = sqlite_client.get("/api/v1/audit?object_type=service", headers=ADMIN).json()["items"]
    assert audit[0]["actor"] == f"person:{world['id']}"


def test_me_shows_identities_roles_and_where_the_person_can_launch(sqlite_client, sqlite_broker, world):  # noqa: ANN001
    olga = bearer(token_for(sqlite_broker, world["id"]))
    me = sqlite_client.get("/api/v1/me", headers=olga).json()
    assert me["operator_of"] == ["esrf"] and me["admin"] is False
    assert me["person"]["identities"] == [{"issuer": "esrf-idp", "subject": "olga"}]
    assert me["launch_facilities"] == ["esrf"]
    linked = sqlite_client.post(f"/api/v1/people/{world['id']}/identities", headers=olga,
                                json={"issuer": "ill-idp", "subject": "olga.k"})
    assert linked.status_code == 200
    assert sqlite_client.get("/api/v1/me", headers=olga).json()["launch_facilities"] == ["esrf", "ill"]
    assert sqlite_client.get("/api/v1/me").status_code == 401


def test_the_account_page_shows_a_person_their_own_account_with_facilities_and_providers_by_name(sqlite_broker,  # noqa: ANN001
                                                                                                 world):
    from broker.account import AccountPages, FacilityRef, HeldRole, LinkedIdentity
    from broker.auth import SignInChoice
    from broker.authz import Principal
    from panmodel.errors import Forbidden

    offered = [SignInChoice("esrf-idp", "ESRF Keycloak"), SignInChoice("orcid", "ORCID")]
    pages = AccountPages(sqlite_broker.people, sqlite_broker.registry.facility_names, lambda: offered)
    view = pages.view(sqlite_broker.people.principal(world["id"]))
    assert (view.display_name, view.email) == ("Olga Operator", "olga@esrf.example")
    assert view.identities == (LinkedIdentity("ESRF Keycloak", "olga"),)
    assert view.linkable == (SignInChoice("orcid", "ORCID"),)  # not the provider she signs in with already
    assert view.roles == (HeldRole("operator", FacilityRef("esrf", "ESRF")),)
    assert view.launch_facilities == (FacilityRef("esrf", "ESRF"),)
    sqlite_broker.people.grant(Principal("admin", admin=True), world["id"], {"role": "admin"})
    sqlite_broker.people.link(Principal("admin", admin=True), world["id"], {"issuer": "gone-idp", "subject": "o"})
    view = pages.view(sqlite_broker.people.principal(world["id"]))
    assert HeldRole("admin", None) in view.roles  # an admin's role is of no facility
    assert view.identities[-1] == LinkedIdentity("gone-idp", "o")  # a provider no longer offered, by its name
    with pytest.raises(Forbidden):
        pages.view(Principal("admin", admin=True))  # a token or the CLI is no person: it has no account page


def test_the_last_identity_cannot_be_unlinked_and_an_identity_belongs_to_one_person(sqlite_client, world):  # noqa: ANN001
    url = f"/api/v1/people/{world['id']}/identities"
    last = sqlite_client.delete(url + "?issuer=esrf-idp&subject=olga", headers=ADMIN)
    assert last.status_code == 409 and "last identity" in last.json()["detail"]
    other = sqlite_client.post("/api/v1/people", headers=ADMIN, json={
        "display_name": "Impostor", "identities": [{"issuer": "esrf-idp", "subject": "olga"}]})
    assert other.status_code == 409
    sqlite_client.post(url, headers=ADMIN, json={"issuer": "orcid", "subject": "0000-0002-1825-0097"})
    removed = sqlite_client.delete(url + "?issuer=esrf-idp&subject=olga", headers=ADMIN)
    assert removed.status_code == 200 and removed.json()["identities"] == [
        {"issuer": "orcid", "subject": "0000-0002-1825-0097"}]


def test_tokens_are_shown_once_listed_without_secrets_and_refused_once_revoked(sqlite_client, sqlite_broker,
                                                                                world, caplog):  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    first = bearer(token_for(sqlite_broker, world["id"]))
    created = sqlite_client.post("/api/v1/me/tokens", headers=first, json={"name": "notebook", "expires_in_days": 7})
    assert created.status_code == 201
    secret = created.json()["token"]
    listed = sqlite_client.get("/api/v1/me/tokens", headers=first)
    assert secret not in listed.text and secret.split("_", 2)[2] not in listed.text
    assert {t["name"] for t in listed.json()["items"]} == {"script", "notebook"}
    assert sqlite_client.get("/api/v1/me", headers=bearer(secret)).status_code == 200
    assert sqlite_client.delete(f"/api/v1/me/tokens/{created.json()['id']}", headers=first).status_code == 204
    assert sqlite_client.get("/api/v1/me", headers=bearer(secret)).status_code == 401
    assert secret not in caplog.text and secret not in sqlite_client.get("/api/v1/audit", headers=ADMIN).text


@pytest.mark.parametrize("token", ["pbk_0000_nope", "pbk_garbage", "not-a-token"])
def test_unknown_or_malformed_tokens_are_401(sqlite_client, token):  # noqa: ANN001
    response = sqlite_client.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 401 and response.headers["content-type"].startswith("application/problem")


def test_an_expired_token_is_refused(sqlite_client, sqlite_broker, world):  # noqa: ANN001
    from datetime import timedelta

    from panmodel.clock import utcnow
    from registry.models import ApiToken

    raw = token_for(sqlite_broker, world["id"])
    with sqlite_broker.store.session() as session:
        session.get(ApiToken, raw.split("_", 2)[1]).expires_at = utcnow() - timedelta(seconds=1)
    assert sqlite_client.get("/api/v1/me", headers=bearer(raw)).status_code == 401


def test_roles_are_granted_and_revoked_by_admins_only(sqlite_client, sqlite_broker, world):  # noqa: ANN001
    olga = bearer(token_for(sqlite_broker, world["id"]))
    url = f"/api/v1/people/{world['id']}/roles"
    assert sqlite_client.post(url, headers=olga, json={"role": "admin"}).status_code == 403
    assert sqlite_client.post(url, headers=ADMIN, json={"role": "operator"}).status_code == 422
    assert sqlite_client.post(url, headers=ADMIN, json={"role": "operator", "facility_id": "atlantis"}).status_code == 422
    revoked = sqlite_client.delete(url + "?role=operator&facility_id=esrf", headers=ADMIN)
    assert revoked.status_code == 200 and revoked.json()["roles"] == []
    assert sqlite_client.get("/api/v1/me", headers=olga).json()["operator_of"] == []
    assert sqlite_client.get("/api/v1/people", headers=olga).status_code == 403
    assert sqlite_client.get("/api/v1/people", headers=ADMIN).json()["total"] == 1


def test_people_from_the_cli(tmp_path, monkeypatch):  # noqa: ANN001
    from click.testing import CliRunner

    from panbroker.cli import main

    monkeypatch.setenv("PANBROKER_DATA_DIR", str(tmp_path / "data"))
    run = CliRunner()
    assert run.invoke(main, ["facility", "add", "--set", "id=ess", "--set", "name=ESS", "--set", "country=SE"]).exit_code == 0
    added = run.invoke(main, ["person", "add", "--name", "Sam", "--identity", "umbrellaid:sam-123"])
    person_id = added.output.split()[-1]
    assert run.invoke(main, ["person", "grant", person_id, "operator", "--facility", "ess"]).exit_code == 0
    assert "operator@ess" in run.invoke(main, ["person", "list"]).output
    token = run.invoke(main, ["person", "token", person_id, "--name", "ci"]).output.strip()
    assert token.startswith("pbk_")
    bad = run.invoke(main, ["person", "add", "--name", "X", "--identity", "no-colon"])
    assert bad.exit_code != 0 and "issuer:subject" in bad.output
