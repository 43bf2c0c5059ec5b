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
