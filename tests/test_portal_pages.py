"""Portal pages in-process: what the browser tests do not walk through — refusals, other facilities,
stale edits, bad searches, exports — on SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import io
import re

import pytest

from panbroker.app import build_broker, create_app
from broker.authz import Principal
from broker.registry_kinds import KINDS
from panmodel.datasets import Dataset
from web.auth import COOKIE

ADMIN = Principal("test", admin=True)


def two_facilities_with_visa(broker) -> None:  # noqa: ANN001
    """ILL and ESRF, each with a VISA, both taking the test issuer ``idp``."""
    for fid in ("ill", "esrf"):
        broker.registry.create(ADMIN, KINDS.facility, {"id": fid, "name": fid.upper(), "country": "FR",
                                                       "accepted_issuers": ["idp"]})
        broker.registry.create(ADMIN, KINDS.service, {"id": f"{fid}-visa", "facility_id": fid, "kind": "visa",
                                                      "title": f"{fid.upper()} VISA",
                                                      "base_url": f"https://visa.{fid}.example"})


@pytest.fixture
def site(settings):  # noqa: ANN001, ANN201
    broker = build_broker(settings)
    two_facilities_with_visa(broker)
    broker.index.upsert([Dataset(pid="ill/1", facility="ill", title="SANS of lysozyme", source="s")])
    broker.index.commit()
    client = create_app(broker=broker).test_client()
    yield broker, client
    broker.index.close()


def signed_in(broker, client, name: str, operator_of: str | None = None):  # noqa: ANN001, ANN201
    person = broker.people.create(ADMIN, {"display_name": name, "identities": [{"issuer": "idp", "subject": name}]})
    if operator_of:
        broker.people.grant(ADMIN, person["id"], {"role": "operator", "facility_id": operator_of})
    client.cookies.set(COOKIE, broker.auth.sessions.open(person["id"], "idp"))
    return person


def token_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', page).group(1)


def test_pages_answer_anonymous_visitors_and_ask_them_to_sign_in_for_their_own(site):  # noqa: ANN001
    _broker, client = site
    for path in ("/", "/search?q=lysozyme", "/datasets/ill/1", "/services", "/facilities/ill", "/signin"):
        assert client.get(path).status_code == 200, path
    for path in ("/sessions", "/account", "/operator"):
        page = client.get(path)
        assert page.status_code == 401 and "Sign in" in page.text
    assert client.get("/datasets/ill/nope").status_code == 404
    bad = client.get("/search?page=0&technique=no-such-technique")
    assert bad.status_code == 400 and "no-such-technique" in bad.text and "page" in bad.text
    assert "Sign in to start" in client.get("/datasets/ill/1").text


def test_the_catalogue_exports_what_its_filters_show(site):  # noqa: ANN001
    _broker, client = site
    rows = list(csv.DictReader(io.StringIO(client.get("/services?facility=esrf&format=csv").text)))
    assert [r["id"] for r in rows] == ["esrf-visa"]
    exported = client.get("/services?kind=visa&format=json").json()
    assert exported["total"] == 2
    refused = client.get("/services?kind=teleporter")
    assert refused.status_code == 422 and "teleporter" in refused.text


def test_an_operator_works_on_their_own_facility_only_and_stale_edits_are_refused(site):  # noqa: ANN001
    broker, client = site
    signed_in(broker, client, "olga", operator_of="ill")
    assert client.get("/operator", follow_redirects=False).headers["location"].endswith("/operator/ill")
    assert client.get("/operator/esrf").status_code == 404  # what one may not edit is not there
    form = client.get("/operator/ill/services/ill-visa/edit").text
    token, version = token_of(form), re.search(r'name="version" value="(\d+)"', form).group(1)
    assert client.post("/operator/esrf/services", data={"csrf_token": token, "id": "x", "title": "x",
                                                         "kind": "visa"}).status_code == 404
    # the esrf service cannot be reached through the ill console either
    assert client.post("/operator/ill/services/esrf-visa", data={"csrf_token": token, "title": "Mine",
                                                                 "version": "1"}).status_code == 404
    saved = client.post("/operator/ill/services/ill-visa", data={"csrf_token": token, "title": "ILL VISA (new)",
                                                                  "kind": "visa", "version": version,
                                                                  "base_url": "https://visa.ill.example"},
                        follow_redirects=False)
    assert saved.status_code == 303, re.findall(r"field-error[^<]*<|notice error[^<]*<[^<]*", saved.text)
    assert broker.registry.get(KINDS.service, "ill-visa")["title"] == "ILL VISA (new)"
    stale = client.post("/operator/ill/services/ill-visa", data={"csrf_token": token, "title": "Older",
                                                                  "kind": "visa", "version": version})
    assert stale.status_code == 409 and "reload" in stale.text and 'value="Older"' in stale.text
    assert broker.registry.get(KINDS.service, "ill-visa")["title"] == "ILL VISA (new)"  # nothing lost
    assert client.post("/operator/ill/services", data={"title": "no token", "kind": "visa"}).status_code == 403
    foreign = client.post("/operator/ill/services", headers={"Origin": "https://evil.example"},
                          data={"csrf_token": token, "id": "ill-x", "title": "x", "kind": "visa"})
    assert foreign.status_code == 403
    current = broker.registry.get(KINDS.service, "ill-visa")["version"]
    deleted = client.post("/operator/ill/services/ill-visa/delete", data={"csrf_token": token,
                                                                           "version": str(current)},
                          follow_redirects=False)
    assert deleted.status_code == 303 and broker.registry.list(KINDS.service, {"facility": "ill"}).total == 0
    audit = client.get("/operator/ill").text
    assert "delete service" in audit and "update service" in audit


def test_the_analyse_form_refuses_bad_resources_beside_the_field_and_a_retry_is_the_same_launch(site):  # noqa: ANN001
    broker, client = site
    signed_in(broker, client, "alice")
    page = client.get("/datasets/ill/1").text
    token = token_of(page)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page).group(1)
    refused = client.post("/analyse", data={"csrf_token": token, "dataset": "ill/1", "idempotency_key": key,
                                            "service_id": "ill-visa", "cpus": "2.5"})
    assert refused.status_code == 422 and "a whole number" in refused.text and 'value="2.5"' in refused.text
    body = {"csrf_token": token, "dataset": "ill/1", "idempotency_key": key, "service_id": "ill-visa"}
    first = client.post("/analyse", data=body, follow_redirects=False)
    again = client.post("/analyse", data=body, follow_redirects=False)  # a double click
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    session_page = client.get(first.headers["location"])
    assert session_page.status_code == 200 and "ILL VISA at" in session_page.text  # the service by its title
    assert len(broker.launches.list(Principal(f"person:{broker.people.find('idp', 'alice')['id']}"))) == 1
    other = signed_in(broker, client, "mallory")
    assert client.get(first.headers["location"]).status_code == 404 and other  # someone else's session


def test_more_filters_take_ranges_in_the_users_units_and_refuse_what_is_not_a_number(site):  # noqa: ANN001
    from connectors.panosc_mapping import parameter

    broker, client = site
    broker.index.upsert([Dataset(pid=f"ill/t{k}", facility="ill", title=f"Lysozyme at {k} K", source="s",
                                 parameters=(parameter("sample_temperature", float(k), "K"),))
                         for k in (4, 295, 350)])
    broker.index.commit()
    page = client.get("/search", params={"q": "lysozyme", "sample_temperature.min": "0",
                                         "sample_temperature.max": "30", "sample_temperature.unit": "°C"},
                      follow_redirects=True)  # the form's fields become one parameter in the URL
    assert page.status_code == 200 and "1 dataset" in page.text and "Lysozyme at 295 K" in page.text
    assert "Sample temperature 0–30 °C" in page.text  # listed as an active filter, with a link removing it
    removed = re.search(r'href="([^"]+)">Sample temperature', page.text).group(1).replace("&amp;", "&")
    assert "4 datasets" in client.get(removed).text  # the three and the fixture's SANS of lysozyme
    paged = re.search(r'href="(/search\?[^"]*parameter=[^"]*)"', page.text)  # links carry the range on
    assert paged and "sample_temperature%3A0..30%3A%C2%B0C" in paged.group(1)
    refused = client.get("/search", params={"q": "lysozyme", "sample_temperature.min": "warm"})
    assert refused.status_code == 400 and 'id="err-sample_temperature.min"' in refused.text
    assert 'value="warm"' in refused.text  # what the user typed stays in the field


def test_the_analyse_panel_offers_the_partitions_of_the_services_that_fit(site):  # noqa: ANN001
    broker, client = site
    broker.registry.create(ADMIN, KINDS.service, {
        "id": "ill-hub", "facility_id": "ill", "kind": "jupyterhub", "title": "ILL hub", "base_url": "https://hub.ill.example",
        "capabilities": {"max_cpus": 8, "partitions": [{"id": "x86"}, {"id": "gpu", "gpu": True}]}})
    signed_in(broker, client, "bea")
    page = client.get("/datasets/ill/1").text
    assert re.search(r'<select id="partition" name="partition"[^>]*>.*?<option>x86</option>\s*<option>gpu</option>', page, re.S)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page).group(1)
    launched = client.post("/analyse", data={"csrf_token": token_of(page), "dataset": "ill/1", "idempotency_key": key,
                                             "service_id": "ill-hub", "partition": "gpu"}, follow_redirects=False)
    assert launched.status_code == 303
    launch = client.get("/api/v1/launches/" + launched.headers["location"].rsplit("/", 1)[1]).json()
    assert launch["request"]["resources"] == {"partition": "gpu"}


def test_an_operator_registers_a_search_endpoint_and_an_eosc_entry_and_both_are_listed(site):  # noqa: ANN001
    broker, client = site
    signed_in(broker, client, "otto", operator_of="ill")
    form = client.get("/operator/ill/search-endpoints/new").text
    token = token_of(form)
    refused = client.post("/operator/ill/search-endpoints", data={"csrf_token": token, "id": "ill-search",
                                                                   "kind": "panosc-search-api", "base_url": "",
                                                                   "harvest_schedule": "every day"})
    assert refused.status_code == 422 and 'id="err-base_url"' in refused.text and 'value="every day"' in refused.text
    created = client.post("/operator/ill/search-endpoints", follow_redirects=False, data={
        "csrf_token": token, "id": "ill-search", "kind": "panosc-search-api",
        "base_url": "https://search.ill.example/api", "harvest_schedule": "0 3 * * *"})
    assert created.status_code == 303
    assert "esrf-visa" not in client.get("/operator/ill/eosc-entries/new").text  # only this facility's services
    entry = client.post("/operator/ill/eosc-entries", follow_redirects=False, data={
        "csrf_token": token, "service_id": "ill-visa", "status": "not-registered"})
    assert entry.status_code == 303
    foreign = client.post("/operator/ill/eosc-entries", data={"csrf_token": token, "service_id": "esrf-visa"})
    assert foreign.status_code == 422 and 'id="err-service_id"' in foreign.text
    console = client.get("/operator/ill").text
    endpoints = console[console.index('id="search-endpoints"'):console.index('id="eosc-entries"')]
    entries = console[console.index('id="eosc-entries"'):console.index('id="audit"')]
    assert "ill-search" in endpoints and "every day at 03:00 UTC" in endpoints  # the schedule in words
    assert "ill-visa" in entries and "Not in the EOSC catalogue" in entries
    audit = console[console.index('id="audit"'):]
    assert "create search-endpoint" in audit and "create eosc-entry" in audit


def test_the_landing_page_suggests_only_searches_that_find_datasets_and_lists_every_facility(site):  # noqa: ANN001
    from broker.landing import ExampleSearch

    broker, client = site
    home = broker.landing.home()
    assert home.examples == (ExampleSearch("SANS", 1), ExampleSearch("lysozyme", 1))  # the others find nothing
    assert [(f.name, f.datasets, f.services) for f in home.facilities] == [("ESRF", 0, ("ESRF VISA",)),
                                                                          ("ILL", 1, ("ILL VISA",))]
    assert home.facilities == broker.landing.facilities()
    page = client.get("/").text
    assert '<a href="/search?q=SANS">SANS</a> <span class="count">(1)</span>' in page
    assert "Analyse in: ILL VISA" in page and "No datasets harvested yet" in page  # ESRF's card


def test_the_landing_counts_are_read_again_once_a_minute_not_on_every_visit(site):  # noqa: ANN001
    from broker.landing import TTL_SECONDS, LandingPages

    broker, _client = site
    now = [1000.0]
    landing = LandingPages(broker.search, broker.catalogue, clock=lambda: now[0])
    assert [f.datasets for f in landing.home().facilities] == [0, 1]
    broker.index.upsert([Dataset(pid="esrf/1", facility="esrf", title="SAXS of lysozyme", source="s")])
    broker.index.commit()
    now[0] += TTL_SECONDS / 2
    assert [f.datasets for f in landing.facilities()] == [0, 1]
    assert [(e.words, e.count) for e in landing.home().examples] == [("SANS", 1), ("lysozyme", 1)]
    now[0] += TTL_SECONDS
    assert [f.datasets for f in landing.facilities()] == [1, 1]
    assert [(e.words, e.count) for e in landing.home().examples] == [("SANS", 1), ("lysozyme", 2), ("SAXS", 1)]
