"""A basket launched into a real JupyterHub: one session for datasets of two facilities whose manifest (the file in
the server's folder, the variables of the server's process, the options the hub recorded) lists both; a basket of
one facility goes to that facility; another facility's embargoed dataset is left out, saying why; a retry is the
same launch; a malformed basket is a problem naming the field."""
from __future__ import annotations

import json
import re
from pathlib import Path

import psutil
import pytest

from panbroker.app import build_broker, create_app
from broker.authz import Principal
from panmodel.errors import InvalidInput
from broker.registry_kinds import KINDS
from panmodel.datasets import Dataset, DocumentRef
from tests.conftest import make_settings
from tests.jupyterhub_fixture import hub_if_asked, module_hub
from tests.test_launch import run_to_end

ADMIN = Principal("test", admin=True)
DOCS = Path(__file__).resolve().parent.parent / "docs" / "operators.md"
ILL_1 = Dataset(pid="ill/1", facility="ill", title="SANS of lysozyme", doi="10.5291/ILL-DATA.1", instrument="D22",
                documents=(DocumentRef("9-13-612", "Lysozyme", "proposal"),))
ILL_2 = Dataset(pid="ill/2", facility="ill", title="SANS of lysozyme, D2O", instrument="D22",
                documents=(DocumentRef("9-13-612", "Lysozyme", "proposal"),))
ESRF_1 = Dataset(pid="esrf/1", facility="esrf", title="SAXS of lysozyme", doi="10.15151/ESRF-ES-1")
ESRF_SECRET = Dataset(pid="esrf/secret", facility="esrf", title="Embargoed SAXS", is_public=False)


def documented_hook() -> str:
    """The pre-spawn hook the operators guide gives hubs, as written there."""
    text = DOCS.read_text()
    block = re.search(r"```python\n(# panbroker basket hook\n.*?)```", text, re.S)
    assert block, "the operators guide lost its basket hook"
    return block.group(1)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):  # noqa: ANN001, ANN201
    # one folder per user, as a real hub has one home per user
    per_user = '\nc.Spawner.notebook_dir = os.environ["HUB_DIR"] + "/{username}"\n'
    yield from module_hub(tmp_path_factory, documented_hook() + per_user)


@pytest.fixture
def broker(request, tmp_path):  # noqa: ANN001, ANN201
    hub = hub_if_asked(request)
    built = build_broker(make_settings(tmp_path))
    reg = built.registry
    for fid in ("ill", "esrf", "egi"):
        reg.create(ADMIN, KINDS.facility, {"id": fid, "name": fid.upper(), "country": "FR", "accepted_issuers": [
            "umbrellaid"] if fid != "esrf" else ["esrf-idp"]})
    for sid, fid in (("egi-hub", "egi"), ("ill-hub", "ill")):
        reg.create(ADMIN, KINDS.service, {"id": sid, "facility_id": fid, "kind": "jupyterhub", "title": sid,
                                          "base_url": hub.url, "launch_mode": "api", "credential": hub.token,
                                          "connector_config": {"start_timeout_seconds": 60,
                                                               "data_path_template": "/data/{proposal}/{instrument}"}})
    built.index.upsert([ILL_1, ILL_2, ESRF_1, ESRF_SECRET])
    built.index.commit()
    yield built
    built.index.close()


def person(broker, name: str) -> Principal:  # noqa: ANN001
    created = broker.people.create(ADMIN, {"display_name": name, "identities": [{"issuer": "umbrellaid",
                                                                                  "subject": name}]})
    return Principal(f"person:{created['id']}")


def server_environment(server_name: str) -> dict[str, str]:
    """The environment of the running single-user server process of that name."""
    for process in psutil.process_iter():
        try:
            environment = process.environ()
        except psutil.Error:  # ended meanwhile, or not ours to read
            continue
        if environment.get("JUPYTERHUB_SERVER_NAME") == server_name:
            return environment
    raise AssertionError(f"no process of server {server_name}")


@pytest.mark.slow  # a real JupyterHub
def test_a_basket_of_two_facilities_launches_one_session_whose_manifest_lists_both(broker, hub):  # noqa: ANN001
    ada = person(broker, "ada")
    launch, created = broker.launches.create(ada, "basket-1", {"basket": ["ill/1", "10.15151/ESRF-ES-1"]})
    assert created and launch["state"] == "routed" and launch["service_id"] == "egi-hub"
    assert "federation-wide facility egi" in launch["basket"]["reason"]
    done = run_to_end(broker, launch["id"], ada)
    assert done["state"] == "ready"

    servers = hub.api("/users/ada").json()["servers"]
    assert len(servers) == 1
    name, server = next(iter(servers.items()))
    recorded = server["user_options"]["basket"]
    assert [d["pid"] for d in recorded["datasets"]] == ["ill/1", "esrf/1"]
    assert {d["access"] for d in recorded["datasets"]} == {"download"}
    written = json.loads((Path(hub.process.args[-1]).parent / "ada" / "panbroker-basket.json").read_text())
    assert [(d["pid"], d["facility"], d["doi_url"]) for d in written["datasets"]] == [
        ("ill/1", "ill", "https://doi.org/10.5291/ILL-DATA.1"), ("esrf/1", "esrf", "https://doi.org/10.15151/ESRF-ES-1")]
    environment = server_environment(name)
    assert json.loads(Path(environment["PANBROKER_BASKET_MANIFEST"]).read_text()) == written
    assert json.loads(environment["PANBROKER_DATASET_PIDS"]) == ["ill/1", "esrf/1"]

    again, created = broker.launches.create(ada, "basket-1", {"basket": ["ill/1", "10.15151/ESRF-ES-1"]})
    assert not created and again["id"] == launch["id"] and again["state"] == "ready"
    assert len(hub.api("/users/ada").json()["servers"]) == 1
    with pytest.raises(InvalidInput, match="different request"):
        broker.launches.create(ada, "basket-1", {"basket": ["ill/1"]})
    assert broker.launches.cancel(ada, launch["id"])["state"] == "stopped"


def test_a_basket_of_one_facility_goes_to_that_facility_with_each_datasets_folder(broker):  # noqa: ANN001
    bea = person(broker, "bea")
    launch, _ = broker.launches.create(bea, "basket-ill", {"basket": ["ill/1", "ill/2"]})
    assert (launch["service_id"], launch["facility_id"]) == ("ill-hub", "ill")
    assert launch["basket"]["reason"] == "all 2 datasets are held by ill"
    target, _service = broker.launch_runner.targets.build(launch["id"])
    basket = target.user_options["basket"]
    assert [(d["pid"], d["access"], d["path"]) for d in basket["datasets"]] == [
        ("ill/1", "local", "/data/9-13-612/D22"), ("ill/2", "local", "/data/9-13-612/D22")]
    assert json.loads(target.user_options["environment"]["PANBROKER_DOWNLOAD_PIDS"]) == []
    broker.launches.cancel(bea, launch["id"])


def test_another_facilitys_embargoed_dataset_is_left_out_naming_it_and_why(broker):  # noqa: ANN001
    cid = person(broker, "cid")  # no identity ESRF accepts: may not read ESRF's embargoed data anywhere
    launch, _ = broker.launches.create(cid, "basket-secret", {"basket": ["ill/1", "ill/2", "esrf/secret"]})
    assert launch["service_id"] == "ill-hub"
    assert [d["pid"] for d in launch["basket"]["datasets"]] == ["ill/1", "ill/2"]
    assert launch["basket"]["left_out"] == [{"pid": "esrf/secret", "reason": "embargoed at esrf: it may be analysed "
                                                                             "only there, never fetched into ill"}]
    target, _service = broker.launch_runner.targets.build(launch["id"])
    assert "esrf/secret" not in target.user_options["environment"]["PANBROKER_DATASET_PIDS"]
    broker.launches.cancel(cid, launch["id"])


def test_a_malformed_basket_is_a_problem_naming_what_to_fix(broker):  # noqa: ANN001
    client = create_app(broker=broker).test_client()
    dan = person(broker, "dan")
    token = broker.people.issue_token(ADMIN, dan.subject.removeprefix("person:"), {"name": "t"})["token"]
    auth = {"Authorization": f"Bearer {token}"}
    cases = {"empty": ({"basket": []}, "basket", "empty basket"),
             "too many": ({"basket": [f"ill/{i}" for i in range(51)]}, "basket", "at most 50"),
             "unknown": ({"basket": ["ill/1", "nope/1"]}, "basket.1", "nope/1"),
             "duplicate": ({"basket": ["ill/1", "ill/2", "ill/1"]}, "basket.2", "already basket.0"),
             "pid and DOI": ({"basket": ["ill/1", "10.5291/ILL-DATA.1"]}, "basket.1", "same dataset (ill/1)"),
             "mixed": ({"basket": ["ill/1"], "dataset": "ill/2"}, "basket", "not both"),
             "neither": ({"kind": "jupyterhub"}, "dataset", "basket")}
    for case, (body, field, words) in cases.items():
        answer = client.post("/api/v1/launches", json=body, headers={**auth, "Idempotency-Key": f"bad-{case}"})
        assert answer.status_code in (400, 422), case
        assert answer.headers["content-type"].startswith("application/problem+json"), case
        errors = {e["field"]: e["message"] for e in answer.json()["errors"]}
        assert field in errors and words in errors[field], (case, errors)
    assert client.get("/api/v1/launches", headers=auth).json()["total"] == 0
