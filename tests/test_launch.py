"""Dataset-to-analysis launches, driven into a real JupyterHub: routing with reasons, idempotency,
the lifecycle to ready, stop, and reconciliation after a restart."""
from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import responses

from panbroker.app import build_broker, create_app
from broker.auth import IssuerConfig
from broker.authz import Principal
from broker.registry_kinds import KINDS
from panmodel.datasets import Dataset, DocumentRef, TechniqueRef
from connectors.base import LaunchTarget
from connectors.http import HttpClient, HttpLimits
from connectors.jupyterhub import JupyterHubConnector
from connectors.ssrf import AddressPolicy
from demo.visa_sim import SimulatedVisa
from panmodel.clock import utcnow
from registry.models import UserToken
from tests.conftest import make_settings
from tests.jupyterhub_fixture import hub_if_asked, module_hub

ADMIN = Principal("test", admin=True)
DATASET = Dataset(pid="10.5291/ILL-DATA.9-13-612/00001", facility="ill", title="SANS of lysozyme in D2O at 295 K",
                  creation_date=datetime(2021, 3, 14, tzinfo=timezone.utc), instrument="D22",
                  techniques=(TechniqueRef("small angle neutron scattering"),), source="ill-search",
                  documents=(DocumentRef("9-13-612", "Lysozyme", "proposal", "10.5291/ILL-DATA.9-13-612"),))
EMBARGOED = Dataset(pid="ill/embargoed-1", facility="ill", title="Embargoed run", is_public=False, source="ill-search")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):  # noqa: ANN001, ANN201
    yield from module_hub(tmp_path_factory)


@pytest.fixture
def broker(request, tmp_path):  # noqa: ANN001, ANN201
    hub = hub_if_asked(request)
    built = build_broker(make_settings(tmp_path))
    reg = built.registry
    for fid, issuers in (("ill", ["ill-idp"]), ("egi", ["umbrellaid"])):
        reg.create(ADMIN, KINDS.facility, {"id": fid, "name": fid.upper(), "country": "FR", "accepted_issuers": issuers})
    reg.create(ADMIN, KINDS.service, {"id": "ill-hub", "facility_id": "ill", "kind": "jupyterhub", "title": "ILL hub",
                                      "base_url": hub.url, "launch_mode": "api", "credential": hub.token,
                                      "capabilities": {"max_cpus": 8, "partitions": [{"id": "x86"}]},
                                      "connector_config": {"start_timeout_seconds": 60}})
    reg.create(ADMIN, KINDS.service, {"id": "ill-visa", "facility_id": "ill", "kind": "visa", "title": "ILL VISA",
                                      "base_url": "https://visa.ill.example", "capabilities": {"max_cpus": 16}})
    reg.create(ADMIN, KINDS.service, {"id": "egi-binder", "facility_id": "egi", "kind": "binderhub",
                                      "title": "EGI Binder", "base_url": "https://binder.egi.example",
                                      "connector_config": {"default_repository": "gh/panosc/notebooks/HEAD"}})
    built.index.upsert([DATASET, EMBARGOED])
    built.index.commit()
    yield built
    built.index.close()


def person(broker, name: str, issuers=("ill-idp",)):  # noqa: ANN001, ANN201
    created = broker.people.create(ADMIN, {"display_name": name, "identities": [
        {"issuer": i, "subject": name} for i in issuers]})
    return Principal(f"person:{created['id']}")


def ginas_visa(build_seconds: float) -> SimulatedVisa:
    """ILL's VISA (simulated), where Gina, holding her VISA token, is a user of proposal 9-13-612's experiment."""
    return SimulatedVisa("ill", users={"gina-visa-token": "gina"}, build_seconds=build_seconds,
                         experiments=[{"id": "exp-1", "proposal": "9-13-612", "doi": "10.5291/ILL-DATA.9-13-612",
                                       "users": ["gina"]}])


def visa_api_with_gina(broker, visa_url: str) -> Principal:  # noqa: ANN001
    """ILL's VISA registered in API mode, taking the tokens of ILL's login, and Gina signed in there (her token
    kept); the facility ``ill`` must be registered."""
    broker.auth.issuers["ill-idp"] = IssuerConfig("ill-idp", "ILL login", "https://login.ill.example",
                                                  client_id="broker")
    broker.registry.create(ADMIN, KINDS.service, {
        "id": "ill-visa-api", "facility_id": "ill", "kind": "visa", "title": "ILL VISA (API)", "base_url": visa_url,
        "launch_mode": "api", "capabilities": {"max_cpus": 16},
        "connector_config": {"user_token_issuer": "ill-idp", "start_timeout_seconds": 30}})
    gina = person(broker, "Gina")
    with broker.store.session() as session:
        session.add(UserToken(person_id=gina.subject.removeprefix("person:"), issuer="ill-idp",
                              access_token_encrypted=broker.auth.box.encrypt("gina-visa-token"),
                              expires_at=utcnow() + timedelta(hours=1)))
    return gina


def run_to_end(broker, launch_id: str, actor, seconds: float = 45):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        broker.launch_runner.advance()
        launch = broker.launches.get(actor, launch_id)
        if launch["state"] in ("ready", "failed", "cancelled", "stopped"):
            return launch
        time.sleep(0.3)
    raise AssertionError(f"launch not final: {broker.launches.get(actor, launch_id)}")


@pytest.mark.slow
def test_a_dataset_is_launched_into_a_named_jupyterhub_server_with_its_options(broker, hub):  # noqa: ANN001
    alice = person(broker, "Alice")
    launch, created = broker.launches.create(alice, "k1", {"dataset": DATASET.pid, "kind": "jupyterhub",
                                                           "resources": {"cpus": 4, "partition": "x86"}})
    assert created and launch["state"] == "routed" and launch["service_id"] == "ill-hub"
    reasons = {c["service_id"]: (c["fits"], c["reason"]) for c in launch["decision"]}
    assert reasons == {"ill-hub": (True, "fits on partition x86; starts a session through its API"),
                       "ill-visa": (False, "a visa, not a jupyterhub")}
    done = run_to_end(broker, launch["id"], alice)
    assert done["state"] == "ready" and done["url"].startswith(f"{hub.url}/user/alice/pb-")
    server = next(iter(hub.api("/users/alice").json()["servers"].values()))
    assert server["user_options"]["dataset_pid"] == DATASET.pid
    assert server["user_options"]["nprocs"] == 4 and server["user_options"]["partition"] == "x86"
    assert server["user_options"]["doi"] == "10.5291/ILL-DATA.9-13-612"
    states = [e["state"] for e in broker.launches.events(alice, launch["id"])]
    assert states[0] == "requested" and "routed" in states and states[-1] == "ready"

    stopped = broker.launches.cancel(alice, launch["id"])
    assert stopped["state"] == "stopped"
    assert hub.api("/users/alice").json()["servers"] == {}


@pytest.mark.slow
def test_a_retry_returns_the_same_launch_and_never_a_second_session(broker, hub):  # noqa: ANN001
    bob = person(broker, "Bob")
    body = {"dataset": "10.5291/ILL-DATA.9-13-612/00001", "kind": "jupyterhub"}
    results = []
    threads = [threading.Thread(target=lambda: results.append(broker.launches.create(bob, "same-key", body)))
               for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({launch["id"] for launch, _ in results}) == 1
    assert [created for _, created in results].count(True) == 1
    run_to_end(broker, results[0][0]["id"], bob)
    again, created = broker.launches.create(bob, "same-key", body)
    assert not created and again["state"] == "ready"
    assert len(hub.api("/users/bob").json()["servers"]) == 1
    with pytest.raises(Exception, match="different request"):
        broker.launches.create(bob, "same-key", {**body, "resources": {"cpus": 2}})
    broker.launches.cancel(bob, again["id"])


@pytest.mark.slow
def test_after_a_crash_between_start_and_record_the_launch_is_reconciled(broker, hub, tmp_path):  # noqa: ANN001
    carol = person(broker, "Carol")
    launch, _ = broker.launches.create(carol, "k-crash", {"dataset": DATASET.pid, "kind": "jupyterhub"})
    target, _service = broker.launch_runner.targets.build(launch["id"])  # noqa: SLF001 - simulate the lost half of a step
    JupyterHubConnector().start(broker.http, target)  # the start reached the hub; the broker died before recording
    restarted = build_broker(broker.settings)  # a new process on the same database
    done = run_to_end(restarted, launch["id"], carol)
    assert done["state"] == "ready"
    assert len(hub.api("/users/carol").json()["servers"]) == 1
    restarted.launches.cancel(carol, launch["id"])
    restarted.index.close()


def test_visa_and_public_data_fallbacks_open_the_services_own_pages(broker):  # noqa: ANN001
    dora = person(broker, "Dora", issuers=("ill-idp", "umbrellaid"))
    visa, _ = broker.launches.create(dora, "k-visa", {"dataset": DATASET.pid, "kind": "visa"})
    done = run_to_end(broker, visa["id"], dora)
    assert done["url"] == ("https://visa.ill.example/instances/new?proposals=9-13-612"
                           "&dois=10.5291%2FILL-DATA.9-13-612")
    binder, _ = broker.launches.create(dora, "k-binder", {"dataset": DATASET.pid, "kind": "binderhub"})
    assert binder["service_id"] == "egi-binder"  # ILL has no Binder: public data may go to EGI
    assert run_to_end(broker, binder["id"], dora)["url"] == "https://binder.egi.example/v2/gh/panosc/notebooks/HEAD"


@pytest.mark.parametrize("body, person_issuers, reason", [
    ({"dataset": DATASET.pid, "resources": {"cpus": 64}}, ("ill-idp",), "at most 8 CPUs"),
    ({"dataset": DATASET.pid, "kind": "jupyterhub"}, ("orcid",), "accepts sign-in from ill-idp"),
    ({"dataset": DATASET.pid, "resources": {"gpu": True}}, ("ill-idp",), "no GPU"),
    ({"dataset": "ill/embargoed-1", "kind": "binderhub"}, ("ill-idp", "umbrellaid"), "no service fits"),
])
def test_no_fit_is_a_409_naming_each_candidates_reason(broker, body, person_issuers, reason):  # noqa: ANN001
    from panmodel.errors import Conflict

    someone = person(broker, f"p{uuid.uuid4().hex[:6]}", issuers=person_issuers)
    with pytest.raises(Conflict) as refused:
        broker.launches.create(someone, "k", body)
    assert reason in refused.value.detail or any(reason in e.message for e in refused.value.errors)
    with pytest.raises(Conflict):  # a retry gets the same answer
        broker.launches.create(someone, "k", body)


@pytest.mark.slow
def test_the_launch_api(broker, hub):  # noqa: ANN001
    client = create_app(broker=broker).test_client()
    erin = person(broker, "Erin")
    token = broker.people.issue_token(ADMIN, erin.subject.removeprefix("person:"), {"name": "t"})["token"]
    auth = {"Authorization": f"Bearer {token}"}
    body = {"dataset": DATASET.pid, "kind": "jupyterhub"}
    assert client.post("/api/v1/launches", json=body, headers=auth).status_code == 400  # no Idempotency-Key
    created = client.post("/api/v1/launches", json=body, headers={**auth, "Idempotency-Key": "api-1"})
    assert created.status_code == 201 and created.headers["location"].endswith(created.json()["id"])
    assert client.post("/api/v1/launches", json=body, headers={**auth, "Idempotency-Key": "api-1"}).status_code == 200
    changed = client.post("/api/v1/launches", json={**body, "interface": "notebook"},
                          headers={**auth, "Idempotency-Key": "api-1"})
    assert changed.status_code == 422
    no_fit = client.post("/api/v1/launches", json={**body, "resources": {"cpus": 99}},
                         headers={**auth, "Idempotency-Key": "api-2"})
    assert no_fit.status_code == 409 and any("CPUs" in e["message"] for e in no_fit.json()["errors"])
    launch_id = created.json()["id"]
    run_to_end(broker, launch_id, erin)
    events = client.get(f"/api/v1/launches/{launch_id}/events", headers=auth)
    assert events.headers["content-type"].startswith("text/event-stream")
    assert "event: ready" in events.text and "event: requested" in events.text
    assert client.get("/api/v1/launches", headers=auth).json()["total"] == 2
    assert client.get(f"/api/v1/launches/{launch_id}").status_code == 401
    assert client.delete(f"/api/v1/launches/{launch_id}", headers=auth).json()["state"] == "stopped"


# -- connector behaviour the real hub does not show on demand ----------------------------------

TARGET = LaunchTarget("https://hub.facility.example", {}, "svc-token", "alice", "pb-1", {"dataset_pid": "x"})


@responses.activate
def test_a_5xx_while_the_spawn_goes_on_is_reconciled_by_reading_state_not_by_posting_again():
    api = "https://hub.facility.example/hub/api"
    responses.get(f"{api}/users/alice", json={"name": "alice", "servers": {}})
    responses.post(f"{api}/users/alice/servers/pb-1", status=500, json={"message": "Timeout"})
    responses.get(f"{api}/users/alice", json={"name": "alice", "servers": {"pb-1": {"ready": False,
                                                                                       "pending": "spawn"}}})
    progress = JupyterHubConnector().start(HttpClient(AddressPolicy(), HttpLimits(retries=0)), TARGET)
    assert progress.state == "starting"
    assert sum(1 for c in responses.calls if c.request.method == "POST") == 1
    assert responses.calls[1].request.headers["Authorization"] == "token svc-token"


@responses.activate
def test_a_429_waits_for_retry_after():
    api = "https://hub.facility.example/hub/api"
    responses.get(f"{api}/users/alice", json={"name": "alice", "servers": {}})
    responses.post(f"{api}/users/alice/servers/pb-1", status=429, headers={"Retry-After": "7"})
    progress = JupyterHubConnector().start(HttpClient(AddressPolicy(), HttpLimits(retries=0)), TARGET)
    assert progress.state == "submitted" and progress.retry_after == 7.0


@pytest.mark.slow
@pytest.mark.timeout(240)  # twenty real single-user servers: 85 s on a slow machine of this kind
def test_twenty_launches_of_different_datasets_at_once_all_end_ready(broker, hub):  # noqa: ANN001
    """Admission control: at most 4 spawns in flight at the hub; the rest wait, told their place."""
    frank = person(broker, "Frank")
    datasets = [Dataset(pid=f"ill/batch-{n:02d}", facility="ill", title=f"Run {n}", source="ill-search")
                for n in range(20)]
    broker.index.upsert(datasets)
    broker.index.commit()
    launches = [broker.launches.create(frank, f"batch-{d.pid}", {"dataset": d.pid, "kind": "jupyterhub"})[0]
                for d in datasets]
    started = time.monotonic()
    peak = 0
    while time.monotonic() - started < 220:
        broker.launch_runner.advance()
        states = [broker.launches.get(frank, launch["id"])["state"] for launch in launches]
        peak = max(peak, sum(s in ("submitted", "starting") for s in states))
        if all(s in ("ready", "failed") for s in states):
            break
        time.sleep(0.5)
    assert states.count("ready") == 20, states
    assert peak <= 4
    queue_messages = [e["message"] for e in broker.launches.events(frank, launches[-1]["id"])]
    assert any(m.startswith("queued") for m in queue_messages)
    for launch in launches:
        broker.launches.cancel(frank, launch["id"])


@pytest.mark.slow
def test_visa_api_mode_creates_an_instance_for_the_users_experiments_and_follows_it_to_active(broker):  # noqa: ANN001
    from demo import federation as sim

    visa = ginas_visa(build_seconds=1.0)
    with sim.Federation() as fed:
        fed.add("visa", visa)
        fed.start()
        gina = visa_api_with_gina(broker, fed.url("visa"))
        launch, _ = broker.launches.create(gina, "k-visa-api", {"dataset": DATASET.pid, "service_id": "ill-visa-api",
                                                                "resources": {"cpus": 4}})
        done = run_to_end(broker, launch["id"], gina)
        assert done["state"] == "ready" and done["url"].startswith(fed.url("visa") + "/instances/")
        (instance,) = visa.instances.values()
        assert instance["plan"] == 2  # the small plan has 2 CPUs: the 16-CPU one fits 4
        again = broker.launches.create(gina, "k-visa-api", {"dataset": DATASET.pid, "service_id": "ill-visa-api",
                                                            "resources": {"cpus": 4}})[0]
        assert again["id"] == launch["id"] and len(visa.instances) == 1
        assert broker.launches.cancel(gina, launch["id"])["state"] == "stopped" and not visa.instances

        stranger = person(broker, "Hank")  # no token kept for VISA's issuer: a clear failure, not a hang
        refused, _ = broker.launches.create(stranger, "k-visa-2", {"dataset": DATASET.pid,
                                                                   "service_id": "ill-visa-api"})
        failed = run_to_end(broker, refused["id"], stranger)
        assert failed["state"] == "failed" and "sign in with ILL login first" in failed["error"]


@pytest.mark.slow
def test_binder_api_mode_follows_the_build_and_launch_stream_to_a_server_that_answers(broker):  # noqa: ANN001
    import requests
    from sqlalchemy import select

    from demo import federation as sim
    from registry.models import Launch

    with sim.Federation() as fed:
        fed.add("binder", sim.binderhub(build_seconds=1.0))
        fed.start()
        for sid, repository in (("egi-binder-api", "gh/panosc-eu/notebooks/HEAD"),
                                ("egi-binder-gone", "gh/panosc-eu/does-not-exist/HEAD")):
            broker.registry.create(ADMIN, KINDS.service, {
                "id": sid, "facility_id": "egi", "kind": "binderhub", "title": "EGI Binder (API)",
                "base_url": fed.url("binder"), "launch_mode": "api",
                "connector_config": {"default_repository": repository, "start_timeout_seconds": 30}})
        olga = person(broker, "Olga", issuers=("umbrellaid",))
        launch, _ = broker.launches.create(olga, "k-binder-api", {"dataset": DATASET.pid,
                                                                   "service_id": "egi-binder-api"})
        done = run_to_end(broker, launch["id"], olga)
        assert done["state"] == "ready" and done["url"].startswith(fed.url("binder") + "/jupyter/user/notebooks-")
        assert requests.get(done["url"], timeout=5).status_code == 200  # the URL carries the server's token
        assert requests.get(done["url"].split("?")[0], timeout=5).status_code == 403
        token = done["url"].split("token=")[1]
        with broker.store.session() as session:  # kept encrypted, never in the stored URL
            stored = session.scalar(select(Launch).where(Launch.id == launch["id"]))
            assert token not in (stored.url or "") and token not in (stored.url_token_encrypted or "")
        messages = [e["message"] for e in broker.launches.events(olga, launch["id"])]
        assert "fetching the repository" in messages and "building the image" in messages
        assert sum(m == "building the image" for m in messages) == 1  # one event per phase, not per log line

        gone, _ = broker.launches.create(olga, "k-binder-gone", {"dataset": DATASET.pid,
                                                                  "service_id": "egi-binder-gone"})
        failed = run_to_end(broker, gone["id"], olga)
        assert failed["state"] == "failed" and "Could not resolve ref" in failed["error"]


def test_the_admission_bound_halves_under_strain_and_grows_back_one_at_a_time_up_to_the_configured():
    from broker.launch.admission import AdmissionBounds

    bounds = AdmissionBounds()
    assert bounds.bound("hub", 8) == 8
    bounds.observe("hub", 8, strained=True)
    bounds.observe("hub", 8, strained=True)
    assert bounds.bound("hub", 8) == 2
    bounds.observe("hub", 8, strained=True)
    bounds.observe("hub", 8, strained=True)
    assert bounds.bound("hub", 8) == 1  # never below one
    grown = []
    for _ in range(40):
        bounds.observe("hub", 8, strained=False)
        grown.append(bounds.bound("hub", 8))
    assert grown[0] == 2 and grown == sorted(grown) and grown[-1] == 8  # additive, capped by the configuration
    assert bounds.bound("hub", 3) == 3  # an operator lowering the configured bound takes effect at once
    assert bounds.bound("other", 5) == 5


@pytest.mark.parametrize("body, field, message", [
    ({"dataset": "10.9999/no-such-dataset"}, "dataset", "10.9999/no-such-dataset"),
    ({"dataset": DATASET.pid, "service_id": "ill-nowhere"}, "service_id", "no service 'ill-nowhere'"),
])
def test_an_unknown_dataset_or_service_is_a_422_naming_the_field(broker, body, field, message):  # noqa: ANN001
    from panmodel.errors import InvalidInput

    someone = person(broker, f"p{uuid.uuid4().hex[:6]}")
    with pytest.raises(InvalidInput) as refused:
        broker.launches.create(someone, "k", body)
    assert [(e.field, message in e.message) for e in refused.value.errors] == [(field, True)]
    assert broker.launches.list(someone) == []  # nothing recorded: a corrected request may reuse the key


def test_a_remote_desktop_opens_its_gateway_with_the_dataset_filled_into_the_template(broker):  # noqa: ANN001
    broker.registry.create(ADMIN, KINDS.service, {
        "id": "ill-desktop", "facility_id": "ill", "kind": "remote-desktop", "title": "ILL desktop",
        "base_url": "https://desktop.ill.example/guacamole",
        "connector_config": {"launch_url_template": "{base_url}/#/new?proposal={proposal}&doi={doi}&x={unknown"}})
    pia = person(broker, "Pia")
    launch, _ = broker.launches.create(pia, "k-desk", {"dataset": DATASET.pid, "kind": "remote-desktop"})
    done = run_to_end(broker, launch["id"], pia)
    assert done["url"] == ("https://desktop.ill.example/guacamole/#/new?proposal=9-13-612"
                           "&doi=10.5291%2FILL-DATA.9-13-612&x={unknown")
    with pytest.raises(Exception, match="unknown placeholder"):
        broker.registry.create(ADMIN, KINDS.service, {
            "id": "ill-desktop-2", "facility_id": "ill", "kind": "remote-desktop", "title": "ILL desktop",
            "base_url": "https://desktop.ill.example", "connector_config": {"launch_url_template": "{base_url}/{secret}"}})
