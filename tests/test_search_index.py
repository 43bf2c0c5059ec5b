"""The shared behavioural suite every index backend must pass: embedded Tantivy always, Elasticsearch
when PANBROKER_ELASTICSEARCH_URL is set."""
from __future__ import annotations

import os
import uuid
import warnings
from datetime import datetime, timezone

import pytest

from panmodel.errors import InvalidInput
from panmodel.datasets import Dataset, DocumentRef, Range, SearchRequest, Sort, TechniqueRef
from broker.search.es_index import ElasticsearchIndex
from broker.search.tantivy_index import TantivyIndex
from demo import federation as sim
from demo.es_simulator import SimulatedElasticsearch
from panmodel.techniques import panet
from broker.search.service import parameter_range
from panmodel.units import canonical_name
from connectors.panosc_mapping import parameter

ES_URL = os.environ.get("PANBROKER_ELASTICSEARCH_URL")


def technique(name: str) -> TechniqueRef:
    return TechniqueRef(name, panet().resolve(name)[0])


def dataset(pid: str, title: str, facility: str = "ill", year: int = 2021, **extra) -> Dataset:  # noqa: ANN003
    return Dataset(pid=pid, facility=facility, title=title, source=f"{facility}-search",
                   creation_date=datetime(year, 6, 1, tzinfo=timezone.utc), **extra)


CORPUS = [
    dataset("ill/1", "Lysozyme in D2O by small angle neutron scattering", instrument="D22",
            techniques=(technique("small angle neutron scattering"),),
            parameters=(parameter("sample_temperature", 295, "K"), parameter("incident_wavelength", 6, "Å"))),
    dataset("ill/2", "Spin waves in a frustrated magnet", instrument="IN5", year=2019,
            summary="inelastic measurement; lysozyme not involved at all",
            techniques=(technique("inelastic neutron spectroscopy"),),
            parameters=(parameter("sample_temperature", 1.5, "K"),)),
    dataset("esrf/1", "Lysozyme solutions, concentration series", facility="esrf", instrument="BM29", year=2022,
            doi="10.15151/ESRF-ES-1", techniques=(technique("small angle x-ray scattering"),),
            parameters=(parameter("sample_temperature", 20, "°C"), parameter("incident_photon_energy", 12.5, "keV"))),
    dataset("esrf/2", "Battery cathode powder diffraction", facility="esrf", instrument="ID31", year=2023,
            is_public=False, techniques=(technique("x-ray powder diffraction"),),
            parameters=(parameter("sample_pressure", 10, "bar"),),
            documents=(DocumentRef("ESRF-CH-1", "Operando batteries", "proposal", keywords=("battery",)),)),
    dataset("ess/1", "Silver behenate calibration", facility="ess", instrument="LoKI", year=2024,
            techniques=(technique("small angle neutron scattering"),),
            parameters=(parameter("magnetic_field_strength", 500, "mT"), parameter("sample_state", "solid", None))),
]


def _elasticsearch(url: str) -> ElasticsearchIndex:
    return ElasticsearchIndex(url, prefix=f"panbroker-test-{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=["tantivy", "elasticsearch-simulated", "elasticsearch"])
def index(request, tmp_path):  # noqa: ANN001, ANN201
    federation = None
    if request.param == "tantivy":
        built = TantivyIndex(tmp_path / "index")
    elif request.param == "elasticsearch-simulated":
        federation = sim.Federation()
        federation.add("es", SimulatedElasticsearch())
        federation.start()
        built = _elasticsearch(federation.url("es"))
    else:
        if not ES_URL:
            warnings.warn("PANBROKER_ELASTICSEARCH_URL is not set: the suite runs against the simulated "
                          "Elasticsearch only; the real one is SKIPPED", stacklevel=1)
            pytest.skip("PANBROKER_ELASTICSEARCH_URL is not set; real Elasticsearch not tested")
        built = _elasticsearch(ES_URL)
    built.upsert(CORPUS)
    built.commit()
    yield built
    if isinstance(built, ElasticsearchIndex):
        built.es.indices.delete(index=f"{built.alias}-*")
    built.close()
    if federation:
        federation.stop()


def pids(result) -> list[str]:  # noqa: ANN001
    return [d.pid for d in result.items]


def test_bm25_ranks_title_matches_above_summary_mentions(index):  # noqa: ANN001
    result = index.search(SearchRequest(q="lysozyme"))
    assert result.total == 3
    assert pids(result)[-1] == "ill/2"  # only its summary mentions lysozyme
    assert set(pids(result)[:2]) == {"ill/1", "esrf/1"}


def test_keywords_of_the_proposal_are_searchable(index):  # noqa: ANN001
    assert pids(index.search(SearchRequest(q="battery"))) == ["esrf/2"]


def test_facets_count_each_value_over_all_matches(index):  # noqa: ANN001
    result = index.search(SearchRequest(q="lysozyme", limit=1, facets=("facility", "instrument", "access", "year")))
    facility = {b.value: b.count for b in result.facets["facility"]}
    assert facility == {"ill": 2, "esrf": 1}
    assert {b.value: b.count for b in result.facets["access"]} == {"public": 3}
    assert [b.value for b in result.facets["year"]] == ["2022", "2021", "2019"]


def test_a_technique_matches_its_descendants_and_the_facet_is_labelled(index):  # noqa: ANN001
    small_angle = tuple(panet().resolve("small angle scattering"))
    result = index.search(SearchRequest(techniques=small_angle, facets=("technique",)))
    assert set(pids(result)) == {"ill/1", "esrf/1", "ess/1"}
    labels = {b.label for b in result.facets["technique"]}
    assert labels == {"small angle neutron scattering", "small angle x-ray scattering"}


def test_parameter_ranges_compare_in_si_units(index):  # noqa: ANN001
    # 20 °C = 293.15 K falls in 290..300 K with the 295 K dataset; 1.5 K does not
    warm = index.search(SearchRequest(parameters=(("sample_temperature", parameter_range(290, 300, "K")),)))
    assert set(pids(warm)) == {"ill/1", "esrf/1"}
    # the same range asked in °C, and energies stored in keV asked in eV
    celsius = index.search(SearchRequest(parameters=(("sample_temperature", parameter_range(16.85, 26.85, "°C")),)))
    assert set(pids(celsius)) == {"ill/1", "esrf/1"}
    energy = index.search(SearchRequest(parameters=(("incident_photon_energy", parameter_range(12000, None, "eV")),)))
    assert pids(energy) == ["esrf/1"]
    wavelength = index.search(SearchRequest(parameters=(("incident_wavelength", parameter_range(0.5, 0.7, "nm")),)))
    assert pids(wavelength) == ["ill/1"]
    # a length range never matches a temperature stored under the same name
    assert pids(index.search(SearchRequest(parameters=(("sample_temperature", parameter_range(0, 1e9, "m")),)))) == []


def test_any_parameter_name_is_searchable_in_any_unit_and_by_text_value(index):  # noqa: ANN001
    # not one of the common quantities: a magnetic field stored in mT, asked in gauss (1 G = 0.1 mT)
    field = index.search(SearchRequest(parameters=(("magnetic_field_strength", parameter_range(4000, 6000, "G")),)))
    assert pids(field) == ["ess/1"]
    # "temperature" is the reference's name for what the portal calls sample_temperature
    assert canonical_name("temperature") == "sample_temperature"
    solid = index.search(SearchRequest(parameter_values=(("sample_state", "Solid"),)))
    assert pids(solid) == ["ess/1"]


def test_filters_combine_with_text(index):  # noqa: ANN001
    assert pids(index.search(SearchRequest(q="lysozyme", facilities=("esrf",)))) == ["esrf/1"]
    assert pids(index.search(SearchRequest(is_public=False))) == ["esrf/2"]
    assert set(pids(index.search(SearchRequest(years=Range(2022, 2023))))) == {"esrf/1", "esrf/2"}
    assert pids(index.search(SearchRequest(instruments=("LoKI",)))) == ["ess/1"]
    # a few values (a union of terms) and many (a term set in the embedded index) select alike
    assert pids(index.search(SearchRequest(q="lysozyme", facilities=("esrf", "ess")))) == ["esrf/1"]
    assert set(pids(index.search(SearchRequest(q="lysozyme", facilities=("ill", "esrf"))))) == {"ill/1", "ill/2",
                                                                                                   "esrf/1"}
    many = tuple(f"unknown/{i}" for i in range(20))
    assert pids(index.search(SearchRequest(facilities=("ess", *many)))) == ["ess/1"]
    assert set(pids(index.search(SearchRequest(pids=("ILL/1", "esrf/2", *many))))) == {"ill/1", "esrf/2"}


def test_sort_by_date_and_default_order_without_text(index):  # noqa: ANN001
    newest = pids(index.search(SearchRequest(sort=Sort.NEWEST)))
    assert newest == ["ess/1", "esrf/2", "esrf/1", "ill/1", "ill/2"]
    assert pids(index.search(SearchRequest(sort=Sort.OLDEST))) == list(reversed(newest))
    assert pids(index.search(SearchRequest())) == newest


def test_page_two_continues_page_one(index):  # noqa: ANN001
    for request in (SearchRequest(q="lysozyme scattering"), SearchRequest()):
        everything = pids(index.search(SearchRequest(**{**request.__dict__, "limit": 10})))
        pages = [pids(index.search(SearchRequest(**{**request.__dict__, "offset": o, "limit": 2}))) for o in (0, 2, 4)]
        assert sum(pages, []) == everything


def test_deep_paging_is_refused_with_a_clear_error(index):  # noqa: ANN001
    with pytest.raises(InvalidInput, match="deeper than"):
        index.search(SearchRequest(offset=9_995, limit=10))


def test_lookup_by_pid_or_doi_in_any_case(index):  # noqa: ANN001
    assert index.get("ill/1").title.startswith("Lysozyme in D2O")
    assert index.get("10.15151/esrf-es-1").pid == "esrf/1"
    assert index.get("nope") is None
    record = index.get("ill/1")
    assert record.parameters[0].si_value == 295.0 and record.techniques[0].iri.endswith("PaNET01189")


def test_upsert_replaces_and_delete_removes(index):  # noqa: ANN001
    index.upsert([dataset("ill/1", "Renamed dataset")])
    index.delete(["ess/1"])
    index.commit()
    assert index.count() == 4
    assert index.get("ill/1").title == "Renamed dataset"
    assert index.pids("ill-search") == {"ill/1", "ill/2"}
    index.delete_source("esrf-search")
    index.commit()
    assert index.count() == 2


def test_pid_order_is_stable_for_harvesters(index):  # noqa: ANN001
    assert pids(index.search(SearchRequest(sort=Sort.PID, limit=3))) == ["esrf/1", "esrf/2", "ess/1"]
    assert pids(index.search(SearchRequest(sort=Sort.PID, offset=3, limit=3))) == ["ill/1", "ill/2"]


def test_a_rebuild_swaps_the_alias_atomically(index):  # noqa: ANN001
    if not isinstance(index, ElasticsearchIndex):
        pytest.skip("alias swaps are an Elasticsearch backend feature")
    before = set(index.es.indices.get_alias(name=index.alias).body)
    index.rebuild(CORPUS[:2])
    after = set(index.es.indices.get_alias(name=index.alias).body)
    assert len(after) == 1 and not before & after
    assert index.count() == 2 and index.get("ill/2") is not None


def test_the_elasticsearch_query_is_text_that_scores_and_filters_that_do_not():
    from broker.search.es_index import to_query, to_sort
    from panmodel.datasets import Range

    request = SearchRequest(q="lysozyme", facilities=("ill",), is_public=True,
                            parameters=(("sample_temperature", Range(290, None, "K")),))
    query = to_query(request)["bool"]
    assert query["must"][0]["multi_match"]["fields"][0] == "title^3"
    assert {"terms": {"facility": ["ill"]}} in query["filter"]
    assert {"term": {"access": "public"}} in query["filter"]
    assert {"range": {"params.sample_temperature__K": {"gte": 290}}} in query["filter"]
    assert to_sort(request) == ["_score", {"pid": "asc"}]
    assert to_sort(SearchRequest()) == [{"date": {"order": "desc"}}, {"pid": "asc"}]


def test_the_backend_is_chosen_by_settings(tmp_path):  # noqa: ANN001
    from panbroker.app import make_index
    from tests.conftest import make_settings

    with sim.Federation() as fed:
        fed.add("es", SimulatedElasticsearch())
        fed.start()
        chosen = make_index(make_settings(tmp_path, elasticsearch_url=fed.url("es")))
        assert isinstance(chosen, ElasticsearchIndex)
        chosen.close()
    assert isinstance(make_index(make_settings(tmp_path)), TantivyIndex)


def test_every_word_must_match_somewhere_unless_any_word_is_asked_for(index):  # noqa: ANN001
    # "magnet" is in ill/2's title and "lysozyme" in its summary: words may match in different fields
    assert pids(index.search(SearchRequest(q="lysozyme magnet"))) == ["ill/2"]
    assert set(pids(index.search(SearchRequest(q="lysozyme magnet", any_term=True)))) == {"ill/1", "ill/2", "esrf/1"}


def test_sources_a_pid_held_by_another_endpoint_and_excluded_sources(index):  # noqa: ANN001
    """What index hygiene rests on, alike on every backend."""
    assert index.sources() == {"ill-search", "esrf-search", "ess-search"}
    assert index.held_elsewhere(["ill/1", "esrf/1", "nowhere/1"], "ill-search") == {"esrf/1": "esrf-search"}
    assert index.held_elsewhere(["ill/1"], "ill-search") == {}
    kept = index.search(SearchRequest(q="lysozyme", exclude_sources=("esrf-search",)))
    assert set(pids(kept)) == {"ill/1", "ill/2"}
    assert pids(index.search(SearchRequest(exclude_sources=("ill-search", "esrf-search")))) == ["ess/1"]


def test_a_commit_that_fails_drops_what_it_did_not_commit(tmp_path):  # noqa: ANN001
    """Documents a failed commit held are not committed later beside another copy of them (a first harvest adds
    without a look-up of an older version): the index stays as last committed."""
    index = TantivyIndex(tmp_path)
    index.upsert([dataset("kept", "Kept")])
    index.commit()
    index.upsert([dataset("lost", "Lost")])
    real = index._w()

    class FailingCommit:
        def __getattr__(self, name: str):  # noqa: ANN204
            return getattr(real, name)

        def commit(self) -> None:
            raise ValueError("No space left on device")

    index._writer = FailingCommit()
    with pytest.raises(ValueError):
        index.commit()
    index._writer = real
    index.upsert_prepared(index.prepare([dataset("after", "After")]), absent={"after"})
    index.commit()
    assert index.count() == 2 and index.get("lost") is None and index.get("after").title == "After"
    index.close()
