"""Store, migrations, secrets at rest and settings."""
from __future__ import annotations

import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.fernet import Fernet
from sqlalchemy import bindparam, delete, insert, select

from panmodel.errors import ConfigurationError
from broker.secretbox import KEY_FILE, SecretBox
from broker.settings import Settings, describe
from panmodel.clock import as_utc, utcnow
from registry.models import Base, Facility, OaiRecord
from registry.models.coordination import ScheduledRun
from registry.store import Store, bind_value, make_engine, migrate, run_many, run_rows


def test_migrations_build_exactly_the_models_schema(database_url):  # noqa: ANN001
    engine = make_engine(database_url)
    migrate(engine)
    migrate(engine)  # idempotent
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], "models and migrations disagree; add an Alembic revision"


def test_secrets_are_encrypted_and_keys_rotate(tmp_path):  # noqa: ANN001
    old, new = Fernet.generate_key(), Fernet.generate_key()
    token = SecretBox([old]).encrypt("hub-token")
    assert "hub-token" not in token
    rotated_box = SecretBox([new, old])
    assert rotated_box.decrypt(token) == "hub-token"
    assert SecretBox([new]).decrypt(rotated_box.rotate(token)) == "hub-token"
    with pytest.raises(ConfigurationError):
        SecretBox([new]).decrypt(token)


def test_a_generated_key_file_is_private_and_reused(tmp_path):  # noqa: ANN001
    first = SecretBox.from_settings("", tmp_path)
    mode = stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode)
    assert mode == 0o600
    assert SecretBox.from_settings("", tmp_path).decrypt(first.encrypt("x")) == "x"


def test_a_malformed_key_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="PANBROKER_ENCRYPTION_KEYS"):
        SecretBox.from_settings("not-a-fernet-key", None)


def test_settings_come_from_prefixed_environment_variables():
    settings = Settings.from_env({"PANBROKER_PORT": "9090", "PANBROKER_EMBEDDED_WORKER": "false",
                                  "PANBROKER_ALLOWED_NETWORKS": "127.0.0.0/8, ::1/128",
                                  "PANBROKER_HTTP_READ_TIMEOUT": "2.5"})
    assert settings.port == 9090 and settings.embedded_worker is False and settings.http_read_timeout == 2.5
    assert [str(n) for n in settings.allowed_networks] == ["127.0.0.0/8", "::1/128"]
    assert settings.effective_database_url.startswith("sqlite:///")


@pytest.mark.parametrize("name, value", [("PANBROKER_PORT", "eighty"), ("PANBROKER_EMBEDDED_WORKER", "maybe"),
                                         ("PANBROKER_ALLOWED_NETWORKS", "10.0.0.0/33")])
def test_bad_settings_name_the_variable(name, value):  # noqa: ANN001
    with pytest.raises(ConfigurationError):
        Settings.from_env({name: value})


def test_every_setting_is_documented():
    assert all(help_text for _, _, help_text in describe())
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [name for name, _, _ in describe() if f"| `{name}` |" not in readme]
    assert missing == [], f"add these to the README's configuration table: {missing}"


@pytest.fixture
def store(database_url):  # noqa: ANN001, ANN201
    """A store on a migrated database (each backend), its engine disposed after the test."""
    engine = make_engine(database_url)
    migrate(engine)
    yield Store(engine)
    engine.dispose()


def test_the_write_generation_counts_committed_writes_only(store):  # noqa: ANN001
    start = store.generation
    with store.session() as session:
        session.execute(select(Facility)).all()
    assert store.generation == start  # a read
    with store.session() as session:
        session.add(Facility(id="gen-test", name="Generation", country="FR"))
    assert store.generation == start + 1  # an ORM write
    with pytest.raises(RuntimeError), store.session() as session:
        session.execute(delete(Facility).where(Facility.id == "gen-test"))
        raise RuntimeError("rolled back")
    assert store.generation == start + 1  # a write rolled back
    with store.session() as session:
        session.execute(delete(Facility).where(Facility.id == "gen-test"))
    assert store.generation == start + 2  # a plain statement
    with store.engine.begin() as connection:  # rows handed to the driver as they are
        run_many(connection, delete(Facility.__table__).where(Facility.__table__.c.id == bindparam("gone")),
                 [{"gone": "none-such"}])
    assert store.generation == start + 3


def test_rows_handed_to_the_driver_are_what_sqlalchemy_would_write_and_read(store):  # noqa: ANN001
    """``run_many``/``run_rows`` skip SQLAlchemy's per-row work: a value through its column's bind processor
    (a datetime on SQLite is text in SQLAlchemy's format) reads back through the ORM as the same value."""
    table, when = OaiRecord.__table__, datetime(2026, 12, 3, 19, 0, 1, 123456, tzinfo=timezone.utc)
    with store.engine.begin() as connection:
        row = {"pid": "10.1/x", "facility": "ILL", "sets": "|facility:ILL|", "doi": None, "digest": "d" * 64,
               "datestamp": bind_value(connection, table.c.datestamp, when),
               "deleted": bind_value(connection, table.c.deleted, False)}
        run_many(connection, insert(table), [row, {**row, "pid": "10.1/y"}])
        read = select(table.c.pid, table.c.deleted).where(table.c.pid.in_([bindparam("a"), bindparam("b")]))
        assert sorted(run_rows(connection, read, {"b": "10.1/y", "a": "10.1/x"})) == [("10.1/x", False), ("10.1/y", False)]
    with store.session() as session:
        stored = session.get(OaiRecord, "10.1/x")
        assert as_utc(stored.datestamp) == when and stored.deleted is False and stored.doi is None
        session.execute(delete(OaiRecord))


def test_the_registry_generation_counts_committed_registry_writes_only(store):  # noqa: ANN001
    start = store.registry_generation
    with store.session() as session:
        session.add(ScheduledRun(job_id="gen-test", slot_at=utcnow(), worker="test"))
    assert store.registry_generation == start and store.generation > 0  # a write, not to the registry
    with pytest.raises(RuntimeError), store.session() as session:
        session.add(Facility(id="gen-test", name="Generation", country="FR"))
        session.flush()
        raise RuntimeError("rolled back")
    assert store.registry_generation == start
    with store.session() as session:
        session.add(Facility(id="gen-test", name="Generation", country="FR"))
    assert store.registry_generation == start + 1
