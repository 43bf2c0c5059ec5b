"""Search that forgives what people type, on every index backend: PaNET abbreviations and alternative
labels, facility names and acronyms, word forms, words of the proposal a dataset belongs to."""
from __future__ import annotations

import pytest

from broker.search.model import SearchRequest
from broker.search.synonyms import FACILITIES, expand
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


def test_other_word_forms_and_the_proposal_title_match(index):  # noqa: ANN001, F811
    assert pids(index.search(SearchRequest(q="batteries"))) == ["esrf/2"]
    assert pids(index.search(SearchRequest(q="operando cathode"))) == ["esrf/2"]


def test_a_query_without_other_names_is_left_as_typed():
    assert expand("lysozyme hydration") is None
    terms = expand("tomography of SAXS")
    assert [t.text for t in terms] == ["tomography", "of", "SAXS"]
    assert "small angle x-ray scattering" in [p.lower() for p in terms[2].phrases]
    assert expand("x-ray absorption spectroscopy")[0].text == "x ray absorption spectroscopy"
