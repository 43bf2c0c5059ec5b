"""The shared HTTP client against real loopback servers: timeouts, size cap, redirects, retries,
circuit breaker and the SSRF guard."""
from __future__ import annotations

import socket
import time

import pytest
import responses
from werkzeug.wrappers import Response

from broker.settings import loopback_networks
from connectors.errors import AddressBlocked, CircuitOpen, UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from connectors.http import HttpClient, HttpLimits, json_body
from connectors.ssrf import AddressPolicy
from tests.loopback import dribble, ok_json, serve, slow

LOOPBACK = AddressPolicy(loopback_networks())


def client(**limits) -> HttpClient:  # noqa: ANN003
    values = dict(connect_timeout=1.0, read_timeout=1.0, total_timeout=3.0, retries=0, breaker_fail_max=3,
                  breaker_reset_seconds=60)
    values.update(limits)
    return HttpClient(LOOPBACK, HttpLimits(**values))


def test_a_slow_answer_times_out_within_the_read_timeout():
    with serve(slow(3)) as (url, _):
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            client(read_timeout=0.3).get(url)
        assert time.monotonic() - started < 2


def test_a_dribbling_body_is_cut_at_the_total_deadline():
    with serve(dribble(chunks=50, pause=0.1)) as (url, _):
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            client(read_timeout=1.0, total_timeout=0.8).get(url)
        assert time.monotonic() - started < 3


def test_a_response_over_the_size_cap_is_refused():
    with serve(ok_json("x" * 5000)) as (url, _):
        with pytest.raises(UpstreamBadResponse, match="exceeds"):
            client(max_response_bytes=1000).get(url)
        assert client(max_response_bytes=10_000).get(url).status_code == 200


def test_a_redirect_to_another_host_is_not_followed():
    with serve(ok_json()) as (other, other_hits):
        redirect = lambda request: Response("", status=302, headers={"Location": other.replace("127.0.0.1", "127.0.0.2") + "/x"})  # noqa: E731
        with serve(redirect) as (url, _):
            response = client().get(url)
    assert response.status_code == 302 and other_hits.count == 0


def test_a_same_origin_redirect_is_followed():
    def handler(request):  # noqa: ANN001, ANN202
        if request.path == "/old":
            return Response("", status=301, headers={"Location": "/new"})
        return Response('{"moved": true}', content_type="application/json")

    with serve(handler) as (url, hits):
        assert json_body(client().get(url + "/old")) == {"moved": True}
        assert hits.paths == ["/old", "/new"]


def test_idempotent_calls_are_retried_and_posts_are_not():
    with serve(ok_json("{}", status=503)) as (url, hits):
        http = client(retries=2, breaker_fail_max=100)
        assert http.get(url).status_code == 503
        assert hits.count == 3
        assert http.request("POST", url, json={}).status_code == 503
        assert hits.count == 4


def test_the_circuit_opens_after_consecutive_failures_and_fails_fast():
    with serve(ok_json("{}", status=500)) as (url, hits):
        http = client(breaker_fail_max=3)
        for _ in range(3):
            assert http.get(url).status_code == 500
        with pytest.raises(CircuitOpen):
            http.get(url)
        assert hits.count == 3  # the fourth call never left the broker


def test_4xx_answers_do_not_open_the_circuit():
    with serve(ok_json("{}", status=404)) as (url, _):
        http = client(breaker_fail_max=2)
        for _ in range(4):
            assert http.get(url).status_code == 404


def test_a_refused_connection_is_unavailable():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(UpstreamUnavailable):
        client().get(f"http://127.0.0.1:{port}/")


def test_json_body_names_what_came_instead():
    with serve(ok_json("<html>maintenance</html>")) as (url, _):
        with pytest.raises(UpstreamBadResponse, match="maintenance"):
            json_body(client().get(url))


# -- SSRF guard --------------------------------------------------------------------------------

def test_loopback_is_refused_unless_allowed_and_nothing_is_sent():
    with serve(ok_json()) as (url, hits):
        strict = HttpClient(AddressPolicy(), HttpLimits(retries=0))
        with pytest.raises(AddressBlocked):
            strict.get(url)
        assert hits.count == 0


@pytest.mark.parametrize("address", ["10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "::1",
                                     "fd00::1", "::ffff:127.0.0.1", "0.0.0.0", "224.0.0.1"])
def test_private_link_local_and_reserved_addresses_are_refused(address):  # noqa: ANN001
    assert not AddressPolicy().is_allowed(address)


# every form of 169.254.169.254 (the cloud metadata service) an IPv6 literal can take
METADATA_IN_IPV6 = ["64:ff9b::a9fe:a9fe", "64:ff9b::169.254.169.254", "2002:a9fe:a9fe::", "::a9fe:a9fe",
                    "::ffff:a9fe:a9fe", "64:ff9b:1:a9fe:a9:fe00::", "64:ff9b:1::a9fe:a9fe",
                    "2001:0:4136:e378:8000:63bf:5601:5601"]  # Teredo client 169.254.169.254 (bits inverted)


@pytest.mark.parametrize("address", METADATA_IN_IPV6)
def test_ipv6_forms_embedding_a_refused_ipv4_address_are_refused_and_not_dialled(address):  # noqa: ANN001
    assert not AddressPolicy().is_allowed(address)
    with pytest.raises(AddressBlocked):
        HttpClient(AddressPolicy(), HttpLimits(retries=0)).get(f"http://[{address}]/latest/meta-data/")


def test_ipv6_forms_embedding_a_public_ipv4_address_are_judged_by_it():
    for address in ("64:ff9b::c131:2b01", "2002:c131:2b01::1", "::ffff:193.49.43.1"):
        assert AddressPolicy().is_allowed(address)
    assert not AddressPolicy().is_allowed("::7f00:1")  # ::127.0.0.1, IPv4-compatible


def test_public_addresses_are_allowed():
    assert AddressPolicy().is_allowed("193.49.43.1")
    assert AddressPolicy().is_allowed("2001:660:5009::1")


def test_a_name_that_resolves_to_loopback_is_refused_at_connect_time(monkeypatch):  # noqa: ANN001
    """DNS rebinding: the address is checked when dialled, not when the URL was registered."""
    real = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):  # noqa: ANN001, ANN202
        if host == "visa.facility.example":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with serve(ok_json()) as (url, hits):
        port = url.rsplit(":", 1)[1]
        strict = HttpClient(AddressPolicy(), HttpLimits(retries=0))
        with pytest.raises(AddressBlocked, match="127.0.0.1"):
            strict.get(f"http://visa.facility.example:{port}/")
        assert hits.count == 0
        # the same name is reachable once loopback is allowed: the guard, not the name, decided
        assert client().get(f"http://visa.facility.example:{port}/").status_code == 200


def test_non_http_schemes_are_refused():
    with pytest.raises(AddressBlocked, match="scheme"):
        LOOPBACK.check_url("file:///etc/passwd")


# -- request shape (responses) -----------------------------------------------------------------

@responses.activate
def test_requests_carry_the_broker_user_agent_and_no_proxy_from_the_environment(monkeypatch):  # noqa: ANN001
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    responses.get("https://hub.facility.example/hub/api/", json={"version": "5.2.1"})
    http = client()
    assert json_body(http.get("https://hub.facility.example/hub/api/")) == {"version": "5.2.1"}
    sent = responses.calls[0].request
    assert sent.headers["User-Agent"].startswith("PaN-Broker/")
    assert http._session().trust_env is False


def _event_stream(*chunks: str, pause: float = 0.0):  # noqa: ANN202 - a werkzeug handler
    def handler(request) -> Response:  # noqa: ANN001
        def body():  # noqa: ANN202
            for chunk in chunks:
                yield chunk.encode()
                time.sleep(pause)
        return Response(body(), content_type="text/event-stream", direct_passthrough=True)
    return handler


def test_an_event_stream_yields_each_data_line_as_it_comes_and_skips_comments_and_keepalives():
    with serve(_event_stream('data: {"progress": 0}\n\n', ":heartbeat\n\n", "\n",
                             'data: {"progress": 100, "ready": true}\n\n', pause=0.05)) as (url, _):
        events = list(client().events(url, until=time.monotonic() + 5))
    assert events == [{"progress": 0}, {"progress": 100, "ready": True}]


def test_an_event_stream_with_garbage_a_refusal_silence_or_no_end_is_contained():
    with serve(_event_stream("data: {not json\n\n")) as (url, _):
        with pytest.raises(UpstreamBadResponse, match="not JSON"):
            list(client().events(url, until=time.monotonic() + 5))
    with serve(ok_json('{"message": "not starting"}', status=400)) as (url, _):
        with pytest.raises(UpstreamBadResponse, match="HTTP 400"):
            list(client().events(url, until=time.monotonic() + 5))
    with serve(_event_stream('data: {"a": 1}\n\n', "", pause=2.0)) as (url, _):
        with pytest.raises(UpstreamTimeout, match="silent"):
            list(client().events(url, until=time.monotonic() + 5, idle_seconds=0.5))
    with serve(_event_stream(*['data: {"progress": 1}\n\n'] * 100, pause=0.05)) as (url, _):
        started = time.monotonic()
        events = list(client().events(url, until=time.monotonic() + 0.5))
        assert time.monotonic() - started < 1.5 and 0 < len(events) < 100
    with serve(_event_stream(*['data: {"line": "' + "x" * 900 + '"}\n\n'] * 20)) as (url, _):
        with pytest.raises(UpstreamBadResponse, match="exceeds"):
            list(client(max_response_bytes=5000).events(url, until=time.monotonic() + 5))
