"""The broker's launch request in each service's vocabulary (no service is called here): moss's
keys and units, the dataset's folder from the operator's path template, and what is refused."""
from __future__ import annotations

import subprocess

import pytest

from panmodel.errors import InvalidInput
from broker.registry_kinds import load
from connectors.base import LaunchTarget, RequestRefused, data_path, generic_user_options
from connectors.jupyterhub import MOSS_KEYS, JupyterHubConfig, JupyterHubConnector

MOSS = {"flavour": "moss", "environments": {"py311": {"path": "/opt/envs/py311/bin"},
                                             "cuda": {"modules": "cuda/12 python/3.11", "prologue": "umask 027"}},
        "user_options": {"runtime": "8:00:00", "output": "slurm-%j.out", "default_url": "/lab"},
        "data_path_template": "/data/visitor/{proposal}/{instrument}"}
GPU = {"id": "gpu", "gpu": True, "max_gpus": 4, "gres": "gpu:a100:{}"}
FACTS = {"pid": "10.15151/ESRF-ES-1", "proposal": "ma1234", "instrument": "id10", "landing_url": "https://doi.org/x/1"}


def target(resources: dict, config: dict = MOSS, partition: dict | None = None, facts: dict = FACTS,
           interface: str | None = None) -> LaunchTarget:
    return LaunchTarget("https://hub.esrf.example", config, "t", "zsmith", "pb-1", {}, ("ma1234",),
                        ("10.15151/ESRF-ES-1",), FACTS["pid"], resources=resources, interface=interface,
                        partition=partition or {"id": resources.get("partition", "cpu")}, facts=facts)


def test_moss_gets_every_key_it_reads_with_memory_and_gpus_as_slurm_counts_them():
    options = JupyterHubConnector().user_options(target({"partition": "gpu", "cpus": 2, "memory_gb": 0.5,
                                                         "gpus": 2, "profile": "cuda"}, partition=GPU))
    assert tuple(options) == MOSS_KEYS
    assert (options["memory"], options["ngpus"], options["gres"], options["nprocs"]) == ("512M", 2, "gpu:a100:2", 2)
    assert options["environment_modules"] == "cuda/12 python/3.11" and options["environment_path"] == ""
    assert options["runtime"] == "8:00:00" and options["output"] == "slurm-%j.out" and options["default_url"] == "/lab"
    assert options["root_dir"] == "/data/visitor/ma1234/id10"
    assert options["prologue"].startswith("umask 027; export PANOSC_DATASET_PID=10.15151/ESRF-ES-1")


@pytest.mark.parametrize("gigabytes, slurm", [(4, "4G"), (0.5, "512M"), (1.25, "1280M"), (None, "2G")])
def test_memory_is_sent_in_whole_units(gigabytes, slurm):  # noqa: ANN001
    resources = {"cpus": 2, **({"memory_gb": gigabytes} if gigabytes else {})}
    assert JupyterHubConnector().user_options(target(resources))["memory"] == slurm  # never the whole node


def test_runtime_interface_and_default_environment():
    options = JupyterHubConnector().user_options(target({"runtime_hours": 1.5}, interface="notebook"))
    assert options["runtime"] == "1:30:00" and options["default_url"] == "/tree"
    assert options["environment_id"] == "py311" and options["environment_path"] == "/opt/envs/py311/bin"
    assert options["gres"] == "" and options["ngpus"] == 0


@pytest.mark.parametrize("resources, partition, refusal", [
    ({"gpu": True}, {"id": "cpu"}, "partition cpu has no GPU"),
    ({"profile": "matlab"}, None, "no environment 'matlab' at this hub; it offers py311, cuda"),
])
def test_what_moss_cannot_take_is_refused_before_sending(resources, partition, refusal):  # noqa: ANN001
    with pytest.raises(RequestRefused, match=refusal):
        JupyterHubConnector().user_options(target(resources, partition=partition))


def test_dataset_values_reach_the_batch_script_only_quoted_and_never_as_a_path(tmp_path):  # noqa: ANN001
    hostile = f"x'; touch {tmp_path}/ran; echo '"
    facts = {**FACTS, "proposal": hostile}
    unsafe = LaunchTarget("https://hub.esrf.example", MOSS, "t", "zsmith", "pb-1", {}, (hostile,), (), FACTS["pid"],
                          partition={"id": "cpu"}, facts=facts)
    options = JupyterHubConnector().user_options(unsafe)
    assert options["root_dir"] == "/data/visitor"  # the unsafe value ends the path before it
    shell = subprocess.run(["bash", "-c", options["prologue"] + '; printf %s "$PANOSC_PROPOSAL"'],
                           capture_output=True, text=True, timeout=10, cwd=tmp_path)
    assert shell.stdout == hostile and not (tmp_path / "ran").exists()
    newline = target({}, facts={**FACTS, "landing_url": "https://doi.org/x\nrm -rf /"})
    with pytest.raises(RequestRefused, match="line break"):
        JupyterHubConnector().user_options(newline)


@pytest.mark.parametrize("template, facts, expected", [
    ("/data/visitor/{proposal}/{instrument}", FACTS, "/data/visitor/ma1234/id10"),
    ("/data/visitor/{proposal}/{instrument}", {"proposal": "ma1234"}, "/data/visitor/ma1234"),
    ("/data/{year}/{proposal}", {"proposal": "../../etc", "year": "2024"}, "/data/2024"),
    ("/data/{pid}", {"pid": "10.15151/../etc"}, "/data"),
    (None, FACTS, None),
])
def test_the_dataset_folder_comes_from_the_template_or_the_session_says_where_data_is(template, facts, expected):  # noqa: ANN001
    folder, where = data_path(template, facts)
    assert folder == expected
    if template is None:
        assert where == "the dataset's location is documented at https://doi.org/x/1"


def test_a_plain_hub_gets_the_brokers_own_keys_in_whole_units():
    options = generic_user_options(target({"cpus": 4, "memory_gb": 0.5, "gpu": True},
                                          config={"data_path_template": "/data/{proposal}"}))
    assert options == {"dataset_pid": FACTS["pid"], "doi": "10.15151/ESRF-ES-1", "proposal": "ma1234",
                       "nprocs": 4, "memory": "512M", "gpu": 1, "data_path": "/data/ma1234"}


@pytest.mark.parametrize("config, field", [
    ({"flavour": "moss"}, "environments"),
    ({"flavour": "moss", "environments": {"py": {}}}, "environments"),
    ({"flavour": "moss", "environments": {"py": {"path": "bin"}}}, "environments"),
    ({"user_options": {"runtime": "8:00:00"}}, "user_options"),
    ({**MOSS, "user_options": {"runtime": "eight hours"}}, "user_options"),
    ({**MOSS, "user_options": {"memory": "0.5G"}}, "user_options"),
    ({**MOSS, "user_options": {"prologue": "a\nb"}}, "user_options"),
    ({**MOSS, "user_options": {"partition": "gpu"}}, "user_options"),
    ({**MOSS, "data_path_template": "data/{proposal}"}, "data_path_template"),
    ({**MOSS, "data_path_template": "/data/{secret}"}, "data_path_template"),
    ({"username_pattern": "^[a-z"}, "username_pattern"),
])
def test_the_connector_validates_what_the_operator_registers(config, field):  # noqa: ANN001
    with pytest.raises(InvalidInput) as refused:
        load(JupyterHubConfig, config, prefix="connector_config")
    assert any(e.field.startswith(f"connector_config.{field}") for e in refused.value.errors), refused.value.errors


def test_esrfs_registration_is_accepted():
    assert load(JupyterHubConfig, {**MOSS, "username_claim": "preferred_username",
                                   "username_pattern": "^[a-z][a-z0-9_.-]{0,31}$"}, prefix="connector_config")


def test_the_registration_docs_show_for_esrf_is_accepted_and_routes_gpu_requests(tmp_path):  # noqa: ANN001
    import json
    import re
    from pathlib import Path

    from panbroker.app import build_broker
    from broker.authz import Principal
    from broker.launch.routing import LinkedIdentity, judge
    from broker.registry_kinds import KINDS
    from panmodel.datasets import Dataset
    from registry.models import ComputeService, Facility
    from tests.conftest import make_settings

    docs = (Path(__file__).resolve().parent.parent / "docs" / "operators.md").read_text()
    example = json.loads(re.search(r"ESRF's hub, as it would be registered.*?```json\n(.*?)```", docs, re.S).group(1))
    broker = build_broker(make_settings(tmp_path))
    admin = Principal("test", admin=True)
    broker.registry.create(admin, KINDS.facility, {"id": "esrf", "name": "ESRF", "country": "FR",
                                                   "accepted_issuers": ["esrf-idp"]})
    broker.registry.create(admin, KINDS.service, example)
    with broker.store.session() as session:
        service, facility = session.get(ComputeService, example["id"]), session.get(Facility, "esrf")
        dataset = Dataset(pid="esrf/1", facility="esrf", title="t", source="s")
        me = (LinkedIdentity("esrf-idp", "Xavier X@esrf.fr", {"preferred_username": "xavier"}),)
        gpu = judge(service, facility, dataset, {"esrf-idp"}, {"gpu": True, "cpus": 8}, home=True, identities=me)
        assert gpu.fits and gpu.partition == "jupyter-gpu"
        too_big = judge(service, facility, dataset, {"esrf-idp"}, {"gpu": True, "cpus": 24}, home=True,
                        identities=me)
        assert not too_big.fits and "partition jupyter-gpu has at most 16 CPUs" in too_big.reason
    broker.index.close()


def test_a_binder_opens_the_datasets_folder_of_its_repository():
    from connectors.binderhub import BinderHubConnector

    config = {"default_repository": "gh/panosc-eu/notebooks/HEAD", "data_path_template": "/data/{proposal}"}
    opened = LaunchTarget("https://binder.egi.example", config, None, None, "", {}, facts={"proposal": "9-13-612"})
    assert BinderHubConnector().deep_link(opened) == ("https://binder.egi.example/v2/gh/panosc-eu/notebooks/HEAD"
                                                      "?labpath=data%2F9-13-612")
    unknown = LaunchTarget("https://binder.egi.example", config, None, None, "", {}, facts={})
    assert BinderHubConnector().deep_link(unknown).endswith("/v2/gh/panosc-eu/notebooks/HEAD?labpath=data")


def test_a_partition_gres_without_a_count_place_is_refused_naming_the_field(tmp_path):  # noqa: ANN001
    from panbroker.app import build_broker
    from broker.authz import Principal
    from broker.registry_kinds import KINDS
    from tests.conftest import make_settings

    broker = build_broker(make_settings(tmp_path))
    admin = Principal("test", admin=True)
    broker.registry.create(admin, KINDS.facility, {"id": "esrf", "name": "ESRF", "country": "FR"})
    with pytest.raises(InvalidInput) as refused:
        broker.registry.create(admin, KINDS.service, {
            "facility_id": "esrf", "kind": "jupyterhub", "title": "hub", "base_url": "https://hub.esrf.example",
            "capabilities": {"partitions": [{"id": "gpu", "gres": "gpu:1"}]}})
    assert [e.message for e in refused.value.errors] == [
        "a Slurm gres with {} for the GPU count, e.g. gpu:{} or gpu:a100:{}"]
    broker.index.close()
