"""EOSC catalogue: the connector's request shapes; sync, push and completeness against the simulated Resource
Catalogue (demo/eosc_catalogue.py, built from the catalogue's behaviour: bare vs bundle reads, its validator,
server-made PIDs, the onboarding wait, versions, AAI tokens); the discovery API."""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
import requests
import responses
from click.testing import CliRunner

from panbroker.app import build_broker, create_app
from broker.authz import Principal
from broker.registry_kinds import KINDS
from broker.seeding import import_registry, read_file
from connectors.eosc import (CatalogueRefused, EoscCatalogueClient, NotInCatalogue, OnboardingPending,
                             TokenSource, bundle_path, resource_path)
from connectors.http import HttpClient, HttpLimits
from connectors.ssrf import AddressPolicy
from demo import federation as sim
from demo.eosc_catalogue import SimulatedCatalogue, website
from tests.conftest import ADMIN, make_settings

ACTOR = Principal("test", admin=True)
SEED = Path(__file__).resolve().parent.parent / "registry" / "seed" / "panosc.yaml"
CATALOGUE = "https://catalogue.eosc.example/api"
PROVIDER = "21.T15999/ILL001"
PID = re.compile(r"^21\.T15999/[A-Za-z0-9]{6}$")


def _patch(broker, kind, key, values):  # noqa: ANN001, ANN202
    return broker.registry.update(ACTOR, kind, key, {**values, "version": broker.registry.get(kind, key)["version"]},
                                  None, partial=True)


def _http() -> HttpClient:
    return HttpClient(AddressPolicy(), HttpLimits(retries=0))


# -- connector ---------------------------------------------------------------------------------

def test_resource_ids_of_every_api_version_map_to_their_bare_and_bundle_paths():
    assert resource_path("21.T15999/ill-visa") == "/service/21.T15999/ill-visa"
    assert resource_path("ill.visa") == "/service/ill.visa"
    assert resource_path("ill", "provider") == "/provider/ill"
    assert resource_path("21.T15999/ill", "provider") == "/provider/21.T15999/ill"
    assert bundle_path("ill.visa", "v5") == "/serviceBundle/ill.visa"
    assert bundle_path("21.T15999/x", "v5", "21.T15999/ILL001") == "/service/byProvider/21.T15999/ILL001"
    assert bundle_path("21.T15999/x", "v6") == "/service/bundle/21.T15999/x"
    with pytest.raises(ValueError):
        bundle_path("21.T15999/x", "v5")  # v5 lists bundles per provider
    with pytest.raises(ValueError):
        resource_path("not an id")


@responses.activate
def test_the_client_reads_a_provider_and_reports_a_missing_one():
    responses.get(f"{CATALOGUE}/provider/21.T15999/ill", json={
        "id": "21.T15999/ill", "name": "Institut Laue-Langevin", "abbreviation": "ILL", "website": "https://www.ill.eu"})
    responses.get(f"{CATALOGUE}/provider/esrf", status=404, json={"error": "not found"})
    client = EoscCatalogueClient(_http(), CATALOGUE)
    provider = client.provider("21.T15999/ill")
    assert (provider.abbreviation, provider.status) == ("ILL", None)
    with pytest.raises(NotInCatalogue):
        client.provider("esrf")


@responses.activate
def test_bare_reads_carry_no_status_and_bundle_reads_renew_an_expired_token_once():
    responses.get(f"{CATALOGUE}/service/21.T15999/x", json={"id": "21.T15999/x", "name": "X"})
    responses.get(f"{CATALOGUE}/service/byProvider/21.T15999/P", status=401, json={"error": "expired"})
    responses.get(f"{CATALOGUE}/service/byProvider/21.T15999/P", json={"total": 2, "from": 0, "to": 1, "results": [
        {"id": "21.T15999/y", "service": {"id": "21.T15999/y", "name": "Y"}, "status": "approved resource"}]})
    responses.get(f"{CATALOGUE}/service/byProvider/21.T15999/P", json={"total": 2, "from": 1, "to": 2, "results": [
        {"id": "21.T15999/x", "service": {"id": "21.T15999/x", "name": "X", "version": "2"},
         "status": "pending resource", "active": False, "suspended": False, "draft": False,
         "auditState": "Not audited"}]})
    responses.post("https://aai.example/token", json={"access_token": "a1", "expires_in": 3600, "refresh_token": "r2"})
    responses.post("https://aai.example/token", json={"access_token": "a2", "expires_in": 3600, "refresh_token": "r3"})
    rotated = []
    tokens = TokenSource(_http(), "https://aai.example/token", refresh_token="r1", client_id="broker",
                         on_rotate=rotated.append)
    client = EoscCatalogueClient(_http(), CATALOGUE)
    bare = client.service("21.T15999/x")
    assert (bare.name, bare.has_status, bare.onboarding_status) == ("X", False, None)
    bundle = client.bundle("21.T15999/x", tokens, "21.T15999/P", page_size=1)
    assert (bundle.onboarding_status, bundle.active, bundle.audit_state, bundle.version) == (
        "pending resource", False, "Not audited", "2")
    listed = [c.request for c in responses.calls if "byProvider" in c.request.url]
    assert [r.headers.get("Authorization") for r in listed] == ["Bearer a1", "Bearer a2", "Bearer a2"]
    assert "from=1" in listed[2].url and rotated == ["r2", "r3"]
    assert "refresh_token=r1" in responses.calls[1].request.body


@responses.activate
def test_the_client_pages_lists_and_translates_the_catalogues_refusals():
    responses.get(f"{CATALOGUE}/service/all", json={"total": 3, "from": 0, "to": 2,
                                                    "results": [{"id": "a.1"}, {"id": "a.2"}]})
    responses.get(f"{CATALOGUE}/service/all", json={"total": 3, "from": 2, "to": 3, "results": [{"id": "a.3"}]})
    responses.post(f"{CATALOGUE}/service/validate", status=400, json={"error": "Field 'logo' is mandatory."})
    responses.post(f"{CATALOGUE}/service", status=409, json={
        "error": "Provider 'p' already has a resource waiting for approval by the onboarding team; you cannot add "
                 "another one until it is reviewed."})
    client = EoscCatalogueClient(_http(), CATALOGUE)
    assert [s.id for s in client.services(page_size=2)] == ["a.1", "a.2", "a.3"]
    token = TokenSource(_http(), "", static_token="tok")
    with pytest.raises(CatalogueRefused, match="Field 'logo' is mandatory"):
        client.validate({"name": "New"}, token)
    with pytest.raises(OnboardingPending):
        client.create({"name": "New"}, token)
    assert responses.calls[-1].request.headers["Authorization"] == "Bearer tok"


# -- the simulated catalogue on its own -------------------------------------------------------

@pytest.fixture
def world(tmp_path):  # noqa: ANN001, ANN201
    """The catalogue, ILL's public website, and a broker whose ILL facility is an approved provider."""
    catalogue = SimulatedCatalogue()
    with sim.Federation() as fed:
        fed.add("eosc", catalogue)
        fed.add("web", website({"/visa": 200, "/logo.png": 200, "/terms": 200, "/privacy": 200, "/app": 401,
                                "/slow-terms": 200}, slow={"/slow-terms": 1.0}))
        fed.start()
        # ILL has registered as a provider and not yet submitted its first service (the onboarding template)
        catalogue.add_provider(PROVIDER, "Institut Laue-Langevin", "ILL", onboarded=False, admins=("ada@ill",))
        catalogue.add_provider("21.T15999/ESRF01", "ESRF", "ESRF", admins=("eve@esrf",))
        refresh = catalogue.add_user("ada@ill")
        broker = build_broker(make_settings(tmp_path, eosc_catalogue_url=fed.url("eosc"),
                                            eosc_token_url=fed.url("eosc") + "/token"))
        web = fed.url("web")
        broker.registry.create(ACTOR, KINDS.facility, {
            "id": "ill", "name": "ILL", "country": "FR", "contact_email": "visa@ill.example",
            "eosc_provider_id": PROVIDER, "eosc_credential": refresh,
            "eosc_main_contact": {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@ill.example"},
            "eosc_security_email": "csirt@ill.example"})
        for sid, title in (("ill-visa", "ILL VISA"), ("ill-hub", "ILL JupyterHub"), ("ill-desk", "ILL desktops")):
            broker.registry.create(ACTOR, KINDS.service, {
                "id": sid, "facility_id": "ill", "kind": "visa", "title": title, "base_url": f"{web}/app",
                "description": f"{title}: analysis of ILL data next to the data."})
            broker.registry.create(ACTOR, KINDS.eosc_entry, {
                "service_id": sid, "webpage": f"{web}/visa", "logo": f"{web}/logo.png", "tagline": "Analyse ILL data",
                "terms_of_use": f"{web}/terms", "privacy_policy": f"{web}/privacy"})
        yield broker, catalogue, fed, refresh
        broker.index.close()


def test_the_simulated_catalogue_hides_inactive_services_and_bundles_from_non_admins(world):  # noqa: ANN001
    _, catalogue, fed, _ = world
    catalogue.add("21.T15999/pend01", {"name": "P", "resourceOrganisation": PROVIDER}, status="pending resource",
                  active=False)
    base = fed.url("eosc")
    stranger = catalogue.issue_token("eve@esrf")
    assert requests.get(f"{base}/service/21.T15999/pend01", timeout=5).status_code == 403
    assert requests.get(f"{base}/service/byProvider/{PROVIDER}", timeout=5).status_code == 401
    assert requests.get(f"{base}/service/byProvider/{PROVIDER}", timeout=5,
                        headers={"Authorization": f"Bearer {stranger}"}).status_code == 403
    admin = catalogue.issue_token("ada@ill")
    assert requests.get(f"{base}/service/21.T15999/pend01", timeout=5,
                        headers={"Authorization": f"Bearer {admin}"}).json() == {
        "id": "21.T15999/pend01", "name": "P", "resourceOrganisation": PROVIDER}  # bare: no status in it
    page = requests.get(f"{base}/service/byProvider/{PROVIDER}", timeout=5,
                        headers={"Authorization": f"Bearer {admin}"}).json()
    assert page["results"][0]["status"] == "pending resource" and page["results"][0]["service"]["name"] == "P"
    refused = requests.post(f"{base}/service/validate", json={"name": "P"}, timeout=5)
    assert refused.status_code == 400 and refused.json()["error"] == "Field 'id' is mandatory."


# -- status sync from the bundle ---------------------------------------------------------------

@pytest.mark.parametrize(("bundle", "expected"), [
    ({"status": "approved resource", "active": True}, "registered"),
    ({"status": "pending resource", "active": False}, "in-progress"),
    ({"status": "rejected resource", "active": False}, "rejected"),
    ({"status": "approved resource", "active": True, "suspended": True}, "suspended"),
    ({"status": "approved resource", "active": False}, "inactive"),
    ({"status": "pending resource", "active": False, "draft": True}, "in-progress"),
])
def test_sync_maps_every_bundle_state_read_with_the_provider_token(world, bundle, expected):  # noqa: ANN001
    broker, catalogue, _, _ = world
    catalogue.add("21.T15999/VIS001", {"name": "ILL VISA", "resourceOrganisation": PROVIDER}, **bundle)
    _patch(broker, KINDS.eosc_entry, "ill-visa", {"resource_id": "21.T15999/VIS001",
                                                                "status": "registered"})
    event = broker.eosc.sync("ill-visa")
    entry = broker.registry.get(KINDS.eosc_entry, "ill-visa")
    assert event["outcome"] == "ok" and entry["status"] == expected
    assert entry["catalogue"]["onboarding_status"] == bundle["status"]
    assert entry["catalogue"]["active"] == bundle["active"] and entry["catalogue"]["audit_state"] == "Not audited"
    assert ("GET", f"/service/byProvider/{PROVIDER}", "ada@ill") in catalogue.requests


def test_sync_reports_drift_audits_changes_and_keeps_history(world):  # noqa: ANN001
    broker, catalogue, fed, _ = world
    catalogue.add("21.T15999/VIS001", {"name": "VISA at ILL", "webpage": fed.url("web") + "/visa/",
                                       "resourceOrganisation": PROVIDER,
                                       "lifeCycleStatus": "life_cycle_status-production"})
    _patch(broker, KINDS.eosc_entry, "ill-visa", {"resource_id": "21.T15999/VIS001"})
    event = broker.eosc.sync("ill-visa")
    assert [d["field"] for d in event["drift"]] == ["name"]
    audit = broker.registry.audit_log(object_id="ill-visa").items[0]
    assert audit["actor"] == "eosc-sync" and audit["changed"] == ["status"]
    broker.eosc.sync("ill-visa")
    assert len(broker.eosc.history("ill-visa")) == 2


def test_a_read_without_status_never_downgrades_and_a_hidden_service_is_an_error_not_a_state(world):  # noqa: ANN001
    broker, catalogue, _, _ = world
    _patch(broker, KINDS.facility, "ill", {"eosc_credential": None})
    catalogue.add("21.T15999/VIS001", {"name": "ILL VISA", "resourceOrganisation": PROVIDER})
    catalogue.add("21.T15999/HUB001", {"name": "ILL JupyterHub", "resourceOrganisation": PROVIDER},
                  status="pending resource", active=False)
    _patch(broker, KINDS.eosc_entry, "ill-visa", {"resource_id": "21.T15999/VIS001",
                                                                "status": "registered"})
    _patch(broker, KINDS.eosc_entry, "ill-hub", {"resource_id": "21.T15999/HUB001",
                                                               "status": "in-progress"})
    before = len(broker.registry.audit_log(object_id="ill-visa").items)
    visa = broker.eosc.sync("ill-visa")  # a bare read: no status in it
    assert visa["outcome"] == "ok" and broker.registry.get(KINDS.eosc_entry, "ill-visa")["status"] == "registered"
    assert len(broker.registry.audit_log(object_id="ill-visa").items) == before
    hub = broker.eosc.sync("ill-hub")  # the catalogue hides inactive services from a tokenless reader
    assert hub["outcome"] == "error" and "403" in hub["error"]
    assert broker.registry.get(KINDS.eosc_entry, "ill-hub")["status"] == "in-progress"


@pytest.mark.parametrize("fault", ["down", "garbage"])
def test_a_faulty_catalogue_leaves_the_last_known_state_and_records_the_error(world, fault):  # noqa: ANN001
    broker, catalogue, _, _ = world
    catalogue.add("21.T15999/VIS001", {"name": "VISA at ILL", "resourceOrganisation": PROVIDER})
    _patch(broker, KINDS.eosc_entry, "ill-visa", {"resource_id": "21.T15999/VIS001"})
    broker.eosc.sync("ill-visa")
    before = broker.registry.get(KINDS.eosc_entry, "ill-visa")
    setattr(catalogue, fault, True)
    event = broker.eosc.sync("ill-visa")
    after = broker.registry.get(KINDS.eosc_entry, "ill-visa")
    assert event["outcome"] == "error" and event["error"]
    assert after["status"] == before["status"] == "registered"
    assert after["catalogue"]["onboarding_status"] == "approved resource"
    assert after["catalogue"]["drift"] == before["catalogue"]["drift"]
    assert after["catalogue"]["last_sync_error"] == event["error"]


def test_an_entry_missing_from_the_catalogue_is_reported(world):  # noqa: ANN001
    broker, _, _, _ = world
    _patch(broker, KINDS.eosc_entry, "ill-hub", {"resource_id": "21.T15999/gone01"})
    assert broker.eosc.sync("ill-hub")["outcome"] == "not-found"


def test_the_providers_refresh_token_rotates_and_the_new_one_is_kept_encrypted(world):  # noqa: ANN001
    broker, catalogue, _, refresh = world
    catalogue.add("21.T15999/VIS001", {"name": "ILL VISA", "resourceOrganisation": PROVIDER})
    _patch(broker, KINDS.eosc_entry, "ill-visa", {"resource_id": "21.T15999/VIS001"})
    assert broker.eosc.sync("ill-visa")["outcome"] == "ok"
    assert refresh not in catalogue.refresh_tokens  # the AAI rotated it ...
    from registry.models import Facility

    with broker.store.session() as session:
        stored = session.get(Facility, "ill").eosc_credential_encrypted
    assert refresh not in stored and broker.registry.box.decrypt(stored) in catalogue.refresh_tokens  # ... kept
    facility = broker.registry.get(KINDS.facility, "ill")
    assert facility["has_eosc_credential"] is True and "eosc_credential" not in json.dumps(facility).replace(
        "has_eosc_credential", "")
    catalogue.access_tokens.clear()  # every access token expires at once: the next read renews
    assert broker.eosc.sync("ill-visa")["outcome"] == "ok"


def test_a_revoked_provider_credential_is_a_sync_error_that_keeps_the_state_and_never_shows_the_secret(world):  # noqa: ANN001
    broker, catalogue, _, refresh = world
    catalogue.add("21.T15999/VIS001", {"name": "ILL VISA", "resourceOrganisation": PROVIDER})
    _patch(broker, KINDS.eosc_entry, "ill-visa", {"resource_id": "21.T15999/VIS001", "status": "registered"})
    catalogue.refresh_tokens.clear()  # revoked at EOSC AAI
    event = broker.eosc.sync("ill-visa")
    assert event["outcome"] == "error" and "EOSC AAI refused" in event["error"] and refresh not in event["error"]
    assert broker.registry.get(KINDS.eosc_entry, "ill-visa")["status"] == "registered"
    audit = json.dumps(broker.registry.audit_log(object_id="ill").items)
    assert refresh not in audit and refresh not in json.dumps(broker.registry.list(KINDS.facility).items)


def test_a_facility_with_its_own_aai_client_gets_tokens_by_client_credentials(world):  # noqa: ANN001
    broker, catalogue, _, _ = world
    catalogue.add_client("ill-broker", "s3cret", "ada@ill")
    catalogue.refresh_tokens.clear()
    _patch(broker, KINDS.facility, "ill", {"eosc_client_id": "ill-broker", "eosc_credential": "s3cret"})
    catalogue.add("21.T15999/VIS001", {"name": "ILL VISA", "resourceOrganisation": PROVIDER},
                  status="pending resource", active=False)
    _patch(broker, KINDS.eosc_entry, "ill-visa", {"resource_id": "21.T15999/VIS001"})
    assert broker.eosc.sync("ill-visa")["onboarding_status"] == "pending resource"
    assert broker.registry.get(KINDS.eosc_entry, "ill-visa")["status"] == "in-progress"


# -- push --------------------------------------------------------------------------------------

def test_a_completed_profile_validates_is_created_its_pid_stored_and_an_update_keeps_portal_edits(world):  # noqa: ANN001
    broker, catalogue, fed, _ = world
    assert broker.eosc.profile("ill-visa").valid
    dry = broker.eosc.push(ACTOR, "ill-visa", dry_run=True)
    assert dry["catalogue"] == {"asked": True, "valid": True, "message": None} and not catalogue.bundles
    assert dry["body"]["resourceOrganisation"] == PROVIDER and dry["body"]["id"] and dry["body"]["catalogueId"]
    created = broker.eosc.push(ACTOR, "ill-visa")
    pid = created["id"]
    assert created["outcome"] == "created" and PID.match(pid) and created["status"] == "in-progress"
    entry = broker.registry.get(KINDS.eosc_entry, "ill-visa")
    assert entry["resource_id"] == pid and entry["catalogue"]["onboarding_status"] == "pending resource"
    # edited in the catalogue's portal: a field the broker does not own, and the record's version
    catalogue.edit(pid, helpdeskPage=fed.url("web") + "/visa", version="1.1")
    _patch(broker, KINDS.service, "ill-visa", {"title": "ILL VISA (virtual machines)"})
    updated = broker.eosc.push(ACTOR, "ill-visa")
    assert updated == {"outcome": "updated", "id": pid, "version": "1.1"}
    assert list(catalogue.bundles) == [pid]  # no second service
    stored = catalogue.bundles[pid]["service"]
    assert stored["name"] == "ILL VISA (virtual machines)" and stored["helpdeskPage"].endswith("/visa")
    assert stored["version"] == "1.1" and catalogue.bundles[pid]["status"] == "pending resource"


def test_the_first_service_waits_for_onboarding_and_the_rest_queue_until_it_is_approved(world):  # noqa: ANN001
    broker, catalogue, _, _ = world
    first = broker.eosc.push(ACTOR, "ill-visa")
    second = broker.eosc.push(ACTOR, "ill-hub")
    assert second["outcome"] == "queued" and "onboarding" in second["reason"] and "ill-visa" in second["reason"]
    assert broker.registry.get(KINDS.eosc_entry, "ill-hub")["status"] == "queued" and len(catalogue.bundles) == 1
    assert catalogue.providers[PROVIDER]["templateStatus"] == "pending template"
    catalogue.approve(first["id"])  # the onboarding team approves the template: ILL is an approved provider
    broker.eosc.sync_all()  # the worker's round: statuses, then the queue
    visa, hub = (broker.registry.get(KINDS.eosc_entry, s) for s in ("ill-visa", "ill-hub"))
    assert visa["status"] == "registered" and hub["status"] == "registered" and PID.match(hub["resource_id"])
    assert len(catalogue.bundles) == 2


def test_a_second_service_template_is_a_409_the_broker_queues_behind(world):  # noqa: ANN001
    broker, catalogue, _, _ = world
    # a service of the provider's, entered by the portal's staff, while the provider has no template status
    catalogue.add("21.T15999/OLD001", {"name": "Old", "resourceOrganisation": PROVIDER},
                  status="pending resource", active=False)
    queued = broker.eosc.push(ACTOR, "ill-visa")
    assert queued["outcome"] == "queued" and "You have already created a Service Template." in queued["reason"]
    assert list(catalogue.bundles) == ["21.T15999/OLD001"]


def test_the_catalogue_refuses_an_app_address_behind_a_login_and_nothing_is_created(world):  # noqa: ANN001
    broker, catalogue, _, _ = world
    _patch(broker, KINDS.eosc_entry, "ill-desk", {"webpage": None})
    profile = broker.eosc.profile("ill-desk")
    assert profile.valid and profile.warnings[0].startswith("webpage: the service's own address")
    dry = broker.eosc.push(ACTOR, "ill-desk", dry_run=True)
    assert dry["catalogue"]["valid"] is False and "responded with error code: 401" in dry["catalogue"]["message"]
    client = create_app(broker=broker).test_client()
    refused = client.post("/api/v1/services/ill-desk/eosc-profile/push", headers=ADMIN)
    assert refused.status_code == 409 and "401" in refused.json()["detail"] and not catalogue.bundles
    assert broker.registry.get(KINDS.eosc_entry, "ill-desk")["catalogue"]["last_push_error"]


def test_the_catalogues_validator_refuses_what_the_form_rules_would_and_a_slow_url(world):  # noqa: ANN001
    broker, catalogue, fed, _ = world
    bogus = [{"category": "category-processing_and_analysis-data_analysis",
              "subcategory": "subcategory-processing_and_analysis-data_analysis-data_exploitation"}]
    _patch(broker, KINDS.eosc_entry, "ill-visa", {"profile": {"categories": bogus}})  # past the form, as before
    assert any(i.startswith("categories:") for i in broker.eosc.profile("ill-visa").invalid)
    dry = broker.eosc.push(ACTOR, "ill-visa", dry_run=True)
    assert dry["catalogue"]["message"].endswith(
        ": Field 'subcategory' should contain the ID of a type 'Subcategory' Vocabulary")
    _patch(broker, KINDS.eosc_entry, "ill-visa", {"profile": {"resourceOrganisation": "21.T15999/NOSUCH"}})
    dry = broker.eosc.push(ACTOR, "ill-visa", dry_run=True)
    assert "should contain the ID of an existing Provider" in dry["catalogue"]["message"]
    catalogue.url_timeout = 0.3
    _patch(broker, KINDS.eosc_entry, "ill-visa", {"profile": {}, "terms_of_use": fed.url("web") + "/slow-terms"})
    dry = broker.eosc.push(ACTOR, "ill-visa", dry_run=True)
    assert dry["catalogue"]["message"].endswith(f": Failed to validate URL: {fed.url('web')}/slow-terms")
    assert not catalogue.bundles


def test_push_refuses_an_incomplete_profile_locally_and_needs_a_credential(world):  # noqa: ANN001
    broker, catalogue, _, _ = world
    client = create_app(broker=broker).test_client()
    _patch(broker, KINDS.eosc_entry, "ill-hub", {"logo": None})
    refused = client.post("/api/v1/services/ill-hub/eosc-profile/push", headers=ADMIN)
    assert refused.status_code == 409 and "logo" in refused.json()["detail"] and not catalogue.requests
    _patch(broker, KINDS.facility, "ill", {"eosc_credential": None})
    missing = client.post("/api/v1/services/ill-visa/eosc-profile/push", headers=ADMIN)
    assert missing.status_code == 503 and "eosc_credential" in missing.json()["detail"]
    dry = client.post("/api/v1/services/ill-visa/eosc-profile/push?dry_run=true", headers=ADMIN).json()
    assert dry["catalogue"]["asked"] is False and dry["body"]["name"] == "ILL VISA"


def test_a_v6_catalogue_refuses_a_v5_profile_and_the_broker_speaks_v6_when_set(world, tmp_path):  # noqa: ANN001
    broker, _, _, refresh = world
    v6 = SimulatedCatalogue(version="6.1.2")
    v6.add_provider(PROVIDER, "Institut Laue-Langevin", "ILL", admins=("ada@ill",))
    v6.refresh_tokens[refresh] = "ada@ill"
    with sim.Federation() as fed6:
        fed6.add("eosc6", v6)
        fed6.add("web", website({"/visa": 200, "/logo.png": 200, "/terms": 200, "/privacy": 200}))
        fed6.start()
        broker6 = build_broker(make_settings(tmp_path / "v6", eosc_catalogue_url=fed6.url("eosc6"),
                                             eosc_token_url=fed6.url("eosc6") + "/token",
                                             eosc_catalogue_version="auto"))
        broker6.registry.create(ACTOR, KINDS.facility, {
            **{k: v for k, v in broker.registry.get(KINDS.facility, "ill").items()
               if k not in ("version", "created_at", "updated_at", "has_eosc_credential")},
            "eosc_credential": refresh})
        web = fed6.url("web")
        broker6.registry.create(ACTOR, KINDS.service, {"id": "ill-visa", "facility_id": "ill", "kind": "visa",
                                                       "title": "ILL VISA", "base_url": f"{web}/visa",
                                                       "description": "Analysis of ILL data."})
        broker6.registry.create(ACTOR, KINDS.eosc_entry, {"service_id": "ill-visa", "webpage": f"{web}/visa",
                                                          "logo": f"{web}/logo.png"})
        try:
            assert broker6.eosc.catalogue_version == "v6"
            report = broker6.eosc.completeness("ill")
            assert report["catalogue_version"] == "v6"
            assert {"nodePID", "publishingDate", "jurisdiction"} <= set(report["items"][0]["missing"])
            v5_body = broker.eosc.profile("ill-visa", "v5").profile
            token = broker6.eosc.provider_token("ill")
            with pytest.raises(CatalogueRefused, match="nodePID"):
                broker6.eosc.client.validate({**v5_body, "id": "x"}, token)
            _patch(broker6, KINDS.eosc_entry, "ill-visa", {
                "node_pid": "node-eosc-eu", "jurisdiction": "ds_jurisdiction-global",
                "publishing_date": "2026-01-31"})
            dry = broker6.eosc.push(ACTOR, "ill-visa", dry_run=True)
            assert dry["body"]["resourceOwner"] == PROVIDER and "resourceOrganisation" not in dry["body"]
            assert dry["catalogue"]["valid"] is True, dry["catalogue"]
        finally:
            broker6.index.close()


# -- completeness and export -------------------------------------------------------------------

def test_the_seeds_profiles_are_reported_with_their_exact_missing_fields(sqlite_broker, sqlite_client):  # noqa: ANN001
    import_registry(sqlite_broker.registry, ACTOR, read_file(SEED))
    report = sqlite_broker.eosc.completeness()
    assert (report["total"], report["complete"], report["catalogue_version"]) == (17, 0, "v5")
    by_id = {i["service_id"]: i for i in report["items"]}
    assert by_id["ill-visa"]["missing"] == [
        "resourceOrganisation", "tagline", "logo", "mainContact.firstName", "mainContact.lastName",
        "mainContact.email", "publicContacts", "helpdeskEmail", "securityContactEmail", "termsOfUse",
        "privacyPolicy"]
    assert by_id["esrf-guacamole"]["missing"][:3] == ["resourceOrganisation", "description", "tagline"]
    assert "webpage" in by_id["egi-visa"]["missing"]  # no URL yet
    lacking = {name: sum(name in i["missing"] for i in report["items"]) for name in (
        "logo", "mainContact.firstName", "mainContact.lastName", "helpdeskEmail", "securityContactEmail",
        "termsOfUse", "privacyPolicy", "description", "resourceOrganisation")}
    assert lacking == {"logo": 17, "mainContact.firstName": 17, "mainContact.lastName": 17, "helpdeskEmail": 17,
                       "securityContactEmail": 17, "termsOfUse": 17, "privacyPolicy": 17, "description": 6,
                       "resourceOrganisation": 17}  # the seed has no contact, provider or policy: none invented
    assert all(i["invalid"] == [] for i in report["items"])  # the defaults are real vocabulary ids
    finding = next(f for f in by_id["ill-visa"]["findings"] if f["field"] == "logo")
    assert finding["rule"].startswith("mandatory in the catalogue's v5 Service") and finding["fill"] == "eosc_entry.logo"
    assert sqlite_client.get("/api/v1/eosc/completeness?facility=ill").json()["items"][0]["service_id"] == "ill-visa"
    assert sqlite_client.get("/api/v1/eosc/completeness?facility=nope").status_code == 404


def test_profile_api_and_bulk_export(sqlite_client, sqlite_broker):  # noqa: ANN001
    import_registry(sqlite_broker.registry, ACTOR, read_file(SEED))
    one = sqlite_client.get("/api/v1/services/ill-visa/eosc-profile").json()
    assert one["valid"] is False and "logo" in one["missing"] and one["profile"]["webpage"] == "https://visa.ill.fr"
    assert one["profile"]["categories"][0]["subcategory"].endswith("data_analysis-image_data_analysis")
    bulk = sqlite_client.get("/api/v1/facilities/egi/eosc-profiles").json()["items"]
    assert [p["service_id"] for p in bulk] == ["egi-binder", "egi-notebooks", "egi-panosc-notebooks", "egi-visa"]
    assert sqlite_client.get("/api/v1/services/nope/eosc-profile").status_code == 404
    assert sqlite_client.get("/api/v1/facilities/nope/eosc-profiles").status_code == 404


# -- form id rules from the vocabularies -------------------------------------------------------

def test_category_and_domain_ids_are_checked_against_the_catalogues_vocabularies(sqlite_client, sqlite_broker):  # noqa: ANN001
    from registry import vocabularies

    sqlite_broker.registry.create(ACTOR, KINDS.facility, {"id": "ill", "name": "ILL", "country": "FR"})
    sqlite_broker.registry.create(ACTOR, KINDS.service, {"id": "v", "facility_id": "ill", "kind": "visa",
                                                         "title": "V", "base_url": "https://v.example"})
    pairs = [{"category": s["parentId"], "subcategory": s["id"]} for s in vocabularies.eosc("SUBCATEGORY").values()]
    assert len(pairs) == 179 and len({p["category"] for p in pairs}) == 20
    for start in range(0, len(pairs), 20):  # every real pair, capitals and digits included, is accepted
        body = {"service_id": "v", "categories": pairs[start:start + 20]}
        put = sqlite_client.put("/api/v1/eosc-entries/v", headers=ADMIN, json={**body, "version": start // 20}) \
            if start else sqlite_client.post("/api/v1/eosc-entries", headers=ADMIN, json=body)
        assert put.status_code in (200, 201), put.text
    bad = [("categories", {"category": "category-processing_and_analysis-data_analysis",
                           "subcategory": "subcategory-processing_and_analysis-data_analysis-data_exploitation"}),
           ("categories", {"category": "category-processing_and_analysis-data_management",
                           "subcategory": "subcategory-processing_and_analysis-data_analysis-workflows"}),
           ("scientific_domains", {"scientificDomain": "scientific_domain-humanities",
                                   "scientificSubdomain": "scientific_subdomain-natural_sciences-physical_sciences"})]
    for name, pair in bad:
        refused = sqlite_client.patch("/api/v1/eosc-entries/v", headers=ADMIN, json={name: [pair], "version": 9})
        assert refused.status_code == 422 and name in refused.text, refused.text
    assert sqlite_client.patch("/api/v1/eosc-entries/v", headers=ADMIN,
                               json={"trl": "trl-10", "version": 9}).status_code == 422


# -- discovery API -----------------------------------------------------------------------------

def test_the_catalogue_lists_filters_and_exports_csv(sqlite_client, sqlite_broker):  # noqa: ANN001
    import_registry(sqlite_broker.registry, ACTOR, read_file(SEED))
    everything = sqlite_client.get("/api/v1/catalogue").json()
    assert everything["total"] == 17
    gpu = sqlite_client.get("/api/v1/catalogue?gpu=true").json()["items"]
    assert {i["id"] for i in gpu} == {"esrf-jupyterhub", "esrf-visa"}
    hubs = sqlite_client.get("/api/v1/catalogue?kind=jupyterhub&eosc_status=registered").json()["items"]
    assert {i["id"] for i in hubs} == {"esrf-jupyterhub", "ess-jupyterhub", "egi-notebooks"}
    assert sqlite_client.get("/api/v1/catalogue?scientific_domain=physical_sciences").json()["total"] == 17
    assert sqlite_client.get("/api/v1/catalogue?scientific_domain=humanities").json()["total"] == 0
    assert sqlite_client.get("/api/v1/catalogue?facility=ill").json()["items"][0]["capabilities"]["max_cpus"] == 16
    response = sqlite_client.get("/api/v1/catalogue?format=csv&facility=esrf")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {r["id"] for r in rows} == {"esrf-jupyterhub", "esrf-guacamole", "esrf-visa"}
    assert next(r for r in rows if r["id"] == "esrf-guacamole")["protocols"] == "guacamole"


@pytest.mark.parametrize("query", ["kind=mainframe", "gpu=maybe", "status=purple", "eosc_status=done",
                                   "format=xml", "colour=red"])
def test_bad_catalogue_filters_are_4xx(sqlite_client, query):  # noqa: ANN001
    response = sqlite_client.get("/api/v1/catalogue?" + query)
    assert 400 <= response.status_code < 500 and response.headers["content-type"].startswith("application/problem")


def test_sync_api_needs_rights_and_configuration(sqlite_client, sqlite_broker):  # noqa: ANN001
    sqlite_broker.registry.create(ACTOR, KINDS.facility, {"id": "ill", "name": "ILL", "country": "FR"})
    sqlite_broker.registry.create(ACTOR, KINDS.service, {"id": "v", "facility_id": "ill", "kind": "visa",
                                                         "title": "V", "base_url": "https://v.example"})
    sqlite_broker.registry.create(ACTOR, KINDS.eosc_entry, {"service_id": "v"})
    assert sqlite_client.post("/api/v1/eosc-entries/v/sync").status_code == 401
    assert sqlite_client.post("/api/v1/eosc-entries/nope/sync", headers=ADMIN).status_code == 404
    no_catalogue = sqlite_client.post("/api/v1/eosc-entries/v/sync", headers=ADMIN)
    assert no_catalogue.status_code == 503 and "PANBROKER_EOSC_CATALOGUE_URL" in no_catalogue.json()["detail"]
    assert sqlite_client.get("/api/v1/eosc-entries/v/history").json() == {"items": []}
    bad = sqlite_client.post("/api/v1/eosc-entries", headers=ADMIN, json={"service_id": "v", "trl": "nine"})
    assert bad.status_code == 409 or (bad.status_code == 422 and "trl" in bad.text)


def test_sync_api_and_cli_against_the_simulated_catalogue(world, monkeypatch):  # noqa: ANN001
    broker, catalogue, _, _ = world
    catalogue.add("21.T15999/VIS001", {"name": "VISA at ILL", "resourceOrganisation": PROVIDER})
    _patch(broker, KINDS.eosc_entry, "ill-visa", {"resource_id": "21.T15999/VIS001"})
    client = create_app(broker=broker).test_client()
    event = client.post("/api/v1/eosc-entries/ill-visa/sync", headers=ADMIN).json()
    assert event["outcome"] == "ok" and event["drift"][0]["field"] == "name"
    assert client.get("/api/v1/eosc-entries/ill-visa/history").json()["items"][0]["outcome"] == "ok"
    monkeypatch.setenv("PANBROKER_DATA_DIR", str(broker.settings.data_dir))
    monkeypatch.setenv("PANBROKER_ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("PANBROKER_EOSC_CATALOGUE_URL", broker.settings.eosc_catalogue_url)
    monkeypatch.setenv("PANBROKER_EOSC_TOKEN_URL", broker.settings.eosc_token_url)
    from panbroker.cli import main

    broker.index.close()
    synced = CliRunner().invoke(main, ["eosc", "sync"], catch_exceptions=False)
    assert synced.exit_code == 0 and "ill-visa" in synced.output and "name" in synced.output
    status = CliRunner().invoke(main, ["eosc", "status"], catch_exceptions=False)
    assert "approved resource" in status.output
    report = CliRunner().invoke(main, ["eosc", "completeness", "--facility", "ill"], catch_exceptions=False)
    assert "3 of 3 profiles complete" in report.output
    dry = CliRunner().invoke(main, ["eosc", "push", "ill-hub", "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0 and json.loads(dry.output)["catalogue"]["valid"] is True
    exported = CliRunner().invoke(main, ["eosc", "export", "--facility", "ill"], catch_exceptions=False)
    assert json.loads(exported.output)[0]["service_id"] == "ill-desk"


def test_the_operator_console_shows_each_services_completeness_to_its_operators_only(world):  # noqa: ANN001
    from tests.test_portal_pages import signed_in

    broker, _, _, _ = world
    broker.registry.create(ACTOR, KINDS.facility, {"id": "esrf", "name": "ESRF", "country": "FR",
                                                   "accepted_issuers": ["idp"]})
    _patch(broker, KINDS.facility, "ill", {"accepted_issuers": ["idp"]})
    _patch(broker, KINDS.eosc_entry, "ill-hub", {"logo": None})
    client = create_app(broker=broker).test_client()
    signed_in(broker, client, "olga", operator_of="ill")
    page = client.get("/operator/ill/eosc-completeness")
    assert page.status_code == 200 and "2 of 3" in page.text
    hub = page.text[page.text.index("<code>ill-hub</code>"):]
    assert "incomplete" in hub[:80] and "<code>logo</code>" in hub and "eosc_entry.logo" in hub
    assert 'href="/operator/ill/eosc-completeness"' in client.get("/operator/ill").text
    assert client.get("/operator/esrf/eosc-completeness").status_code == 404
