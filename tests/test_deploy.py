"""The production files under deploy/, checked for what can be checked on this machine: the systemd units
pass `systemd-analyze verify` (with the unit's panbroker pointed at this virtualenv) and their commands
parse; the container file's settings are valid, what its RUN installs is what this virtualenv holds at
the pinned versions, and its CMD, started here, answers its own HEALTHCHECK."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from broker.settings import Settings, describe

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
PANBROKER = Path(sys.executable).with_name("panbroker")
INSTALLED_AT = "/opt/panbroker/venv/bin/panbroker"


def unit_values(unit: Path, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.read_text().splitlines() if line.startswith(key + "=")]


def containerfile() -> list[tuple[str, str]]:
    """(instruction, argument) of each line of deploy/Containerfile, continuations joined."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Containerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def container_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, argument in containerfile():
        if instruction == "ENV":
            env.update(part.split("=", 1) for part in shlex.split(argument))
    return env


def exec_form(argument: str) -> list[str]:
    """A CMD/HEALTHCHECK in exec (JSON) form, as the runtime would run it."""
    return json.loads(argument[argument.index("["):])


def test_there_are_units_for_the_web_processes_and_the_worker() -> None:
    assert {u.name for u in UNITS} == {"panbroker-web.service", "panbroker-worker.service"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_each_unit_passes_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        warnings.warn("systemd-analyze is not installed: the systemd units are NOT verified", stacklevel=1)
        pytest.skip("systemd-analyze is not installed: the systemd units are NOT verified")
    here = tmp_path / unit.name  # the same unit, with panbroker where this test's virtualenv has it
    here.write_text(unit.read_text().replace(INSTALLED_AT, str(PANBROKER))
                    .replace("EnvironmentFile=/", "EnvironmentFile=-/"))
    result = subprocess.run(["systemd-analyze", "verify", str(here)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if unit.name in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_each_units_commands_parse(unit: Path) -> None:
    for command in unit_values(unit, "ExecStartPre"):
        assert Path(shlex.split(command)[0]).exists(), command
    (start,) = unit_values(unit, "ExecStart")
    argv = shlex.split(start)
    assert argv[0] == INSTALLED_AT
    from click.testing import CliRunner

    from panbroker.cli import main

    result = CliRunner().invoke(main, [*argv[1:], "--help"])  # the installed command's own parser, in-process
    assert result.exit_code == 0, result.output  # an option the CLI does not know fails here
    assert unit_values(unit, "Environment") == ["PROMETHEUS_MULTIPROC_DIR=/var/lib/panbroker/metrics"]


def test_the_example_environment_file_holds_valid_settings_only() -> None:
    lines = [line for line in (DEPLOY / "panbroker.env.example").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    values = dict(line.split("=", 1) for line in lines)
    known = {name for name, _, _ in describe()}
    assert set(values) <= known, set(values) - known
    settings = Settings.from_env(values)
    assert settings.effective_metrics_networks and settings.database_url.startswith("postgresql+psycopg://")


def test_the_container_files_copies_exist_and_its_settings_are_valid() -> None:
    for instruction, argument in containerfile():
        if instruction == "COPY":
            for source in shlex.split(argument)[:-1]:
                assert (ROOT / source).exists(), source
    env = container_env()
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("PANBROKER_")})
    assert settings.host == "0.0.0.0" and "PROMETHEUS_MULTIPROC_DIR" in env


def test_what_the_container_installs_is_what_this_virtualenv_holds_at_the_pinned_versions() -> None:
    """The RUN's `pip install -c constraints.txt '.[extras]'`, checked against this virtualenv: every
    requirement of panbroker and of those extras installed, satisfying setup.py and pinned exactly."""
    (install,) = [a for i, a in containerfile() if i == "RUN" and "pip install" in a]
    argv = shlex.split(install)
    assert argv[argv.index("-c") + 1] == "constraints.txt"
    extras = set(re.fullmatch(r"\.\[(.*)\]", argv[-1]).group(1).split(","))
    pins = dict(line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line)
    pins = {name.lower().replace("_", "-"): version for name, version in pins.items()}
    declared = metadata.distribution("panbroker").metadata.get_all("Provides-Extra") or []
    assert extras <= set(declared), extras - set(declared)
    problems = []
    for requirement in map(Requirement, metadata.requires("panbroker") or []):
        wanted = requirement.marker is None or any(requirement.marker.evaluate({"extra": e}) for e in extras)
        if not wanted:
            continue
        name = requirement.name.lower().replace("_", "-")
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{requirement}: not installed")
            continue
        if installed not in requirement.specifier:
            problems.append(f"{requirement}: {installed} installed")
        if pins.get(name) != installed:
            problems.append(f"{requirement}: pinned {pins.get(name)} in constraints.txt, {installed} installed")
    assert not problems, problems


@pytest.mark.slow  # the image's command as a real server process
def test_the_containers_command_starts_and_answers_its_healthcheck(tmp_path: Path) -> None:
    (cmd,) = [exec_form(a) for i, a in containerfile() if i == "CMD"]
    (check,) = [exec_form(a) for i, a in containerfile() if i == "HEALTHCHECK"]
    assert cmd[0] == "panbroker" and check[0] == "python"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {**os.environ, **container_env(), "PANBROKER_DATA_DIR": str(tmp_path / "data"),
           "PANBROKER_HOST": "127.0.0.1", "PANBROKER_PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    log = tmp_path / "server.log"
    server = subprocess.Popen([str(PANBROKER), *cmd[1:]], env=env, stdout=subprocess.DEVNULL,
                              stderr=log.open("wb"))
    probe = [sys.executable, *check[1:-1], check[-1].replace("8080", str(port))]
    try:
        deadline = time.monotonic() + 90
        while subprocess.run(probe, capture_output=True, timeout=30).returncode != 0:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the container's command did not answer its healthcheck in 90 s"
            time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
