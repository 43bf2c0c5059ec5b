"""The Analyse panel's rules live in the launch service and read the launch states from ``LaunchState``."""
from __future__ import annotations

from broker.launch.panel import running
from broker.launch.records import ACTIVE, CLOSED, LaunchView
from panmodel.states import LaunchState
from web.launch_pages import PLAIN_STATES


def _launch(state: LaunchState, service_id: str | None = "hub") -> LaunchView:
    return LaunchView("l-" + state.value, state, "ill/1", "ill", service_id, None, None, {}, [], None, None, None)


def test_every_launch_state_has_plain_words_and_is_either_active_or_closed():
    assert set(PLAIN_STATES) == set(LaunchState)
    assert ACTIVE | CLOSED == set(LaunchState) and not ACTIVE & CLOSED


def test_a_session_waiting_in_the_facilitys_queue_is_offered_instead_of_a_second_one():
    launches = [_launch(state) for state in LaunchState]
    offered = {launch.state for launch in running(launches, "ill/1", "hub")}
    assert LaunchState.WAITING in offered and offered == ACTIVE
    assert running(launches, "ill/2") == [] and running(launches, "ill/1", "other") == []
