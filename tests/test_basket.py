"""A basket across facilities is routed to a service that can reach every dataset in it, says why, and hands the
session a manifest and environment variables; another facility's embargoed dataset is left out, saying why.
(The launch of a basket into a real JupyterHub is tests/test_basket_launch.py.)"""
from __future__ import annotations

import json

import pytest

from broker.authz import Principal
from broker.basket import BasketService
from panmodel.errors import InvalidInput
from broker.registry_kinds import KINDS
from panmodel.datasets import Dataset

ADMIN = Principal("test", admin=True)
DATASETS = [Dataset(pid="ill/1", facility="ill", title="SANS 1", doi="10.5291/ILL-DATA.1"),
            Dataset(pid="ill/2", facility="ill", title="SANS 2"),
            Dataset(pid="esrf/1", facility="esrf", title="SAXS 1"),
            Dataset(pid="esrf/2", facility="esrf", title="SAXS 2"),
            Dataset(pid="esrf/secret", facility="esrf", title="Embargoed SAXS", is_public=False)]


@pytest.fixture
def federation(sqlite_broker):  # noqa: ANN001, ANN201
    for fid in ("ill", "esrf", "egi"):
        sqlite_broker.registry.create(ADMIN, KINDS.facility, {"id": fid, "name": fid.upper(), "country": "FR",
                                                              "accepted_issuers": ["idp"]})
    for fid, kind in (("ill", "visa"), ("esrf", "visa"), ("egi", "binderhub")):
        sqlite_broker.registry.create(ADMIN, KINDS.service, {"id": f"{fid}-{kind}", "facility_id": fid, "kind": kind,
                                                             "title": f"{fid} {kind}",
                                                             "base_url": f"https://{kind}.{fid}.example"})
    sqlite_broker.index.upsert(DATASETS)
    sqlite_broker.index.commit()
    person = sqlite_broker.people.create(ADMIN, {"display_name": "Ada", "identities": [{"issuer": "idp",
                                                                                         "subject": "ada"}]})
    basket = BasketService(sqlite_broker.search, sqlite_broker.launches, ("egi",), "https://broker.example")
    return sqlite_broker, basket, Principal(f"person:{person['id']}")


def test_datasets_of_one_facility_go_to_a_service_there(federation):  # noqa: ANN001
    _broker, basket, ada = federation
    plan = basket.plan(ada, ["ill/1", "ill/2"])
    assert (plan.service_id, plan.facility_id) == ("ill-visa", "ill")
    assert plan.reason == "all 2 datasets are held by ill" and {e.access for e in plan.entries} == {"local"}


def test_open_data_of_two_facilities_goes_to_the_federation_wide_service(federation):  # noqa: ANN001
    _broker, basket, ada = federation
    plan = basket.plan(ada, ["ill/1", "esrf/1"])
    assert (plan.service_id, plan.facility_id) == ("egi-binderhub", "egi")
    assert "federation-wide facility egi" in plan.reason
    manifest = plan.manifest()
    assert [d["pid"] for d in manifest["datasets"]] == ["ill/1", "esrf/1"]
    assert manifest["datasets"][0]["landing_url"] == "https://broker.example/datasets/ill/1"
    env = plan.environment()
    assert json.loads(env["PANBROKER_DATASET_PIDS"]) == ["ill/1", "esrf/1"]
    assert env["PANBROKER_BASKET_MANIFEST"] == "panbroker-basket.json"


def test_with_embargoed_data_the_largest_share_takes_it_and_fetches_the_others_open_data(federation):  # noqa: ANN001
    _broker, basket, ada = federation
    plan = basket.plan(ada, ["ill/1", "esrf/1", "esrf/2", "esrf/secret"])
    assert (plan.service_id, plan.facility_id) == ("esrf-visa", "esrf")
    assert plan.reason == "esrf holds 3 of the 4 datasets; the open data of the others is fetched in"
    assert {e.pid: e.access for e in plan.entries} == {"ill/1": "download", "esrf/1": "local", "esrf/2": "local",
                                                       "esrf/secret": "local"}


def test_another_facilitys_embargoed_dataset_is_left_out_saying_why(federation):  # noqa: ANN001
    _broker, basket, ada = federation
    plan = basket.plan(ada, ["ill/1", "ill/2", "esrf/secret"])
    assert plan.facility_id == "ill" and [e.pid for e in plan.entries] == ["ill/1", "ill/2"]
    assert plan.left_out == (("esrf/secret", "embargoed at esrf: it may be analysed only there, never fetched "
                                             "into ill"),)


def test_a_basket_naming_unknown_datasets_is_refused_naming_each(federation):  # noqa: ANN001
    _broker, basket, ada = federation
    with pytest.raises(InvalidInput) as refused:
        basket.plan(ada, ["ill/1", "nope/1"])
    assert [e.field for e in refused.value.errors] == ["basket.1"]
    with pytest.raises(InvalidInput):
        basket.plan(ada, [])


def test_a_basket_naming_one_dataset_twice_by_pid_and_doi_is_refused(federation):  # noqa: ANN001
    _broker, basket, ada = federation
    with pytest.raises(InvalidInput) as refused:
        basket.plan(ada, ["ill/1", "ill/2", "10.5291/ILL-DATA.1"])
    assert [(e.field, e.message) for e in refused.value.errors] == [
        ("basket.2", "'10.5291/ILL-DATA.1' names the same dataset (ill/1) as basket.0; send each dataset once")]


def test_a_moss_batch_job_writes_the_manifest_home_and_exports_its_variables(tmp_path):  # noqa: ANN001
    import subprocess

    from broker.basket import session_environment
    from connectors.base import LaunchTarget
    from connectors.jupyterhub import JupyterHubConnector

    manifest = {"version": 1, "datasets": [
        {"pid": "ill/1", "title": "it's \"quoted\"\nand $(touch ran)", "access": "local"},
        {"pid": "esrf/1", "title": "SAXS", "access": "download"}], "left_out": []}
    config = {"flavour": "moss", "environments": {"py311": {"path": "/opt/envs/py311/bin"}}}
    target = LaunchTarget("https://hub.esrf.example", config, "t", "zsmith", "pb-1", {}, partition={"id": "cpu"},
                          basket=manifest, environment=session_environment(manifest))
    prologue = JupyterHubConnector().user_options(target)["prologue"]
    shell = subprocess.run(["bash", "-c", prologue + '; printf "%s|%s" "$PANBROKER_BASKET_MANIFEST" '
                            '"$PANBROKER_DOWNLOAD_PIDS"'], capture_output=True, text=True, timeout=10, cwd=tmp_path,
                           env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    path, downloads = shell.stdout.split("|")
    assert path == f"{tmp_path}/panbroker-basket.json" and json.loads(downloads) == ["esrf/1"]
    assert json.loads((tmp_path / "panbroker-basket.json").read_text()) == manifest
    assert not (tmp_path / "ran").exists()
