""""Analyse this DOI": /analyse/<DOI> resolves a dataset's own DOI or a proposal/publication DOI to its datasets
across facilities, sends a signed-out visitor through sign-in and back, opens the Analyse step with ?service=
and ?profile= preselected (refusing a service that cannot take the dataset, visibly); and its badge."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree

from panbroker.app import build_broker, create_app
from broker.authz import Principal
from broker.registry_kinds import KINDS
from panmodel.datasets import Dataset, DocumentRef
from panmodel.errors import NotFound
from tests.test_portal_pages import signed_in, two_facilities_with_visa

ADMIN = Principal("test", admin=True)
PAPER = "10.1107/S1600576721000001"  # a publication with datasets at two facilities


@pytest.fixture
def site(sqlite_settings):  # noqa: ANN001, ANN201
    broker = build_broker(sqlite_settings)
    two_facilities_with_visa(broker)
    broker.registry.create(ADMIN, KINDS.service, {
        "id": "ill-hub", "facility_id": "ill", "kind": "jupyterhub", "title": "ILL hub",
        "base_url": "https://hub.ill.example", "capabilities": {"profiles": ["x86", "gpu"]}})
    paper = DocumentRef("pub-1", "Lysozyme by neutrons and X-rays", "publication", PAPER)
    broker.index.upsert([
        Dataset(pid="ill/1", facility="ill", title="SANS of lysozyme", doi="10.5291/ILL-DATA.1", documents=(paper,)),
        Dataset(pid="esrf/1", facility="esrf", title="SAXS of lysozyme", documents=(paper,)),
        Dataset(pid="esrf/2", facility="esrf", title="Unrelated", doi="10.15151/ESRF-DC-2")])
    broker.index.commit()
    yield broker, create_app(broker=broker).test_client()
    broker.index.close()


def test_a_signed_out_visitor_is_sent_to_sign_in_and_back_to_the_same_link(site):  # noqa: ANN001
    _broker, client = site
    response = client.get("/analyse/doi:10.5291/ILL-DATA.1?service=ill-hub&profile=gpu", follow_redirects=False)
    assert response.status_code == 303
    target = urlsplit(response.headers["location"])
    assert target.path == "/signin"
    back = parse_qs(target.query)["next"][0]
    assert back == "/analyse/10.5291/ILL-DATA.1?service=ill-hub&profile=gpu"


def test_a_dataset_doi_opens_its_analyse_step_with_the_service_and_profile_preselected(site):  # noqa: ANN001
    broker, client = site
    signed_in(broker, client, "ada")
    page = client.get("/analyse/https://doi.org/10.5291/ILL-DATA.1?service=ill-hub&profile=gpu").text
    assert "<h1>SANS of lysozyme</h1>" in page
    assert re.search(r'id="svc-ill-hub" name="service_id" value="ill-hub"[^>]*\bchecked', page)
    assert not re.search(r'id="svc-ill-visa" name="service_id" value="ill-visa"[^>]*\bchecked', page)
    assert re.search(r"<option selected>gpu</option>", page)


def test_a_service_that_cannot_take_the_dataset_is_said_and_not_preselected(site):  # noqa: ANN001
    broker, client = site
    signed_in(broker, client, "ada")
    page = client.get("/analyse/10.5291/ILL-DATA.1?service=esrf-visa").text
    assert "asks for the service &#39;esrf-visa&#39;, which cannot take this dataset" in page
    assert 'id="svc-esrf-visa"' not in page  # offered nowhere as a choice
    assert len(re.findall(r'name="service_id" value="ill-[a-z]+"[^>]*\bchecked', page)) == 1  # the usual default


def test_a_publication_doi_lists_its_datasets_at_every_facility_each_carrying_the_preselection(site):  # noqa: ANN001
    broker, client = site
    signed_in(broker, client, "ada")
    page = client.get(f"/analyse/{PAPER}?profile=gpu").text
    assert "names 2 datasets at 2 facilities" in page
    assert '<a href="/analyse/ill/1?profile=gpu">SANS of lysozyme</a>' in page
    assert '<a href="/analyse/esrf/1?profile=gpu">SAXS of lysozyme</a>' in page
    assert "Unrelated" not in page


def test_an_unknown_doi_is_a_clear_not_found_page(site):  # noqa: ANN001
    _broker, client = site
    response = client.get("/analyse/10.9999/nothing-here")
    assert response.status_code == 404 and "No dataset with the DOI 10.9999/nothing-here" in response.text


@pytest.mark.parametrize("doi, text", [(PAPER, "2 datasets"), ("10.15151/ESRF-DC-2", "1 dataset"),
                                       ("10.9999/unknown", "PaN data"), ("", "PaN data"),
                                       ("<script>", "PaN data"), ("10." + "9" * 5000, "PaN data")])
def test_the_badge_is_an_svg_image_saying_how_many_datasets_the_doi_has(site, doi, text):  # noqa: ANN001
    _broker, client = site
    response = client.get("/analyse-badge.svg", params={"doi": doi} if doi else {})
    assert response.status_code == 200 and response.headers["content-type"].startswith("image/svg+xml")
    svg = etree.fromstring(response.content)
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert svg.findtext("{http://www.w3.org/2000/svg}title") == f"Analyse: {text}"


def test_the_doi_view_asks_nobody_signed_in_to_sign_in_and_shows_them_nothing_else(site):  # noqa: ANN001
    broker, _client = site
    view = broker.analyse.doi(None, "doi:10.5291/ILL-DATA.1", "ill-hub", "gpu")
    assert view.sign_in and view.doi == "10.5291/ILL-DATA.1"
    assert (view.groups, view.panel, view.chosen, view.note) == ((), None, {}, "")
    with pytest.raises(NotFound):
        broker.analyse.doi(None, "10.9999/nothing-here")  # an unknown DOI is said to everyone alike


def test_the_doi_view_preselects_only_a_service_the_viewer_is_offered(site):  # noqa: ANN001
    broker, _client = site
    ada = broker.people.principal(signed_in_person(broker, "ada", "idp"))
    view = broker.analyse.doi(ada, "https://doi.org/10.5291/ILL-DATA.1", "ill-hub", "gpu")
    assert view.panel.dataset.pid == "ill/1" and view.chosen == {"service_id": "ill-hub", "profile": "gpu"}
    assert view.note == "" and not view.sign_in
    # a person whose identity ILL does not accept is offered no ILL service: the link's is not preselected
    eve = broker.people.principal(signed_in_person(broker, "eve", "elsewhere"))
    refused = broker.analyse.doi(eve, "10.5291/ILL-DATA.1", "ill-hub")
    assert "ill-hub" not in {o.service_id for o in refused.panel.offers}
    assert refused.chosen == {} and "asks for the service 'ill-hub', which cannot take this dataset" in refused.note


def test_the_doi_view_of_a_publication_lists_its_datasets_by_facility(site):  # noqa: ANN001
    broker, _client = site
    ada = broker.people.principal(signed_in_person(broker, "ada", "idp"))
    view = broker.analyse.doi(ada, PAPER, "ill-hub")
    assert [(g.facility, [d.pid for d in g.datasets]) for g in view.groups] == [("esrf", ["esrf/1"]),
                                                                               ("ill", ["ill/1"])]
    assert view.count == 2 and view.panel is None  # each dataset opens its own Analyse step
    assert broker.analyse.doi_count(f"doi:{PAPER}") == 2 and broker.analyse.doi_count("") == 0


def signed_in_person(broker, name: str, issuer: str) -> str:  # noqa: ANN001
    return broker.people.create(ADMIN, {"display_name": name, "identities": [{"issuer": issuer, "subject": name}]})["id"]
