"""Shared fixtures. Every test runs with outbound connections limited to loopback (see
``_loopback_only``); registry tests run on SQLite and, when PANBROKER_TEST_DATABASE_URL is set, on
PostgreSQL too. A broker built in a test gets its SQLite registry as a copy of one migrated once per
test run, and connexion reads the OpenAPI file once per test process (see ``_built_once``)."""
from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import socket
import uuid
import warnings
from pathlib import Path
from typing import Any, Iterator

import alembic.command
import pytest
from connexion.spec import Specification
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from panbroker.app import Broker, build_broker, create_app
from broker.settings import Settings, loopback_networks
from registry.models import Base
from registry.store import alembic_config, make_engine

ADMIN_TOKEN = "test-admin-token-5f0c"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PG_URL = os.environ.get("PANBROKER_TEST_DATABASE_URL")

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


class NetworkRefused(OSError):
    """A test tried to reach something other than loopback."""


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return host in {"localhost", "testserver"}


def _guarded_connect(self: socket.socket, address, *args):  # noqa: ANN001, ANN202
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
        raise NetworkRefused(f"tests may contact loopback only, not {address[0]}")
    return _real_connect(self, address, *args)


def _guarded_connect_ex(self: socket.socket, address, *args):  # noqa: ANN001, ANN202
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
        raise NetworkRefused(f"tests may contact loopback only, not {address[0]}")
    return _real_connect_ex(self, address, *args)


def _guarded_getaddrinfo(host, *args, **kwargs):  # noqa: ANN001, ANN202
    if host is not None and not _is_loopback(str(host)):
        try:
            ipaddress.ip_address(str(host))
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, f"name lookups are disabled in tests ({host})") from None
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)


def _new_sqlite_file(engine: Any) -> Path | None:
    """The file of a SQLite engine whose database does not exist yet (None for anything else)."""
    if not isinstance(engine, Engine) or engine.url.get_backend_name() != "sqlite":
        return None
    name = engine.url.database or ""
    if name in ("", ":memory:") or name.startswith("file:"):
        return None
    path = Path(name)
    return None if path.exists() or Path(f"{name}-wal").exists() else path


class _MigratedTemplate:
    """An upgrade to head of a SQLite file that does not exist yet is a copy of a template that the
    real migrations built once in this process; every other upgrade runs the migrations."""

    def __init__(self, folder: Path, upgrade: Any):
        self.folder, self.upgrade, self.template = folder, upgrade, None

    def __call__(self, config: Any, revision: str, *args: Any, **kwargs: Any) -> None:
        target = _new_sqlite_file(config.attributes.get("engine"))
        if revision != "head" or target is None or args or kwargs:
            return self.upgrade(config, revision, *args, **kwargs)
        if self.template is None:
            template = self.folder / "registry-template.db"
            engine = make_engine(f"sqlite:///{template}")
            self.upgrade(alembic_config(engine), "head")
            engine.dispose()  # the last connection checkpoints the WAL into the file
            self.template = template
        shutil.copyfile(self.template, target)
        return None


def _spec_loaded_once(load: Any) -> Any:
    """connexion's ``Specification.load`` remembering each specification: a file's by path and mtime, one
    given as a dict (the broker's, with the installed connectors' kinds filled in) by its content."""
    loaded: dict[tuple, Specification] = {}

    def cached(cls: type, spec: Any, *, arguments: Any = None) -> Specification:
        if str(spec).startswith(("http://", "https://")):
            return load(spec, arguments=arguments)
        if isinstance(spec, dict):
            key: tuple = ("dict", json.dumps(spec, sort_keys=True, default=str), repr(arguments))
        else:
            path = Path(spec).resolve()
            key = (path, path.stat().st_mtime_ns, repr(arguments))
        if key not in loaded:
            loaded[key] = load(spec, arguments=arguments)
        return loaded[key]

    return classmethod(cached)


@pytest.fixture(scope="session", autouse=True)
def _built_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A broker costs its migrations (8+ on a fresh SQLite) and its app the OpenAPI file's parsing and
    validation: both are done once here instead of in each of the ~100 tests that build one. connexion
    shares one Specification among an app's middlewares already; the apps of this process share it too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(alembic.command, "upgrade",
                      _MigratedTemplate(tmp_path_factory.mktemp("registry"), alembic.command.upgrade))
        patch.setattr(Specification, "load", _spec_loaded_once(Specification.load))
        yield


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    if not PG_URL:
        warnings.warn("PANBROKER_TEST_DATABASE_URL is not set: PostgreSQL registry tests are SKIPPED", stacklevel=1)
        pytest.skip("PANBROKER_TEST_DATABASE_URL is not set; PostgreSQL tests skipped")
    name = f"panbroker_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


_SLOW_FILE = re.compile(r"^pytestmark = \[?pytest\.mark\.slow\b", re.MULTILINE)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``-m "not slow"``, a file marked slow as a whole is not even imported: collecting them cost each
    test process seconds (hypothesis and schemathesis, Playwright) for tests it then left out."""
    if config.getoption("markexpr") != "not slow" or collection_path.suffix != ".py" \
            or not collection_path.name.startswith("test_"):
        return None
    return True if _SLOW_FILE.search(collection_path.read_text(encoding="utf-8")) else None


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    if not PG_URL:
        terminalreporter.write_sep("!", "PostgreSQL tests SKIPPED: set PANBROKER_TEST_DATABASE_URL", yellow=True)


# the PostgreSQL runs of these tests are left out of `make test-fast`
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    url = request.getfixturevalue("postgres_database")
    yield url
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = [t.name for t in Base.metadata.sorted_tables]
        if tables:
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
    engine.dispose()


def make_settings(tmp_path: Path, database_url: str = "", **overrides) -> Settings:  # noqa: ANN003
    values = dict(data_dir=tmp_path / "data", database_url=database_url, admin_token=ADMIN_TOKEN,
                  allowed_networks=loopback_networks(), health_timeout_seconds=2.0, http_retries=0,
                  log_level="WARNING")
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """For tests whose subject does not depend on the database."""
    return make_settings(tmp_path)


def _broker_for_a_test(settings: Settings) -> Iterator[Broker]:
    built = build_broker(settings)
    yield built
    built.store.engine.dispose()


@pytest.fixture
def broker(settings: Settings) -> Iterator[Broker]:
    yield from _broker_for_a_test(settings)


@pytest.fixture
def client(broker: Broker):  # noqa: ANN201 - starlette TestClient
    return create_app(broker=broker).test_client()


@pytest.fixture
def sqlite_broker(sqlite_settings: Settings) -> Iterator[Broker]:
    yield from _broker_for_a_test(sqlite_settings)


@pytest.fixture
def sqlite_client(sqlite_broker: Broker):  # noqa: ANN201
    return create_app(broker=sqlite_broker).test_client()
