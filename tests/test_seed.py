"""The seed registry from the PaNOSC report: content, idempotent import without network, export."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from broker.authz import Principal
from panmodel.errors import InvalidInput
from broker.registry_kinds import KINDS
from broker.registry_service import Precondition
from broker.seeding import export_registry, import_registry, read_file

SEED = Path(__file__).resolve().parent.parent / "registry" / "seed" / "panosc.yaml"
ACTOR = Principal("seed-test", admin=True)


@pytest.fixture
def no_network_at_all(monkeypatch):  # noqa: ANN001, ANN201
    """Stricter than the suite's loopback-only guard: any socket connect or name lookup fails."""
    calls = []

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(args)
        raise OSError("network used during import")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return calls


def test_seed_imports_twice_with_no_change_and_no_network(broker, no_network_at_all):  # noqa: ANN001
    first = import_registry(broker.registry, ACTOR, read_file(SEED))
    second = import_registry(broker.registry, ACTOR, read_file(SEED))
    assert first.created == {"facility": 7, "service": 17, "eosc-entry": 17}
    assert second.writes == 0 and sum(second.unchanged.values()) == 41
    assert broker.registry.audit_log().total == 41
    assert no_network_at_all == []


def test_seed_holds_the_services_and_eosc_states_of_the_report(broker):  # noqa: ANN001
    import_registry(broker.registry, ACTOR, read_file(SEED))
    services = {s["id"]: s for s in broker.registry.list(KINDS.service, limit=100).items}
    expected = {  # (kind, URL, EOSC state) as the report's tables 1 and 4 give them
        "esrf-jupyterhub": ("jupyterhub", "https://jupyter-slurm.esrf.fr", "registered"),
        "esrf-guacamole": ("remote-desktop", "https://remote.esrf.fr", "in-progress"),
        "esrf-visa": ("visa", "https://visa.esrf.fr", "in-progress"),
        "ill-visa": ("visa", "https://visa.ill.fr", "registered"),
        "european-xfel-jupyterhub": ("jupyterhub", "https://max-jhub.desy.de", "in-progress"),
        "european-xfel-fastx": ("remote-desktop", "https://max-exfl-display.desy.de:3443", "in-progress"),
        "european-xfel-visa": ("visa", "https://visa.xfel.eu", "in-progress"),
        "ess-jupyterhub": ("jupyterhub", "https://e-learning.pan-training.eu", "registered"),
        "ess-visa": ("visa", "https://visa-prod.esss.dk", "not-registered"),
        "eli-eric-jupyterhub": ("jupyterhub", "https://notebooks.eli-laser.eu", "in-progress"),
        "eli-eric-visa": ("visa", "https://visa.eli-laser.eu", "not-registered"),
        "ceric-eric-jupyter": ("jupyterhub", "https://vuo.elettra.eu", "in-progress"),
        "ceric-eric-visa": ("visa", "https://visa.ceric-eric.eu", "not-registered"),
        "egi-notebooks": ("jupyterhub", "https://notebooks.egi.eu", "registered"),
        "egi-binder": ("binderhub", "https://binder-panosc.fedcloud-tf.fedcloud.eu", "not-registered"),
        "egi-visa": ("visa", None, "not-registered"),
    }
    for sid, (kind, url, eosc) in expected.items():
        assert (services[sid]["kind"], services[sid]["base_url"], services[sid]["eosc"]["status"]) == (kind, url, eosc)
    esrf_hub = services["esrf-jupyterhub"]
    assert esrf_hub["capabilities"]["gpu"] is True
    assert [p["id"] for p in esrf_hub["capabilities"]["partitions"]] == ["x86", "power9-gpu"]
    assert esrf_hub["connector_config"]["spawner"] == "jupyterhub_moss"
    assert services["ill-visa"]["capabilities"]["max_cpus"] == 16
    assert services["ill-visa"]["capabilities"]["max_memory_gb"] == 128
    assert services["egi-visa"]["lifecycle"] == "planned"


def test_export_round_trips_and_holds_no_secrets(broker, tmp_path):  # noqa: ANN001
    import_registry(broker.registry, ACTOR, read_file(SEED))
    broker.registry.update(ACTOR, KINDS.service, "ill-visa", {"credential": "s3cr3t-token"},
                           Precondition(1, from_header=True), partial=True)
    exported = export_registry(broker.registry)
    text = yaml.safe_dump(exported)
    assert "s3cr3t-token" not in text and "credential" not in text
    services = [s for f in exported["facilities"] for s in f.get("services", [])]
    assert len(services) == 17
    assert not any({"health", "version", "has_credential", "created_at"} & set(s) for s in services)
    path = tmp_path / "export.yaml"
    path.write_text(text)
    again = import_registry(broker.registry, ACTOR, read_file(path))
    assert again.writes == 0
    assert broker.registry.credential("ill-visa") == "s3cr3t-token"  # an import without it keeps it


def test_an_import_with_an_invalid_object_writes_nothing_and_names_the_place(broker, tmp_path):  # noqa: ANN001
    data = yaml.safe_load(SEED.read_text())
    data["facilities"][1]["services"][0]["base_url"] = "gopher://visa.ill.fr"
    with pytest.raises(InvalidInput) as error:
        import_registry(broker.registry, ACTOR, data)
    assert any(e.field == "facilities[1].services[0].base_url" for e in error.value.errors)
    assert broker.registry.list(KINDS.facility).total == 0


def test_an_import_updates_what_differs(broker):  # noqa: ANN001
    data = yaml.safe_load(SEED.read_text())
    import_registry(broker.registry, ACTOR, data)
    data["facilities"][1]["services"][0]["eosc"]["status"] = "in-progress"
    report = import_registry(broker.registry, ACTOR, data)
    assert report.updated == {"eosc-entry": 1}
    assert broker.registry.get(KINDS.eosc_entry, "ill-visa")["status"] == "in-progress"


def test_a_file_without_facilities_is_refused(tmp_path):  # noqa: ANN001
    path = tmp_path / "bad.yaml"
    path.write_text("services: []\n")
    with pytest.raises(InvalidInput, match="facilities"):
        read_file(path)
