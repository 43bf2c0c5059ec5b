"""Shared fixtures. Every test runs with outbound connections limited to loopback (see
``_loopback_only``); registry tests run on SQLite and, when PANBROKER_TEST_DATABASE_URL is set, on
PostgreSQL too."""
from __future__ import annotations

import ipaddress
import os
import socket
import uuid
import warnings
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from panbroker.app import Broker, build_broker, create_app
from broker.settings import Settings, loopback_networks
from registry.models import Base

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


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    if not PG_URL:
        terminalreporter.write_sep("!", "PostgreSQL tests SKIPPED: set PANBROKER_TEST_DATABASE_URL", yellow=True)


@pytest.fixture(params=["sqlite", "postgresql"])
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


@pytest.fixture
def broker(settings: Settings) -> Broker:
    built = build_broker(settings)
    yield built
    built.store.engine.dispose()


@pytest.fixture
def client(broker: Broker):  # noqa: ANN201 - starlette TestClient
    return create_app(broker=broker).test_client()


@pytest.fixture
def sqlite_broker(sqlite_settings: Settings) -> Broker:
    built = build_broker(sqlite_settings)
    yield built
    built.store.engine.dispose()


@pytest.fixture
def sqlite_client(sqlite_broker: Broker):  # noqa: ANN201
    return create_app(broker=sqlite_broker).test_client()
