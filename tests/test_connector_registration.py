"""A connector joins the broker by its module and its entry point alone: every installed compute-service kind
is in the API's enum, registers through the API with its simulator's configuration, is listed and filtered in
the catalogue, is offered in the operator's form, and is ranked by routing."""
from __future__ import annotations

import pytest

from broker.launch.routing import Candidate, rank
from broker.launch.schemas import LaunchRequestSchema
from connectors import kinds, kinds_with
from connectors.base import Capability
from demo.simulators import simulators
from panmodel.states import TargetType
from tests.conftest import ADMIN
from web.operator_pages import FORMS

SERVICE_KINDS = kinds(TargetType.SERVICE)


@pytest.mark.parametrize("kind", SERVICE_KINDS)
def test_a_service_kind_registers_and_is_listed_in_the_catalogue(sqlite_client, kind: str) -> None:  # noqa: ANN001
    spec = sqlite_client.get("/api/v1/openapi.json").json()
    assert kind in spec["components"]["schemas"]["ServiceKind"]["enum"]
    assert sqlite_client.post("/api/v1/facilities", json={"id": "fac", "name": "Facility", "country": "FR"},
                              headers=ADMIN).status_code == 201
    config = simulators()[kind].peer().config
    created = sqlite_client.post("/api/v1/services", headers=ADMIN, json={
        "id": f"fac-{kind}", "facility_id": "fac", "kind": kind, "title": f"A {kind}",
        "base_url": "https://compute.facility.example", "launch_mode": "deeplink", "connector_config": config})
    assert created.status_code == 201, created.text
    listed = sqlite_client.get("/api/v1/catalogue", params={"kind": kind})
    assert listed.status_code == 200 and [s["id"] for s in listed.json()["items"]] == [f"fac-{kind}"], listed.text
    by_kind = sqlite_client.get("/api/v1/services", params={"kind": kind}).json()["items"]
    assert [s["id"] for s in by_kind] == [f"fac-{kind}"]


def test_an_unknown_kind_is_refused_naming_the_installed_ones(sqlite_client) -> None:  # noqa: ANN001
    refused = sqlite_client.get("/api/v1/catalogue", params={"kind": "no-such-kind"})
    assert refused.status_code in (400, 422) and refused.headers["content-type"].startswith("application/problem")
    assert LaunchRequestSchema().validate({"dataset": "x", "kind": "no-such-kind"})["kind"]


@pytest.mark.parametrize("kind", SERVICE_KINDS)
def test_a_service_kind_is_offered_in_the_operator_form_and_in_launch_requests(kind: str) -> None:
    choices = next(f.choices for f in FORMS["services"].fields if f.name == "kind")
    assert kind in choices
    assert LaunchRequestSchema().validate({"dataset": "10.5291/x", "kind": kind}) == {}


def test_routing_ranks_every_launch_kind_by_its_connector_preference() -> None:
    launchers = kinds_with(Capability.LAUNCH)
    assert set(launchers) == set(SERVICE_KINDS)
    fitting = [Candidate(f"s-{kind}", "fac", kind, True, "fits") for kind in reversed(launchers)]
    assert rank(fitting, None).kind == launchers[0]
    assert rank(fitting, launchers[-1]).kind == launchers[-1]  # the kind asked for comes first
