"""Every installed connector, against its simulator (``demo/simulators/``): each capability it declares
does what the capability promises. A connector joins this suite by its entry point alone."""
from __future__ import annotations

import time
from dataclasses import replace

import pytest

from broker.eosc_profile import CATEGORIES
from broker.settings import loopback_networks
from broker.harvest_pipeline import map_page
from broker.search.index import DatasetIndex
from connectors import all_connectors
from connectors.base import Capability, Connector, LaunchTarget
from connectors.capabilities import Harvester, Launcher, LiveSearcher, SessionLauncher
from connectors.http import HttpClient, HttpLimits
from connectors.ssrf import AddressPolicy
from demo.federation import Federation, free_port
from demo.simulators import Peer, simulators
from panmodel.datasets import Dataset
from panmodel.states import HealthStatus

KINDS = sorted(all_connectors())
SIMULATORS = simulators()


def connectors_with(capability: Capability) -> list[str]:
    return [k for k in KINDS if capability in all_connectors()[k].capabilities()]


def each_with(capability: Capability):  # noqa: ANN201 - a parametrize mark over the kinds that have it
    return pytest.mark.parametrize("running", connectors_with(capability), indirect=True)


@pytest.fixture(scope="module")
def http() -> HttpClient:
    return HttpClient(AddressPolicy(loopback_networks()), HttpLimits(retries=0))


@pytest.fixture(params=KINDS)
def running(request):  # noqa: ANN001, ANN201 - (kind, connector, peer, base URL)
    kind = request.param
    assert kind in SIMULATORS, f"connector {kind} has no simulator under demo/simulators/ (KIND = {kind!r})"
    peer: Peer = SIMULATORS[kind].peer()
    federation = Federation()
    federation.add(kind, peer.handler)
    with federation:
        yield kind, all_connectors()[kind], peer, federation.url(kind)




def target(peer: Peer, base_url: str, server: str) -> LaunchTarget:
    return LaunchTarget(base_url=base_url, config=peer.config, credential=peer.credential, username="alice",
                        server_name=server, user_options={}, proposals=peer.proposals, dataset_pid="sim/1",
                        user_token=peer.user_token, resources=peer.resources,
                        facts={"pid": "sim/1", "proposal": (peer.proposals or ("",))[0]})


def test_every_connector_declares_its_kind_and_words(running) -> None:  # noqa: ANN001
    kind, connector, peer, _ = running
    assert isinstance(connector, Connector) and connector.kind == kind
    assert connector.title and Capability.HEALTH in connector.capabilities()
    connector.config_schema().load(peer.config)  # the simulator's registration is one the kind accepts


def test_health_is_up_at_the_simulator_and_down_where_nothing_answers(running, http) -> None:  # noqa: ANN001
    _, connector, peer, url = running
    assert connector.probe(http, url, peer.config, 5).status == HealthStatus.UP
    down = connector.probe(http, f"http://127.0.0.1:{free_port()}", peer.config, 2)  # nothing listens there
    assert down.status == HealthStatus.DOWN and down.error


@each_with(Capability.LAUNCH)
def test_a_launch_connector_opens_its_page_and_words_its_session(running) -> None:  # noqa: ANN001
    kind, connector, peer, url = running
    assert isinstance(connector, Launcher)
    page = target(peer, url, "pb-deeplink")
    page = replace(page, user_options=connector.user_options(page))  # the broker translates before either mode
    assert isinstance(page.user_options, dict)
    link = connector.deep_link(page)
    assert link is None or link.startswith(url)
    assert isinstance(connector.preference, int)
    assert set(connector.eosc_categories) <= set(CATEGORIES)
    assert "Facility X" in connector.describe("Facility X", "Facility Y", away=False)
    assert connector.refusal(peer.config, api_mode=False, has_credential=False, issuers=set()) is None


@each_with(Capability.SESSIONS)
def test_a_session_launcher_starts_follows_and_stops_a_session(running, http) -> None:  # noqa: ANN001
    kind, connector, peer, url = running
    assert isinstance(connector, SessionLauncher)
    assert connector.refusal(peer.config, api_mode=True, has_credential=peer.credential is not None,
                             issuers={peer.config.get("user_token_issuer", "sim-idp")}) is None
    session = target(peer, url, f"pb-conf-{kind}")
    session = replace(session, user_options=connector.user_options(session))
    progress = connector.start(http, session)
    deadline = time.monotonic() + 15
    while progress.state not in ("ready", "failed") and time.monotonic() < deadline:
        followed = connector.follow(http, session, lambda _message: None, time.monotonic() + 5)
        progress = followed or connector.poll(http, session)
        if progress.state not in ("ready", "failed"):
            time.sleep(0.2)
    assert progress.state == "ready", progress.message
    assert progress.url and progress.url.startswith(("http://", "https://"))
    if not progress.secret:  # a session opened by a secret (Binder's token) is checked by its own tests
        assert http.get(progress.url, timeout=5).status_code < 400, "the ready session's URL does not open"
    assert connector.stop(http, session).state == "stopped"


@each_with(Capability.HARVEST)
def test_a_harvester_gathers_every_record_and_maps_each(running, http) -> None:  # noqa: ANN001
    kind, connector, peer, url = running
    assert isinstance(connector, Harvester)
    pages = list(connector.gather(http, url, peer.config, 5))
    # each page as the harvest reads it: decoded where it came encoded, fetched item by item where the source
    # fetches, mapped (the datasets themselves are what ``prepare`` is given here)
    mapped = [map_page(connector, page, "sim-facility", "sim-endpoint", DatasetIndex.prepare, http) for page in pages]
    assert not [error for page in mapped for error in page.errors]
    datasets = [dataset for page in mapped for dataset in page.documents]
    assert len(pages) > 1, "the simulator pages its records, so paging is exercised"
    assert datasets and all(isinstance(d, Dataset) and d.facility == "sim-facility" for d in datasets)
    assert len({d.pid for d in datasets}) == len(datasets)
    assert peer.dataset_pid in {d.pid for d in datasets}


@each_with(Capability.LIVE_SEARCH)
def test_a_live_searcher_finds_counts_and_gets(running, http) -> None:  # noqa: ANN001
    kind, connector, peer, url = running
    assert isinstance(connector, LiveSearcher)
    total = connector.count(http, url, {}, 5)
    found = connector.find(http, url, {"limit": 3, "include": connector.include(http, url, 5, ())}, 5)
    assert total >= len(found) == 3
    assert connector.to_dataset(found[0], "sim-facility", "sim-endpoint").pid
    assert connector.to_dataset(connector.get(http, url, peer.dataset_pid, 5), "f", "s").pid == peer.dataset_pid
    assert connector.get(http, url, "sim/no-such-dataset", 5) is None


def test_the_suite_covers_every_capability_somewhere() -> None:
    for capability in Capability:
        assert connectors_with(capability), f"no installed connector has {capability}"


def test_a_connector_missing_a_capability_method_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match="poll"):
        class Half(SessionLauncher):  # noqa: F841 - defining it is the test
            kind = "half"
            title = "Half a launcher"
            preference = 99

            def deep_link(self, target):  # noqa: ANN001, ANN201
                return None

            def start(self, client, target):  # noqa: ANN001, ANN201
                raise NotImplementedError

            def stop(self, client, target):  # noqa: ANN001, ANN201
                raise NotImplementedError
