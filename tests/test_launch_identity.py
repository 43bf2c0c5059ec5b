"""Hub user names from the claims a person's identity provider sent at sign-in (username_claim)."""
from __future__ import annotations

import pytest

from broker.authz import Principal
from broker.registry_kinds import KINDS
from panmodel.datasets import Dataset
from registry.models import Identity
from tests.test_login import broker, browser, me, providers  # noqa: F401 - the real OpenID provider's fixtures

pytestmark = pytest.mark.slow  # the real OpenID providers of test_login

ADMIN = Principal("t", admin=True)


def test_the_claims_of_the_last_sign_in_name_the_person_at_a_hub_that_asks_for_one(browser, broker):  # noqa: ANN001, F811
    browser.sign_in("idp-a", "alice")
    person_id = me(browser).json()["person"]["id"]
    with broker.store.session() as session:
        identity = session.query(Identity).filter_by(issuer="idp-a", subject="alice").one()
        assert identity.claims["email"] == "alice@example.org" and identity.claims["name"] == "Test user alice"
        assert not {"nonce", "aud", "iss", "exp", "at_hash"} & set(identity.claims)  # about the token, not her
    for sid, claim in (("esrf-hub", "email"), ("esrf-hub-uid", "uid")):
        broker.registry.create(ADMIN, KINDS.service, {
            "id": sid, "facility_id": "esrf", "kind": "jupyterhub", "title": sid, "launch_mode": "api",
            "base_url": "https://hub.esrf.example", "credential": "t",
            "connector_config": {"username_claim": claim, "username_pattern": r"^[a-z]+@[a-z.]+$"}})
    dataset = Dataset(pid="esrf/1", facility="esrf", title="t", source="s")
    decisions = {d["service_id"]: d for d in broker.launches.preview(Principal(f"person:{person_id}"), dataset, {})}
    assert decisions["esrf-hub"]["fits"], decisions
    assert not decisions["esrf-hub-uid"]["fits"]
    assert "knows people by the 'uid' claim, and your sign-in at idp-a sent none" in decisions["esrf-hub-uid"]["reason"]
