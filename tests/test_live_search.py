"""Live fan-out against simulated facilities, some slow, some broken: one deadline, honest sources,
global paging, a merged ranking without facility scores, duplicates merged."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from werkzeug.wrappers import Response

from broker.authz import Principal
from broker.registry_kinds import KINDS
from panmodel.datasets import SearchRequest, Sort, SourceState
from broker.search.service import parse_query
from demo import federation as sim
from demo.catalogue import generate
from tests.conftest import make_settings

ACTOR = Principal("test", admin=True)


def register(broker, endpoints):  # noqa: ANN001, ANN201
    for facility, url in endpoints.items():
        broker.registry.create(ACTOR, KINDS.facility, {"id": facility, "name": facility, "country": "FR"})
        broker.registry.create(ACTOR, KINDS.search_endpoint, {"id": f"{facility}-search", "facility_id": facility,
                                                              "kind": "panosc-search-api", "base_url": url})


@pytest.fixture
def broker(tmp_path):  # noqa: ANN001, ANN201
    from panbroker.app import build_broker

    built = build_broker(make_settings(tmp_path, search_deadline_seconds=1.0))
    yield built
    built.index.close()


def live(broker, **params):  # noqa: ANN001, ANN003, ANN201
    return broker.search.search(parse_query({**params, "mode": "live"}))


def test_results_merge_from_every_facility_with_exact_totals(broker):  # noqa: ANN001
    with sim.Federation() as fed:
        for name in ("sim-ill", "sim-esrf", "sim-ess"):
            fed.add(name, sim.panosc_search_api(name, generate(name, 50)))
        fed.start()
        register(broker, {n: fed.url(n) for n in ("sim-ill", "sim-esrf", "sim-ess")})
        result = live(broker, size=30)
    assert {d.facility for d in result.items} == {"sim-ill", "sim-esrf", "sim-ess"}
    assert result.total == 150 and result.total_exact and not result.partial
    assert [s.status for s in result.sources] == [SourceState.OK] * 3
    dates = [d.creation_date for d in result.items]
    assert dates == sorted(dates, reverse=True)


def test_the_same_search_asked_at_once_by_many_reads_each_facility_once_and_never_keeps_the_answer(broker):  # noqa: ANN001
    handler = sim.panosc_search_api("sim-ill", generate("sim-ill", 30), delay=0.4)
    finds: list[str] = []

    def counting(request):  # noqa: ANN001, ANN202
        if request.path.rstrip("/").endswith("/Datasets"):
            finds.append(request.args.get("filter", ""))
        return handler(request)

    with sim.Federation() as fed:
        fed.add("sim-ill", counting)
        fed.start()
        register(broker, {"sim-ill": fed.url("sim-ill")})
        live(broker, size=5)  # the endpoint's relations and count are known from here on
        finds.clear()
        with ThreadPoolExecutor(12) as pool:  # more users than calls a facility may have in flight (8)
            burst = list(pool.map(lambda _: live(broker, size=5), range(12)))
        assert len(finds) <= 2, finds  # not one call per user
        assert all(r.sources[0].status is SourceState.OK and len(r.items) == 5 for r in burst)
        live(broker, size=5)
        assert len(finds) <= 3 and len(finds) >= 2  # the next search asks again: answers are not kept
        live(broker, size=5, q="scattering")
    assert "scattering" in finds[-1]  # another search is its own read


@pytest.mark.parametrize("params", [{}, {"q": "scattering"}, {"sort": "oldest"}])
def test_page_two_continues_page_one_exactly(broker, params):  # noqa: ANN001
    with sim.Federation() as fed:
        for name in ("sim-ill", "sim-esrf"):
            fed.add(name, sim.panosc_search_api(name, generate(name, 60)))
        fed.start()
        register(broker, {n: fed.url(n) for n in ("sim-ill", "sim-esrf")})
        whole = [d.pid for d in live(broker, size=30, **params).items]
        pages = [[d.pid for d in live(broker, size=10, page=p, **params).items] for p in (1, 2, 3)]
    assert sum(pages, []) == whole
    assert len(set(whole)) == len(whole) == 30


def test_a_slow_and_a_dead_facility_are_reported_and_the_rest_answers_within_the_deadline(broker):  # noqa: ANN001
    with sim.Federation() as fed:
        fed.add("fast", sim.panosc_search_api("sim-ill", generate("sim-ill", 20)))
        fed.add("slow", sim.panosc_search_api("sim-esrf", generate("sim-esrf", 20), delay=3.0))
        fed.add("broken", lambda request: Response("<html>oops</html>", status=500))
        fed.start()
        register(broker, {"fast": fed.url("fast"), "slow": fed.url("slow"), "broken": fed.url("broken")})
        started = time.monotonic()
        result = live(broker)
        elapsed = time.monotonic() - started
    states = {s.facility: s.status for s in result.sources}
    assert states == {"fast": SourceState.OK, "slow": SourceState.TIMEOUT, "broken": SourceState.ERROR}
    assert result.partial and {d.facility for d in result.items} == {"fast"}
    assert elapsed < 1.6  # the 1.0 s deadline plus overhead, not the slow facility's 3 s


@pytest.mark.parametrize("bad", [
    lambda request: Response('{"not": "a list"}', content_type="application/json"),
    lambda request: Response("x" * (11 * 1024 * 1024), content_type="application/json"),
    lambda request: Response("", status=302, headers={"Location": "http://127.0.0.2:9/elsewhere"}),
])
def test_garbage_huge_and_redirecting_answers_are_contained(broker, bad):  # noqa: ANN001
    with sim.Federation() as fed:
        fed.add("good", sim.panosc_search_api("sim-ill", generate("sim-ill", 10)))
        fed.add("bad", bad)
        fed.start()
        register(broker, {"good": fed.url("good"), "bad": fed.url("bad")})
        result = live(broker)
    states = {s.facility: s for s in result.sources}
    assert states["good"].status is SourceState.OK and states["bad"].status is SourceState.ERROR
    assert states["bad"].error
    assert len(result.items) == 10


def test_a_record_with_a_lone_surrogate_is_left_out_and_said_and_the_rest_answered(broker):  # noqa: ANN001
    records = generate("sim-ill", 30)
    records[4]["title"] = "Spectra \ud800 of nothing"  # escaped as \ud800 in the facility's JSON
    with sim.Federation() as fed:
        fed.add("sim-ill", sim.panosc_search_api("sim-ill", records))
        fed.start()
        register(broker, {"sim-ill": fed.url("sim-ill")})
        result = live(broker, size=50)
    assert len(result.items) == 29 and records[4]["pid"] not in {d.pid for d in result.items}
    [status] = result.sources
    assert status.status is SourceState.OK and "1 unusable records skipped" in (status.error or ""), status


def test_an_answer_the_broker_fails_to_read_is_that_facility_s_error_and_the_rest_answers(broker, monkeypatch,
                                                                                         caplog):  # noqa: ANN001
    """A fault of the broker's own reading of one facility's records (here: a mapping that raises) is reported
    as that facility's error and logged with its traceback; the search answers from the others, never a 500."""
    from connectors.panosc_search import PanoscSearchConnector

    mapped = PanoscSearchConnector.to_dataset

    def fails_for_esrf(record, facility, source):  # noqa: ANN001, ANN202
        if facility == "sim-esrf":
            raise OverflowError("a value the mapping did not expect")
        return mapped(record, facility, source)

    monkeypatch.setattr(PanoscSearchConnector, "to_dataset", staticmethod(fails_for_esrf))
    with sim.Federation() as fed:
        for name in ("sim-ill", "sim-esrf"):
            fed.add(name, sim.panosc_search_api(name, generate(name, 20)))
        fed.start()
        register(broker, {n: fed.url(n) for n in ("sim-ill", "sim-esrf")})
        result = live(broker, size=50)
    assert {d.facility for d in result.items} == {"sim-ill"} and result.partial
    failed = next(s for s in result.sources if s.facility == "sim-esrf")
    assert failed.status is SourceState.ERROR and "could not read its answer (OverflowError)" in failed.error
    assert "reading sim-esrf's answer failed" in caplog.text


def test_duplicates_are_merged_by_pid(broker):  # noqa: ANN001
    shared = generate("sim-ill", 10)
    with sim.Federation() as fed:
        fed.add("a", sim.panosc_search_api("sim-ill", shared))
        fed.add("b", sim.panosc_search_api("sim-ill", shared[:4]))
        fed.start()
        register(broker, {"a": fed.url("a"), "b": fed.url("b")})
        result = live(broker, size=50)
    assert len(result.items) == 10 and len({d.pid for d in result.items}) == 10
    assert result.total == 10 and not result.total_exact


def test_an_open_circuit_skips_the_facility_without_calling_it(tmp_path):  # noqa: ANN001
    from panbroker.app import build_broker

    broker = build_broker(make_settings(tmp_path, breaker_fail_max=2, search_deadline_seconds=1.0))
    calls = []

    def failing(request):  # noqa: ANN001, ANN202
        calls.append(request.path)
        return Response("down", status=503)

    with sim.Federation() as fed:
        fed.add("down", failing)
        fed.start()
        register(broker, {"down": fed.url("down")})
        for _ in range(2):
            live(broker)
        before = len(calls)
        result = live(broker)
    assert result.sources[0].status is SourceState.SKIPPED and len(calls) == before
    broker.index.close()


def test_filters_travel_as_panosc_filters(broker):  # noqa: ANN001
    with sim.Federation() as fed:
        fed.add("ill", sim.panosc_search_api("sim-ill", generate("sim-ill", 200)))
        fed.start()
        register(broker, {"ill": fed.url("ill")})
        result = live(broker, technique="small angle scattering", parameter="sample_temperature:290..300:K", size=100)
    assert result.items, "the simulated catalogue has SANS data at 290-300 K"
    for dataset in result.items:
        assert dataset.techniques[0].name == "small angle neutron scattering"
        temperature = next(p for p in dataset.parameters if p.name == "sample_temperature")
        assert 290 <= temperature.si_value <= 300


def test_merge_ranks_by_word_score_then_interleaves_facility_ranks():
    from broker.search.live import merge
    from panmodel.datasets import Dataset

    a = [(0.5, Dataset(pid=f"a{i}", facility="a", title="t")) for i in range(3)]
    b = [(0.5, Dataset(pid=f"b{i}", facility="b", title="t")) for i in range(2)]
    merged, duplicates = merge([a, b], Sort.RELEVANCE, ranked=True)
    assert [d.pid for d in merged] == ["a0", "b0", "a1", "b1", "a2"] and duplicates == 0
    b[1] = (1.0, b[1][1])  # a better word match comes first, wherever its facility ranked it
    assert [d.pid for d in merge([a, b], Sort.RELEVANCE, ranked=True)[0]][0] == "b1"
    assert SearchRequest().limit == 20


def test_records_left_encoded_are_kept_whenever_their_words_might_match() -> None:
    import msgspec

    from broker.search.live import _MightHold
    from broker.search.matching import query_words

    def holds(record: bytes, q: str, any_term: bool = False) -> bool:
        return _MightHold(query_words(q), any_term)(msgspec.Raw(record))

    assert holds(b'{"title":"LYSOZYME in D2O"}', "lysozyme")
    assert holds(b'{"title":"Lysozymes"}', "lysozymes")  # a stem ("lysozym") is part of the word
    assert holds(b'{"title":"caf\\u00e9 crystals"}', "café")  # escaped text is read, not searched as sent
    assert holds(b'{"title":"Kupfer","samples":[{"name":"\xc3\x89lan"}]}', "élan")
    assert not holds(b'{"title":"copper oxide"}', "lysozyme")
    assert not holds(b'{"title":"copper oxide"}', "copper lysozyme")
    assert holds(b'{"title":"copper oxide"}', "copper lysozyme", any_term=True)
    # words in ASCII are searched in the bytes as sent, a record beyond ASCII too, with its ASCII letters lowered
    assert holds('{"title":"LYSOZYME à 5 °C"}'.encode(), "lysozyme")
    assert not holds('{"title":"LYSOZYME à 5 °C"}'.encode(), "copper")
    # the two characters whose lower case is an ASCII letter: KELVIN SIGN, and İ (i + a combining dot)
    assert holds('{"title":"\u212aRYPTON gas"}'.encode(), "krypton")
    assert holds('{"title":"\u0130ST cells"}'.encode(), "i\u0307st")
    assert holds('{"title":"Ünterwasser"}'.encode(), "ünterwasser")  # words beyond ASCII: decoded, lowered
