"""Registry writes check the writer's rights: admins anything, an operator only their facility."""
from __future__ import annotations

import pytest

from broker.authz import Principal
from panmodel.errors import Forbidden
from broker.registry_kinds import KINDS
from broker.registry_service import Precondition

ADMIN = Principal("admin", admin=True)
ESRF_OPERATOR = Principal("esrf-operator", operator_of=frozenset({"esrf"}))


@pytest.fixture
def registry(sqlite_broker):  # noqa: ANN001, ANN201
    registry = sqlite_broker.registry
    for fid in ("esrf", "ill"):
        registry.create(ADMIN, KINDS.facility, {"id": fid, "name": fid.upper(), "country": "FR"})
    registry.create(ADMIN, KINDS.service, {"id": "ill-visa", "facility_id": "ill", "kind": "visa",
                                           "title": "ILL VISA", "base_url": "https://visa.ill.example"})
    return registry


def test_an_operator_registers_and_edits_services_of_their_own_facility(registry):  # noqa: ANN001
    created = registry.create(ESRF_OPERATOR, KINDS.service, {"facility_id": "esrf", "kind": "jupyterhub",
                                                             "title": "ESRF hub", "base_url": "https://hub.esrf.example"})
    registry.update(ESRF_OPERATOR, KINDS.service, created["id"], {"title": "ESRF JupyterHub"},
                    Precondition(1, True), partial=True)
    registry.create(ESRF_OPERATOR, KINDS.eosc_entry, {"service_id": created["id"], "status": "in-progress"})
    assert registry.audit_log(object_id=created["id"]).items[0]["actor"] == "esrf-operator"


def test_an_operator_cannot_touch_another_facility(registry):  # noqa: ANN001
    with pytest.raises(Forbidden, match="ill"):
        registry.update(ESRF_OPERATOR, KINDS.service, "ill-visa", {"title": "mine now"},
                        Precondition(1, True), partial=True)
    with pytest.raises(Forbidden):
        registry.delete(ESRF_OPERATOR, KINDS.service, "ill-visa", Precondition(1, True))
    with pytest.raises(Forbidden):
        registry.create(ESRF_OPERATOR, KINDS.eosc_entry, {"service_id": "ill-visa"})
    with pytest.raises(Forbidden):
        registry.create(ESRF_OPERATOR, KINDS.service, {"facility_id": "ill", "kind": "visa", "title": "x",
                                                       "base_url": "https://x.example"})
    assert registry.get(KINDS.service, "ill-visa")["title"] == "ILL VISA"


def test_an_operator_cannot_move_a_service_to_another_facility(registry):  # noqa: ANN001
    created = registry.create(ESRF_OPERATOR, KINDS.service, {"facility_id": "esrf", "kind": "visa", "title": "v",
                                                             "base_url": "https://visa.esrf.example"})
    with pytest.raises(Forbidden):
        registry.update(ESRF_OPERATOR, KINDS.service, created["id"], {"facility_id": "ill"},
                        Precondition(1, True), partial=True)


def test_only_admins_create_facilities_or_read_the_audit_log(registry):  # noqa: ANN001
    with pytest.raises(Forbidden):
        registry.create(ESRF_OPERATOR, KINDS.facility, {"id": "new", "name": "New", "country": "IT"})
    with pytest.raises(Forbidden):
        Principal("anonymous").require_write("esrf")


def test_registry_wide_reads_and_actions_are_the_admins(registry, sqlite_broker):  # noqa: ANN001
    assert registry.audit_log_as(ADMIN).total == 3
    assert registry.audit_log_as(ESRF_OPERATOR, facility_id="esrf").total == 1  # its facility's changes
    for facility_id in (None, "ill"):
        with pytest.raises(Forbidden):
            registry.audit_log_as(ESRF_OPERATOR, facility_id=facility_id)
    with pytest.raises(Forbidden):
        sqlite_broker.people.list_as(ESRF_OPERATOR)
    assert sqlite_broker.people.list_as(ADMIN) == []
    with pytest.raises(Forbidden):
        sqlite_broker.health.check_all_as(ESRF_OPERATOR)


def test_a_person_acts_for_themselves_and_an_admin_for_anyone():
    ada = Principal("person:ada")
    assert ada.person_id == "ada" and ada.require_person() == "ada" and ada.may_act_for("ada")
    assert not ada.may_act_for("bob") and not ada.may_act_for(None) and ADMIN.may_act_for("bob")
    with pytest.raises(Forbidden, match="not a person"):
        ADMIN.require_person()
    with pytest.raises(Forbidden, match="themselves"):
        ada.require_act_for("bob")


def test_the_api_answers_as_before_now_that_the_services_decide(sqlite_client, sqlite_broker):  # noqa: ANN001
    from tests.conftest import ADMIN as ADMIN_TOKEN

    sqlite_client.post("/api/v1/facilities", headers=ADMIN_TOKEN, json={"id": "esrf", "name": "ESRF", "country": "FR",
                                                                        "accepted_issuers": ["idp"]})
    person = sqlite_broker.people.create(ADMIN, {"display_name": "Olga", "identities": [{"issuer": "idp",
                                                                                         "subject": "olga"}]})
    sqlite_broker.people.grant(ADMIN, person["id"], {"role": "operator", "facility_id": "esrf"})
    olga = {"Authorization": "Bearer " + sqlite_broker.people.issue_token(ADMIN, person["id"], {"name": "t"})["token"]}
    for method, path in (("get", "/api/v1/audit"), ("get", "/api/v1/people"), ("post", "/api/v1/health")):
        refused = getattr(sqlite_client, method)(path, headers=olga)
        assert refused.status_code == 403 and "may not change the registry" in refused.json()["detail"], path
        assert getattr(sqlite_client, method)(path).status_code == 401, path
    audit = sqlite_client.get("/api/v1/audit", headers=ADMIN_TOKEN).json()["items"]
    assert ("facility", "esrf") in {(e["object_type"], e["object_id"]) for e in audit}
    assert sqlite_client.get("/api/v1/people", headers=ADMIN_TOKEN).json()["total"] == 1
    not_a_person = sqlite_client.get("/api/v1/me/tokens", headers=ADMIN_TOKEN)
    assert not_a_person.status_code == 403 and "is not a person" in not_a_person.json()["detail"]
    assert sqlite_client.post("/api/v1/me/tokens", headers=ADMIN_TOKEN, json={"name": "x"}).status_code == 403
    assert [t["name"] for t in sqlite_client.get("/api/v1/me/tokens", headers=olga).json()["items"]] == ["t"]
