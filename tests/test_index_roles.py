"""The embedded index has one writer and read-only readers on its machine: a process started in another
role (a second writer, a replica nobody writes for, replicas sharing PostgreSQL) is told at start what to
set instead, refused where it could only go wrong."""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

from broker import datalock, index_roles
from panbroker.cli import main
from panmodel.errors import ConfigurationError
from broker.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/never_connected"  # only its kind is read
HOLD = ("import sys, pathlib; from broker import datalock; datalock.hold(pathlib.Path(sys.argv[1]), "
        "'panbroker worker'); print('held', flush=True); sys.stdin.read()")


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Path]:
    """Another process on this machine writing the index folder it yields (as a worker does)."""
    folder = tmp_path / "shared-index"
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        yield folder
    finally:
        process.stdin.close()
        process.wait(timeout=10)


def _settings(tmp_path: Path, name: str, **changes: object) -> Settings:
    return Settings(data_dir=tmp_path / name, log_level="WARNING", **changes)


def test_a_second_writer_of_the_same_index_is_refused_naming_what_to_set(tmp_path: Path, writer: Path) -> None:
    settings = _settings(tmp_path, "second", index_dir=writer)  # its own data folder, the same index
    with pytest.raises(ConfigurationError) as refused:
        index_roles.claim(settings, "panbroker worker")
    assert "one writer" in refused.value.detail and "PANBROKER_ELASTICSEARCH_URL" in refused.value.detail
    assert "--no-worker" in refused.value.detail and "panbroker worker, pid" in refused.value.detail


def test_the_one_writer_takes_the_index_and_readers_beside_it_start_quietly(
        tmp_path: Path, writer: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="broker.index_roles")
    index_roles.check_reader(_settings(tmp_path, "replica", index_dir=writer, database_url=POSTGRES), "replica")
    index_roles.check_reader(_settings(tmp_path, "replica", index_dir=writer), "replica")
    mine = _settings(tmp_path, "alone")
    index_roles.claim(mine, "panbroker serve")
    assert datalock.holder(mine.effective_index_dir) is not None
    datalock.release(mine.effective_index_dir)
    assert caplog.records == []


def test_a_replica_nobody_writes_for_on_a_shared_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as refused:
        index_roles.check_reader(_settings(tmp_path, "replica", database_url=POSTGRES), "panbroker serve --no-worker")
    assert "nothing on this machine writes the embedded search index" in refused.value.detail
    assert "PANBROKER_ELASTICSEARCH_URL" in refused.value.detail and "panbroker worker" in refused.value.detail


def test_a_replica_nobody_writes_for_on_sqlite_is_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="broker.index_roles")
    index_roles.check_reader(_settings(tmp_path, "replica"), "panbroker serve --no-worker")
    assert any("nothing on this machine writes" in r.getMessage() and "PANBROKER_ELASTICSEARCH_URL" in r.getMessage()
               for r in caplog.records)


def test_a_writer_on_a_shared_database_says_other_machines_need_elasticsearch(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="broker.index_roles")
    settings = _settings(tmp_path, "worker", database_url=POSTGRES)
    index_roles.claim(settings, "panbroker worker")
    datalock.release(settings.effective_index_dir)
    assert any("other machines" in r.getMessage() and "PANBROKER_ELASTICSEARCH_URL" in r.getMessage()
               for r in caplog.records)


def test_with_elasticsearch_nothing_is_checked(tmp_path: Path, writer: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="broker.index_roles")
    elastic = {"elasticsearch_url": "http://127.0.0.1:9", "database_url": POSTGRES}
    index_roles.claim(_settings(tmp_path, "w", index_dir=writer, **elastic), "panbroker worker")
    index_roles.check_reader(_settings(tmp_path, "r", **elastic), "replica")
    assert caplog.records == []


def test_serve_no_worker_replica_on_postgresql_without_a_writer_stops_at_start(tmp_path: Path) -> None:
    env = {"PANBROKER_DATA_DIR": str(tmp_path / "replica"), "PANBROKER_DATABASE_URL": POSTGRES,
           "PANBROKER_ELASTICSEARCH_URL": ""}
    result = CliRunner().invoke(main, ["serve", "--no-worker", "--port", "0", "--workers", "3"], env=env)
    assert result.exit_code == 1
    assert "panbroker serve --no-worker: nothing on this machine writes" in result.output
    assert "PANBROKER_ELASTICSEARCH_URL" in result.output


def test_a_second_worker_on_the_same_index_stops_at_start(tmp_path: Path, writer: Path) -> None:
    env = {"PANBROKER_DATA_DIR": str(tmp_path / "second"), "PANBROKER_INDEX_DIR": str(writer),
           "PANBROKER_ELASTICSEARCH_URL": ""}
    result = CliRunner().invoke(main, ["worker"], env=env)
    assert result.exit_code == 1 and "Tantivy allows one writer per index" in result.output
