"""EOSC catalogue: the connector's request shapes, sync against the simulated catalogue (statuses,
drift, history, a catalogue that is down or answers garbage), profile export, the discovery API."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import responses
from click.testing import CliRunner

from broker.app import build_broker, create_app
from broker.authz import Principal
from broker.registry_kinds import KINDS
from broker.seeding import import_registry, read_file
from connectors.eosc import EoscCatalogueClient, resource_path
from connectors.http import HttpClient, HttpLimits
from connectors.ssrf import AddressPolicy
from demo import federation as sim
from demo.eosc_catalogue import SimulatedCatalogue
from tests.conftest import ADMIN, make_settings

ACTOR = Principal("test", admin=True)
SEED = Path(__file__).resolve().parent.parent / "registry" / "seed" / "panosc.yaml"
CATALOGUE = "https://catalogue.eosc.example/api"


# -- connector ---------------------------------------------------------------------------------

def test_resource_ids_of_both_api_versions_map_to_their_paths():
    assert resource_path("21.T15999/ill-visa") == "/service/21.T15999/ill-visa"
    assert resource_path("ill.visa") == "/service/ill.visa"
    assert resource_path("ill", "provider") == "/provider/ill"
    assert resource_path("21.T15999/ill", "provider") == "/provider/21.T15999/ill"
    with pytest.raises(ValueError):
        resource_path("not an id")


@responses.activate
def test_the_client_reads_a_provider_bundle_and_reports_a_missing_one():
    from connectors.eosc import NotInCatalogue

    responses.get(f"{CATALOGUE}/provider/21.T15999/ill", json={
        "provider": {"id": "21.T15999/ill", "name": "Institut Laue-Langevin", "abbreviation": "ILL",
                     "website": "https://www.ill.eu"}, "status": "approved provider", "active": True})
    responses.get(f"{CATALOGUE}/provider/esrf", status=404, json={"error": "not found"})
    client = EoscCatalogueClient(HttpClient(AddressPolicy(), HttpLimits(retries=0)), CATALOGUE)
    provider = client.provider("21.T15999/ill")
    assert (provider.abbreviation, provider.status) == ("ILL", "approved provider")
    with pytest.raises(NotInCatalogue):
        client.provider("esrf")


@responses.activate
def test_the_client_reads_bundles_pages_lists_and_pushes_with_a_bearer_token():
    responses.get(f"{CATALOGUE}/service/21.T15999/x", json={"service": {"id": "21.T15999/x", "name": "X"},
                                                             "status": "approved resource", "active": True})
    responses.get(f"{CATALOGUE}/service/all", json={"total": 3, "from": 0, "to": 2,
                                                    "results": [{"id": "a.1"}, {"id": "a.2"}]})
    responses.get(f"{CATALOGUE}/service/all", json={"total": 3, "from": 2, "to": 3, "results": [{"id": "a.3"}]})
    responses.post(f"{CATALOGUE}/service/validate", json=True)
    responses.post(f"{CATALOGUE}/service", json={"id": "21.T15999/new", "name": "New"}, status=201)
    client = EoscCatalogueClient(HttpClient(AddressPolicy(), HttpLimits(retries=0)), CATALOGUE)
    found = client.service("21.T15999/x")
    assert (found.name, found.onboarding_status, found.active) == ("X", "approved resource", True)
    assert responses.calls[0].request.url.endswith("/service/21.T15999/x?catalogue_id=eosc")
    assert [s.id for s in client.services(page_size=2)] == ["a.1", "a.2", "a.3"]
    assert "from=2" in responses.calls[2].request.url
    created = client.push({"name": "New"}, "tok", exists=False)
    assert created.id == "21.T15999/new"
    assert [c.request.headers["Authorization"] for c in responses.calls[3:]] == ["Bearer tok", "Bearer tok"]


# -- sync against the simulated catalogue ------------------------------------------------------

@pytest.fixture
def setup(tmp_path):  # noqa: ANN001, ANN201
    catalogue = SimulatedCatalogue()
    with sim.Federation() as fed:
        fed.add("eosc", catalogue)
        fed.start()
        broker = build_broker(make_settings(tmp_path, eosc_catalogue_url=fed.url("eosc"), eosc_token="eosc-sim-token"))
        broker.registry.create(ACTOR, KINDS.facility, {"id": "ill", "name": "ILL", "country": "FR",
                                                       "contact_email": "visa@ill.example"})
        for sid, title in (("ill-visa", "ILL VISA"), ("ill-hub", "ILL JupyterHub")):
            broker.registry.create(ACTOR, KINDS.service, {"id": sid, "facility_id": "ill", "kind": "visa",
                                                          "title": title, "base_url": f"https://{sid}.example"})
        broker.registry.create(ACTOR, KINDS.eosc_entry, {"service_id": "ill-visa", "status": "in-progress",
                                                         "resource_id": "21.T15999/ill-visa"})
        broker.registry.create(ACTOR, KINDS.eosc_entry, {"service_id": "ill-hub", "status": "registered",
                                                         "resource_id": "21.T15999/ill-hub"})
        catalogue.add("21.T15999/ill-visa", {"name": "VISA at ILL", "webpage": "https://ill-visa.example/",
                                             "lifeCycleStatus": "life_cycle_status-production"})
        catalogue.add("21.T15999/ill-hub", {"name": "ILL JupyterHub", "webpage": "https://ill-hub.example",
                                            "lifeCycleStatus": "life_cycle_status-production"},
                      status="pending resource", active=False)
        yield broker, catalogue
        broker.index.close()


def test_sync_refreshes_statuses_and_reports_drift_with_history(setup):  # noqa: ANN001
    broker, _ = setup
    events = {e["service_id"]: e for e in broker.eosc.sync_all()}
    assert events["ill-visa"]["outcome"] == "ok"
    assert events["ill-visa"]["drift"] == [{"field": "name", "broker": "ILL VISA", "catalogue": "VISA at ILL"}]
    assert events["ill-hub"]["drift"] == []
    visa = broker.registry.get(KINDS.eosc_entry, "ill-visa")
    hub = broker.registry.get(KINDS.eosc_entry, "ill-hub")
    assert visa["status"] == "registered" and visa["catalogue"]["onboarding_status"] == "approved resource"
    assert hub["status"] == "in-progress" and visa["last_synced_at"]
    audit = broker.registry.audit_log(object_id="ill-visa").items[0]
    assert audit["actor"] == "eosc-sync" and audit["changed"] == ["status"]
    broker.eosc.sync("ill-visa")
    assert len(broker.eosc.history("ill-visa")) == 2


@pytest.mark.parametrize("fault", ["down", "garbage"])
def test_a_faulty_catalogue_leaves_the_last_known_state_and_records_the_error(setup, fault):  # noqa: ANN001
    broker, catalogue = setup
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


def test_an_entry_missing_from_the_catalogue_is_reported(setup):  # noqa: ANN001
    broker, _ = setup
    broker.registry.update(ACTOR, KINDS.eosc_entry, "ill-hub", {"resource_id": "21.T15999/gone", "version": 1},
                           None, partial=True)
    assert broker.eosc.sync("ill-hub")["outcome"] == "not-found"


def test_push_validates_then_creates_at_the_catalogue(setup):  # noqa: ANN001
    broker, catalogue = setup
    broker.registry.create(ACTOR, KINDS.service, {"id": "ill-desk", "facility_id": "ill", "kind": "remote-desktop",
                                                  "title": "ILL desktop", "base_url": "https://desk.ill.example",
                                                  "description": "Remote desktops. With Guacamole."})
    broker.registry.create(ACTOR, KINDS.eosc_entry, {"service_id": "ill-desk", "profile": {
        "logo": "https://ill.example/logo.png", "termsOfUse": "https://ill.example/terms",
        "privacyPolicy": "https://ill.example/privacy", "mainContact": {"firstName": "Ada", "lastName": "Lovelace"}}})
    assert broker.eosc.profile("ill-desk").valid
    client = create_app(broker=broker).test_client()
    refused = client.post("/api/v1/services/ill-visa/eosc-profile/push", headers=ADMIN)
    assert refused.status_code == 409 and "logo" in refused.json()["detail"]  # incomplete profile, nothing sent
    pushed = client.post("/api/v1/services/ill-desk/eosc-profile/push", headers=ADMIN).json()
    assert pushed["id"] == "21.T15999/ill-desk" and catalogue.bundles["21.T15999/ill-desk"]["status"] == "pending resource"


# -- export ------------------------------------------------------------------------------------

def test_every_seed_service_either_validates_or_names_its_missing_fields(sqlite_broker):  # noqa: ANN001
    import_registry(sqlite_broker.registry, ACTOR, read_file(SEED))
    services = sqlite_broker.registry.list(KINDS.service, limit=100).items
    for service in services:
        profile = sqlite_broker.eosc.profile(service["id"])
        assert profile.valid or profile.missing or profile.invalid
        assert profile.profile["scientificDomains"] and profile.profile["trl"].startswith("trl-")
        assert set(profile.missing) <= set(__import__("broker.eosc").eosc.REQUIRED)
    esrf = sqlite_broker.eosc.profile("esrf-jupyterhub")
    assert "logo" in esrf.missing and "mainContact.email" in esrf.missing  # the seed has no contacts
    assert esrf.profile["lifeCycleStatus"] == "life_cycle_status-production" and esrf.profile["trl"] == "trl-9"


def test_profile_api_and_bulk_export(sqlite_client, sqlite_broker):  # noqa: ANN001
    import_registry(sqlite_broker.registry, ACTOR, read_file(SEED))
    one = sqlite_client.get("/api/v1/services/ill-visa/eosc-profile").json()
    assert one["valid"] is False and "logo" in one["missing"] and one["profile"]["webpage"] == "https://visa.ill.fr"
    bulk = sqlite_client.get("/api/v1/facilities/egi/eosc-profiles").json()["items"]
    assert [p["service_id"] for p in bulk] == ["egi-binder", "egi-notebooks", "egi-panosc-notebooks", "egi-visa"]
    assert "webpage" in next(p for p in bulk if p["service_id"] == "egi-visa")["missing"]  # no URL yet
    assert sqlite_client.get("/api/v1/services/nope/eosc-profile").status_code == 404
    assert sqlite_client.get("/api/v1/facilities/nope/eosc-profiles").status_code == 404


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


def test_sync_api_and_cli_against_the_simulated_catalogue(setup, monkeypatch):  # noqa: ANN001
    broker, _ = setup
    client = create_app(broker=broker).test_client()
    event = client.post("/api/v1/eosc-entries/ill-visa/sync", headers=ADMIN).json()
    assert event["outcome"] == "ok" and event["drift"][0]["field"] == "name"
    assert client.get("/api/v1/eosc-entries/ill-visa/history").json()["items"][0]["outcome"] == "ok"
    monkeypatch.setenv("PANBROKER_DATA_DIR", str(broker.settings.data_dir))
    monkeypatch.setenv("PANBROKER_ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("PANBROKER_EOSC_CATALOGUE_URL", broker.settings.eosc_catalogue_url)
    from broker.cli import main

    broker.index.close()
    synced = CliRunner().invoke(main, ["eosc", "sync"], catch_exceptions=False)
    assert synced.exit_code == 0 and "ill-visa" in synced.output and "name" in synced.output
    status = CliRunner().invoke(main, ["eosc", "status"], catch_exceptions=False)
    assert "approved resource" in status.output
    exported = CliRunner().invoke(main, ["eosc", "export", "--facility", "ill"], catch_exceptions=False)
    assert json.loads(exported.output)[0]["service_id"] == "ill-hub"
