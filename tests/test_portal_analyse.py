"""The Analyse panel in-process: a refused form never becomes a session, a second start of the same
dataset at the same service offers the first, a public dataset whose hub is down is offered the
federation-wide Binder the registry marks, and reasons are in plain words."""
from __future__ import annotations

import re

from sqlalchemy import update

from broker.authz import Principal
from broker.registry_kinds import KINDS
from registry.models import ComputeService
from tests.test_portal_pages import ADMIN, signed_in, site, token_of  # noqa: F401 - the shared fixture


def hub(broker, **caps) -> None:  # noqa: ANN001, ANN003
    broker.registry.create(ADMIN, KINDS.service, {
        "id": "ill-hub", "facility_id": "ill", "kind": "jupyterhub", "title": "ILL JupyterHub",
        "base_url": "https://hub.ill.example", "launch_mode": "deeplink",
        "capabilities": {"max_cpus": 8, "max_memory_gb": 32, "interfaces": ["notebook"], **caps}})


def form_of(client, pid: str = "ill/1") -> dict[str, str]:  # noqa: ANN001
    page = client.get(f"/datasets/{pid}").text
    return {"csrf_token": token_of(page), "dataset": pid,
            "idempotency_key": re.search(r'name="idempotency_key" value="([^"]+)"', page).group(1)}


def launches_of(broker, person) -> list:  # noqa: ANN001
    return broker.launches.list(Principal(f"person:{person['id']}"))


def test_the_panel_says_what_opens_its_limits_and_offers_only_what_the_services_have(site):  # noqa: ANN001, F811
    broker, client = site
    hub(broker)
    signed_in(broker, client, "ada")
    panel = client.get("/datasets/ill/1").text
    panel = panel[panel.index('id="analyse"'):]
    assert "Opens JupyterLab" in panel and "Up to 8 CPUs · up to 32 GB memory · no GPU" in panel
    assert 'id="help-cpus">up to 8' in panel
    assert 'id="gpu"' not in panel  # neither VISA nor the hub has a GPU
    assert 'id="interface"' not in panel  # one interface only: nothing to choose


def test_a_refused_form_shows_every_message_at_its_field_at_once_and_records_no_session(site):  # noqa: ANN001, F811
    broker, client = site
    hub(broker)
    person = signed_in(broker, client, "bob")
    refused = client.post("/analyse", data={**form_of(client), "service_id": "ill-hub", "cpus": "64",
                                            "memory_gb": "lots", "gpu": "1"})
    assert refused.status_code == 422
    assert re.search(r'id="err-cpus">at most 8 on ILL JupyterHub<', refused.text)
    assert 'id="err-memory_gb"' in refused.text and 'id="err-gpu">ILL JupyterHub has no GPU' in refused.text
    assert 'value="64"' in refused.text and 'id="gpu" name="gpu" value="1" checked' in refused.text
    assert launches_of(broker, person) == []
    assert "No sessions yet" in client.get("/sessions").text


def test_the_same_dataset_analysed_twice_at_one_service_offers_the_running_session(site):  # noqa: ANN001, F811
    broker, client = site
    hub(broker)
    person = signed_in(broker, client, "cleo")
    first = client.post("/analyse", data={**form_of(client), "service_id": "ill-hub"}, follow_redirects=False)
    assert first.status_code == 303
    again = client.post("/analyse", data={**form_of(client), "service_id": "ill-hub"}, follow_redirects=False)
    assert again.status_code == 409 and "already has a session of yours" in again.text
    assert first.headers["location"] in again.text  # a link to the running session
    assert len(launches_of(broker, person)) == 1
    other = client.post("/analyse", data={**form_of(client), "service_id": "ill-visa"}, follow_redirects=False)
    assert other.status_code == 303 and len(launches_of(broker, person)) == 2  # another service is another session


def test_a_public_dataset_whose_hub_is_down_is_offered_the_federation_wide_binder(site):  # noqa: ANN001, F811
    broker, client = site
    hub(broker)
    broker.registry.create(ADMIN, KINDS.facility, {"id": "egi-fed", "name": "EGI Federation", "country": "NL",
                                                   "accepted_issuers": ["idp"], "federation_wide": True})
    broker.registry.create(ADMIN, KINDS.service, {
        "id": "egi-binder", "facility_id": "egi-fed", "kind": "binderhub", "title": "EGI Binder",
        "base_url": "https://binder.egi.example", "launch_mode": "deeplink"})
    with broker.store.session() as session:
        session.execute(update(ComputeService).where(ComputeService.facility_id == "ill").values(
            health_status="down", health_error="http://10.0.0.7:8000: 5 consecutive failures; calls paused for 60 s"))
    signed_in(broker, client, "dora")
    page = client.get("/datasets/ill/1").text
    assert 'id="svc-egi-binder"' in page and "Builds a notebook environment at EGI Federation" in page
    assert "is not answering at the moment" in page
    assert "10.0.0.7" not in page and "consecutive" not in page and "paused" not in page
    launched = client.post("/analyse", data={**form_of(client), "service_id": "egi-binder"}, follow_redirects=False)
    assert launched.status_code == 303


def test_a_session_page_names_things_says_a_deep_link_continues_and_shows_failure_as_failure(site):  # noqa: ANN001, F811
    from registry.models import Launch

    broker, client = site
    hub(broker)
    person = signed_in(broker, client, "emil")
    visa = client.post("/analyse", data={**form_of(client), "service_id": "ill-visa"}, follow_redirects=False)
    for _ in range(3):  # the worker's steps (each on a starter thread): a deep link is ready at once
        broker.launch_runner.advance()
        broker.launch_runner.wait_for_steps()
    page = client.get(visa.headers["location"]).text
    assert "Analysis of “SANS of lysozyme”" in page and "ILL VISA at" in page  # titles, not ids
    assert "Continues at the service" in page and "Continue at ILL VISA" in page  # a deep link, not "Ready"
    assert "Stop this session?" in page  # confirmed before stopping
    failed = client.post("/analyse", data={**form_of(client), "service_id": "ill-hub", "cpus": "4"},
                         follow_redirects=False)
    launch_id = failed.headers["location"].rsplit("/", 1)[1]
    with broker.store.session() as session:
        session.execute(update(Launch).where(Launch.id == launch_id).values(
            state="failed", error="trouble reaching the service: http://10.0.0.7:8000: calls paused for 60 s"))
    page = client.get(f"/sessions/{launch_id}").text
    assert re.search(r'<div id="failure" class="notice error" role="alert" >', page)
    assert "Change options and try again" in page and "4 CPUs" in page
    assert re.search(r'<progress id="bar"[^>]*hidden', page)  # no full blue bar for a failure
    assert "10.0.0.7" not in page.split('id="failure"')[1].split("</div>")[0]
    sessions = client.get("/sessions").text
    assert "Try again" in sessions and "SANS of lysozyme" in sessions and len(launches_of(broker, person)) == 2
