"""Search that forgives what people type, on every index backend: PaNET abbreviations and alternative
labels, facility names and acronyms, word forms, words of the proposal a dataset belongs to."""
from __future__ import annotations

import pytest

from panmodel.datasets import Dataset, DocumentRef, SearchRequest
from broker.search.synonyms import FACILITIES, expand
from tests.test_portal_pages import site  # noqa: F401 - the portal fixture
from tests.test_search_index import index, pids  # noqa: F401 - the shared backend fixture


@pytest.fixture(autouse=True)
def facility_names():  # noqa: ANN201
    FACILITIES.know([("ill", "Institut Laue-Langevin (ILL)"), ("esrf", "European Synchrotron Radiation Facility (ESRF)"),
                     ("ess", "European Spallation Source")])
    yield
    FACILITIES.know([])


def test_an_abbreviation_finds_the_technique_it_stands_for_and_only_that(index):  # noqa: ANN001, F811
    assert sorted(pids(index.search(SearchRequest(q="SANS")))) == ["ess/1", "ill/1"]
    assert pids(index.search(SearchRequest(q="saxs"))) == ["esrf/1"]
    assert pids(index.search(SearchRequest(q="lysozyme SANS"))) == ["ill/1"]


def test_a_facility_name_or_acronym_narrows_like_a_word_of_the_record(index):  # noqa: ANN001, F811
    assert pids(index.search(SearchRequest(q="lysozyme ESRF"))) == ["esrf/1"]
    assert pids(index.search(SearchRequest(q="lysozyme European Synchrotron Radiation Facility"))) == ["esrf/1"]
    assert pids(index.search(SearchRequest(q="calibration European Spallation Source"))) == ["ess/1"]
    assert pids(index.search(SearchRequest(q="calibration esrf"))) == []


def test_other_word_forms_instrument_names_and_the_proposal_title_match(index):  # noqa: ANN001, F811
    assert pids(index.search(SearchRequest(q="batteries"))) == ["esrf/2"]
    assert pids(index.search(SearchRequest(q="lysozyme BM29"))) == ["esrf/1"]
    assert pids(index.search(SearchRequest(q="operando cathode"))) == ["esrf/2"]


def test_a_query_without_other_names_is_left_as_typed():
    assert expand("lysozyme hydration") is None
    terms = expand("tomography of SAXS")
    assert [t.text for t in terms] == ["tomography", "of", "SAXS"]
    assert "small angle x-ray scattering" in [p.lower() for p in terms[2].phrases]
    assert expand("x-ray absorption spectroscopy")[0].text == "x ray absorption spectroscopy"


def test_the_search_page_goes_straight_to_an_identifier_and_checks_ranges_at_the_field(site):  # noqa: ANN001, F811
    broker, client = site
    broker.index.upsert([
        Dataset(pid="ill/2", facility="ill", title="Hydration shells", source="s", doi="10.5291/ILL-DATA.1-2-3",
                documents=(DocumentRef("9-13-612", "Lysozyme hydration", "proposal"),)),
        Dataset(pid="ill/3", facility="ill", title="Hydration shells again", source="s",
                documents=(DocumentRef("9-13-612", "Lysozyme hydration", "proposal"),)),
        Dataset(pid="ill/4", facility="ill", title="Alone in its proposal", source="s",
                documents=(DocumentRef("5-01-1"),))])
    broker.index.commit()
    for typed in ("10.5291/ILL-DATA.1-2-3", "doi:10.5291/ill-data.1-2-3", "https://doi.org/10.5291/ILL-DATA.1-2-3",
                  "ill/2"):
        found = client.get("/search", params={"q": typed}, follow_redirects=False)
        assert found.status_code == 303 and found.headers["location"] == "/datasets/ill/2", typed
    assert client.get("/search", params={"q": "5-01-1"}, follow_redirects=False).headers["location"] == "/datasets/ill/4"
    proposal = client.get("/search", params={"q": "9-13-612"})
    assert proposal.status_code == 200 and "2 datasets" in proposal.text and "proposal or publication" in proposal.text
    reversed_range = client.get("/search", params={"q": "hydration", "sample_temperature.min": "300",
                                                   "sample_temperature.max": "10"})
    assert reversed_range.status_code == 400
    assert 'id="err-sample_temperature.max">at least 300 (From is the lower end)' in reversed_range.text
    years = client.get("/search", params={"year_from": "2024", "year_to": "2020"})
    assert years.status_code == 400 and 'id="err-year_to"' in years.text
    tidy = client.get("/search", params={"q": "hydration", "year_from": "", "sample_pressure.min": "",
                                         "sample_pressure.unit": "bar", "facility": ""}, follow_redirects=False)
    assert tidy.status_code == 303 and tidy.headers["location"] == "/search?q=hydration"


def test_a_chosen_facility_keeps_the_others_offered_and_an_empty_result_suggests(site):  # noqa: ANN001, F811
    broker, client = site
    broker.index.upsert([Dataset(pid="esrf/1", facility="esrf", title="SAXS of lysozyme", source="s")])
    broker.index.commit()
    one = client.get("/search", params={"q": "lysozyme", "facility": "ill"}).text
    facets = one.split('<h3>Facility</h3>')[1].split("</section>")[0]
    assert "ILL" in facets and "ESRF" in facets and facets.count('class="facet-choice on"') == 1
    both = client.get("/search", params=[("q", "lysozyme"), ("facility", "ill"), ("facility", "esrf")]).text
    assert "2 datasets" in both
    empty = client.get("/search", params={"q": "lysozyme unobtainium", "facility": "esrf"}).text
    assert "No dataset matches" in empty and 'href="/search?facility=esrf&amp;q=lysozyme"' in empty


def test_the_search_page_view_names_the_facilities_it_shows_and_refuses_bad_parameters(site):  # noqa: ANN001, F811
    from broker.search.page import SearchPage
    from panmodel.errors import InvalidInput

    broker, _client = site
    page = broker.search_pages.view({"q": "lysozyme"})
    assert [d.pid for d in page.result.items] == ["ill/1"] and page.names == {"esrf": "ESRF", "ill": "ILL"}
    assert broker.search_pages.view({"q": "ill/1"}) == SearchPage(dataset="ill/1")  # straight to the dataset
    with pytest.raises(InvalidInput):
        broker.search_pages.view({"q": "lysozyme", "page": "0"})
