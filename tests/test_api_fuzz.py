"""Property-based requests generated from the OpenAPI contract (schemathesis), in its default phases
(the contract's examples, its coverage cases and fuzzing with valid and invalid data), then bodies in
bad encodings: whatever is sent, the API answers without a server error and with a status the contract
documents."""
from __future__ import annotations

import json

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given, strategies as st
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test
from schemathesis.specs.openapi.checks import positive_data_acceptance

from panbroker.app import create_app
from broker.authz import Principal
from broker.registry_kinds import KINDS
from tests.conftest import ADMIN

# thousands of generated requests: ~60 s alone, twice that beside another test process on two cores
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SKIPPED = {("POST", "/health")}  # a health round contacts registered URLs; covered in test_health
# The contract checks types and structure; domain rules (ISO country codes, URL schemes, references)
# answer 422 for input the schema alone admits, so "schema-valid means accepted" does not hold by design.
EXCLUDED = [positive_data_acceptance]
EXAMPLES_PER_OPERATION = 20
MIN_CASES = 2000
# derandomized: the same 4,000+ requests every run, so a failure in `make test` is one anyone can reproduce
QUIET = hypothesis.settings(deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))


def _bad_encodings() -> st.SearchStrategy[bytes]:
    """Bodies a confused or hostile client sends as application/json."""
    texts = st.dictionaries(st.text(max_size=8), st.text(max_size=12) | st.integers(), max_size=4).map(json.dumps)
    return st.one_of(
        st.binary(max_size=64),
        texts.map(lambda t: t.encode("utf-16")),
        st.text(st.characters(min_codepoint=0x80, max_codepoint=0xFF), min_size=1, max_size=12).map(
            lambda t: json.dumps({"name": t}, ensure_ascii=False).encode("latin-1")),
        st.sampled_from(["\\ud800", "\\udfff", "\\ud83d"]).map(lambda s: f'{{"name": "{s}"}}'.encode()),
        st.integers(min_value=33, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(min_value=41, max_value=6000).map(lambda n: b'{"n": ' + b"7" * n + b"}"),
        texts.map(lambda t: t.encode()[: max(1, len(t) // 2)]),  # cut short
    )


def test_no_generated_request_makes_the_api_fail(sqlite_broker):  # noqa: ANN001
    actor = Principal("fuzz", admin=True)
    sqlite_broker.registry.create(actor, KINDS.facility, {"id": "ill", "name": "ILL", "country": "FR"})
    sqlite_broker.registry.create(actor, KINDS.service, {"id": "ill-visa", "facility_id": "ill", "kind": "visa",
                                                         "title": "VISA", "base_url": "https://visa.ill.example"})
    app = create_app(broker=sqlite_broker)
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    client = app.test_client()
    cases = 0
    for operation in operations:
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue

        def call(case) -> None:  # noqa: ANN001
            nonlocal cases
            cases += 1
            response = case.call(headers=ADMIN)
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
            case.validate_response(response, excluded_checks=EXCLUDED)

        config = HypothesisTestConfig(project=schema.config, modes=list(HypothesisTestMode),
                                      settings=hypothesis.settings(QUIET, max_examples=EXAMPLES_PER_OPERATION))
        create_test(operation=operation, test_func=call, config=config)()

        if operation.body:
            path = "/api/v1" + operation.path.replace("{", "").replace("}", "")

            @given(raw=_bad_encodings())
            @hypothesis.settings(QUIET, max_examples=8)
            def bad_body(raw: bytes) -> None:
                nonlocal cases
                cases += 1
                response = client.request(operation.method.upper(), path, content=raw, headers={
                    **ADMIN, "Content-Type": "application/json", "Idempotency-Key": "fuzz", "If-Match": '"1"'})
                assert response.status_code in (400, 404, 413), f"{operation.method} {path}: {response.text}"
                assert response.headers["content-type"].startswith("application/problem+json")

            bad_body()
    print(f"{cases} generated requests")
    assert cases >= MIN_CASES, f"only {cases} generated requests"
