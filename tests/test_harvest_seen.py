"""The pids a harvest has met (broker.harvest_seen): what a first harvest adds without a look-up, and what
a complete listing's deletions are."""
from __future__ import annotations

from broker import harvest_seen
from broker.harvest_seen import RunningHarvests, SeenPids


def test_a_pid_is_first_met_once_and_listed_once_on_its_page():
    seen = SeenPids()
    assert seen.first_met(["a", "b", "b", "c"]) == {"a", "c"}  # twice on one page: not surely new
    seen.add(["a", "b", "b", "c"])
    assert seen.first_met(["c", "d"]) == {"d"}  # met on an earlier page
    seen.add(["c", "d"])
    assert len(seen) == 4
    assert seen.missing({"a", "d", "e", "f"}) == {"e", "f"}


def test_what_was_met_stays_met_as_the_filter_grows_and_false_positives_stay_few(monkeypatch):  # noqa: ANN001
    monkeypatch.setattr(harvest_seen, "FIRST_BITS", 64)
    seen, first = SeenPids(), 0
    pages = [[f"10.5072/ds-{n:07d}" for n in range(start, start + 500)] for start in range(0, 50_000, 500)]
    for page in pages:
        first += len(seen.first_met(page))
        seen.add(page)
    assert len(seen._bits) * 8 >= 50_000 * harvest_seen.BITS_PER_PID  # grown from 64 bits
    assert not any(seen.first_met(page) for page in pages)  # every pid met is met still
    assert first > 0.9 * 50_000  # a false positive costs a look-up only, but they are rare
    assert len(seen) == 50_000 and seen.missing({"10.5072/ds-0000001", "gone"}) == {"gone"}


def test_a_harvest_is_alone_while_no_other_runs_and_none_started_after_it():
    running = RunningHarvests()
    with running.running() as first:
        assert running.alone(first)
        with running.running() as second:
            assert not running.alone(first) and not running.alone(second)
        assert not running.alone(first)  # another ran beside it: what that one added is not known here
    with running.running() as third:
        assert running.alone(third)
