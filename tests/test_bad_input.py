"""Bad input is a clear 4xx, never a 500, and never stored: bodies that are not UTF-8, nest too deep,
hold lone surrogates or numbers of thousands of digits; malformed bearer tokens; query syntax the index
does not support; PaNOSC filters nested a thousand deep; request bodies that never arrive."""
from __future__ import annotations

import asyncio
import time

import pytest

from panbroker.app import build_broker, create_app
from broker.authz import Principal
from broker.registry_kinds import KINDS
from demo import federation as sim
from demo.catalogue import generate
from tests.conftest import ADMIN, make_settings

JSON = {**ADMIN, "Content-Type": "application/json", "Idempotency-Key": "k-1"}
BAD_BODIES = {
    "not UTF-8": (b'{"id": "x\xff", "name": "X", "country": "FR"}', "not UTF-8"),
    "Latin-1": ('{"id": "caf\u00e9", "name": "Caf\u00e9", "country": "FR"}'.encode("latin-1"), "not UTF-8"),
    "nested 1,000 deep": (b"[" * 1000 + b"]" * 1000, "nests deeper"),
    "nested 100,000 deep": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nests deeper"),
    "lone surrogate": (b'{"id": "sur", "name": "a\\ud800", "country": "FR"}', "surrogate"),
    "surrogate key": (b'{"id": "sur", "name": "a", "country": "FR", "\\udfff": 1}', "surrogate"),
    "5,000-digit integer": (b'{"id": "big", "name": "a", "country": "FR", "n": ' + b"9" * 5000 + b"}", "digits"),
    "NaN": (b'{"id": "nan", "name": "a", "country": "FR", "n": NaN}', "NaN"),
    "truncated": (b'{"id": "cut", "name": ', "not valid JSON"),
}
WRITES = [("POST", "/api/v1/facilities"), ("PATCH", "/api/v1/facilities/ill"), ("POST", "/api/v1/services"),
          ("POST", "/api/v1/people"), ("POST", "/api/v1/launches"), ("POST", "/api/v1/me/tokens")]


@pytest.fixture
def site(sqlite_broker):  # noqa: ANN001, ANN201
    sqlite_broker.registry.create(Principal("t", admin=True), KINDS.facility,
                                  {"id": "ill", "name": "ILL", "country": "FR"})
    return create_app(broker=sqlite_broker).test_client()


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_a_body_that_cannot_be_read_strictly_is_a_400_naming_the_problem_and_stores_nothing(site, case):  # noqa: ANN001
    raw, says = BAD_BODIES[case]
    for method, path in WRITES:
        headers = {**JSON, "If-Match": '"1"'} if method == "PATCH" else JSON
        response = site.request(method, path, content=raw, headers=headers)
        assert response.status_code == 400, (method, path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert says in response.json()["detail"], (method, path, response.json())
    assert [f["id"] for f in site.get("/api/v1/facilities").json()["items"]] == ["ill"]
    assert site.get("/api/v1/facilities/ill").json()["name"] == "ILL"


def test_a_malformed_bearer_token_is_a_401(site):  # noqa: ANN001
    for token in ["a.W10.c", "a.bnVsbA.c", "a.Ig.c", "a.MQ.c", "..", "a.%%%.c", "x.e30.y"]:
        response = site.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (token, response.text)


@pytest.fixture
def harvested(sqlite_broker):  # noqa: ANN001, ANN201
    with sim.Federation() as fed:
        fed.add("sim-ill", sim.panosc_search_api("sim-ill", generate("sim-ill", 60)))
        fed.start()
        actor = Principal("t", admin=True)
        sqlite_broker.registry.create(actor, KINDS.facility, {"id": "sim-ill", "name": "ILL", "country": "FR"})
        sqlite_broker.registry.create(actor, KINDS.search_endpoint, {
            "id": "sim-ill-search", "facility_id": "sim-ill", "kind": "panosc-search-api", "base_url": fed.url("sim-ill")})
        sqlite_broker.harvest.run_all()
        yield create_app(broker=sqlite_broker).test_client()


UNSUPPORTED_SYNTAX = ["title:*", "x:*", "*:*", "title:lysozyme", "lysozyme~2", "lyso*", "[a TO z]", "{a TO z}",
                      "lysozyme^3", "/lyso.*/", "IN [a b]", "x:>5", '"unclosed', "(lysozyme", "- +", "\\"]


def test_query_syntax_the_index_does_not_support_is_read_as_words(harvested):  # noqa: ANN001
    for q in UNSUPPORTED_SYNTAX:
        api = harvested.get("/api/v1/datasets", params={"q": q})
        assert api.status_code == 200, (q, api.text)
        assert harvested.get("/search", params={"q": q}).status_code == 200, q
        assert harvested.get("/panosc/api/Datasets", params={"query": q}).status_code == 200, q


def test_a_field_prefix_is_a_word_like_any_other(harvested):  # noqa: ANN001
    def pids(q: str) -> list[str]:
        return [d["pid"] for d in harvested.get("/api/v1/datasets", params={"q": q, "size": 100}).json()["items"]]

    assert pids("title:lysozyme") == pids("title lysozyme") and pids("lysozyme")
    phrase = pids('"neutron spectroscopy of lysozyme"')  # phrases and exclusions still work
    assert phrase and set(phrase) < set(pids("lysozyme"))
    assert pids("lysozyme -spectroscopy") and not set(phrase) & set(pids("lysozyme -spectroscopy"))


PANOSC_FILTERS = [
    ('{"where":' + '{"and":[' * 1000 + "{}" + "]}" * 1000 + "}", "nests deeper"),
    ('{"where":' + '{"and":[' * 40 + "{}" + "]}" * 40 + "}", "nests deeper"),
    ('{"include":' + '[{"relation":"parameters","scope":' * 500 + "{}" + "}]" * 500 + "}", "nests deeper"),
    ('{"limit":' + "9" * 5000 + "}", "digits"),
    ('{"where":{"title":"\\ud800"}}', "surrogate"),
]


def test_a_panosc_filter_too_deep_too_big_or_not_unicode_is_a_400(site):  # noqa: ANN001
    for raw, says in PANOSC_FILTERS:
        response = site.get("/panosc/api/Datasets", params={"filter": raw})
        assert response.status_code == 400 and says in response.json()["error"]["message"], response.text


@pytest.mark.slow  # each waits out the body timeout
@pytest.mark.parametrize("arrives", ["never", "short", "drip"])
def test_a_body_that_does_not_arrive_in_time_is_a_fast_408_that_reaches_no_handler(tmp_path, arrives):  # noqa: ANN001
    """Content-Length: 1000 and nothing sent; half of it and then silence; one byte a second."""
    broker = build_broker(make_settings(tmp_path, body_timeout_seconds=0.5))
    app = create_app(broker=broker)
    sent: list[dict] = []

    async def call() -> None:
        chunks = {"never": [], "short": [b"{" * 500], "drip": [b" "] * 1000}[arrives]

        async def receive() -> dict:
            if chunks:
                await asyncio.sleep(0.2 if arrives == "drip" else 0)
                return {"type": "http.request", "body": chunks.pop(0), "more_body": True}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/api/v1/facilities", "raw_path": b"/api/v1/facilities",
                 "query_string": b"", "root_path": "", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 5),
                 "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                             (b"content-length", b"1000"), (b"authorization", f"Bearer {ADMIN['Authorization'][7:]}".encode())]}
        await asyncio.wait_for(app(scope, receive, send), 5)

    started = time.monotonic()
    asyncio.run(call())
    assert time.monotonic() - started < 1.5
    assert sent[0]["status"] == 408
    assert b"did not arrive within 0.5 s" in sent[1]["body"]
    broker.index.close()
