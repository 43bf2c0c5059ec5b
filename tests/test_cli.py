"""The ``panbroker`` command line, on a database chosen by PANBROKER_* settings."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from panbroker.cli import main
from tests.loopback import ok_json, serve

SEED = Path(__file__).resolve().parent.parent / "registry" / "seed" / "panosc.yaml"


@pytest.fixture
def run(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setenv("PANBROKER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PANBROKER_ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("PANBROKER_LOG_LEVEL", "WARNING")
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True):  # noqa: ANN202
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert (result.exit_code == 0) == ok, result.output
        return result

    return invoke


def test_facility_and_service_crud(run):  # noqa: ANN001
    run("facility", "add", "--set", "id=ill", "--set", "name=Institut Laue-Langevin", "--set", "country=FR")
    run("service", "add", "--json", json.dumps({"id": "ill-visa", "facility_id": "ill", "kind": "visa",
                                                "title": "ILL VISA", "base_url": "https://visa.ill.fr"}),
        "--set", "capabilities.max_cpus=16", "--set", "credential=cli-secret-value")
    listed = run("service", "list").output
    assert "ill-visa" in listed and "visa.ill.fr" in listed
    shown = json.loads(run("service", "show", "ill-visa").output)
    assert shown["capabilities"]["max_cpus"] == 16 and shown["has_credential"] is True
    assert "cli-secret-value" not in run("service", "show", "ill-visa").output

    run("service", "update", "ill-visa", "--set", "title=VISA at ILL")
    assert json.loads(run("service", "show", "ill-visa").output)["title"] == "VISA at ILL"
    stale = run("service", "update", "ill-visa", "--set", "title=Old", "--version", "1", ok=False)
    assert "version 2" in stale.output

    run("eosc", "add", "--set", "service_id=ill-visa", "--set", "status=registered")
    assert "registered" in run("eosc", "list").output
    run("search-endpoint", "add", "--set", "facility_id=ill", "--set", "kind=oai-pmh",
        "--set", "base_url=https://data.ill.example/oai")
    assert "ill-oai-pmh" in run("search-endpoint", "list").output

    refused = run("facility", "delete", "ill", ok=False)
    assert "still has 1 service" in refused.output
    run("service", "delete", "ill-visa")
    run("search-endpoint", "delete", "ill-oai-pmh")
    run("facility", "delete", "ill")
    assert "ill" not in run("facility", "list", "--json").output


def test_bad_input_is_reported_by_field_without_a_traceback(run):  # noqa: ANN001
    result = run("facility", "add", "--set", "id=x", "--set", "name=X", "--set", "country=France", ok=False)
    assert "country" in result.output and "Traceback" not in result.output
    missing = run("service", "show", "nothing", ok=False)
    assert "no service 'nothing'" in missing.output


def test_registry_import_is_idempotent_and_export_writes_the_seed_format(run, tmp_path):  # noqa: ANN001
    assert "created: 7 facility, 17 service, 17 eosc-entry" in run("registry", "import", str(SEED)).output
    assert "updated: nothing" in run("registry", "import", str(SEED)).output
    out = tmp_path / "out.yaml"
    run("registry", "export", str(out))
    assert "jupyter-slurm.esrf.fr" in out.read_text()
    assert "filter" not in run("service", "list", "--filter", "kind=binderhub").output
    assert "egi-binder" in run("service", "list", "--filter", "kind=binderhub").output


def test_check_prints_a_table_of_health(run):  # noqa: ANN001
    with serve(ok_json()) as (url, _):
        run("facility", "add", "--set", "id=fac", "--set", "name=F", "--set", "country=FR")
        run("service", "add", "--set", "id=hub", "--set", "facility_id=fac", "--set", "kind=jupyterhub",
            "--set", "title=Hub", "--set", f"base_url={url}")
        output = run("check").output
    assert output.splitlines()[0].split()[:2] == ["TARGET_TYPE", "ID"]
    assert "hub" in output and " up " in output
