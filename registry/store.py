"""Database engine, sessions and migrations (SQLite by default, PostgreSQL by URL)."""
from __future__ import annotations

import functools
import hashlib
import logging
import operator
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.expression import Executable
from sqlalchemy.orm import Session, sessionmaker

from registry.models import RegistryStamp

MIGRATIONS = Path(__file__).parent / "migrations"
#: tables whose writes bump the registry stamp (what registry and catalogue reads show)
REGISTRY_TABLES = frozenset({"facilities", "compute_services", "search_endpoints", "eosc_entries"})
_WRITTEN_TABLE = re.compile(r'^\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)', re.IGNORECASE)
_READ_STAMP = f"SELECT stamp FROM {RegistryStamp.__tablename__} WHERE id = 1"
# an upsert (SQLite and PostgreSQL alike), so a stamp row lost to a TRUNCATE comes back with the next write
_BUMP_STAMP = text(f"INSERT INTO {RegistryStamp.__tablename__} (id, stamp) VALUES (1, 1) "
                   f"ON CONFLICT (id) DO UPDATE SET stamp = {RegistryStamp.__tablename__}.stamp + 1")
#: every request thread keeps its SQLite connection (QueuePool's default 5 + 10 opened and closed one per
#: request beyond 5 at once, each with its PRAGMAs)
SQLITE_POOL_SIZE = 32
MIGRATION_LOCK = "panbroker:migrations"
log = logging.getLogger(__name__)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys enforced, WAL and a busy timeout."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        pool = {"pool_size": SQLITE_POOL_SIZE, "max_overflow": SQLITE_POOL_SIZE} if path and path != ":memory:" else {}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # noqa: ANN001 - DBAPI hook
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def lock_key(name: str) -> int:
    """A signed 64-bit key for PostgreSQL's advisory locks from a name (the same in every process)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """On PostgreSQL, one migrating process at a time: the others wait here, then find nothing to do."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key(MIGRATION_LOCK)})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(MIGRATION_LOCK)})
            connection.commit()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent; processes starting together migrate once)."""
    with migration_lock(engine):
        command.upgrade(alembic_config(engine), revision)


def schema_is_current(engine: Engine) -> bool:
    """Whether the database's schema is at the newest migration this code knows."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head


def wait_for_schema(engine: Engine, seconds: float, poll: float = 0.5) -> None:
    """Until the schema is current (another process or ``panbroker migrate`` migrates it); ``TimeoutError``
    after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not schema_is_current(engine):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the database schema is not at its newest revision after {seconds:g} s: "
                               "run `panbroker migrate`")
        log.info("waiting for the database schema to be migrated")
        time.sleep(poll)


def run_many(connection: Connection, statement: Executable, rows: Sequence[dict[str, Any]]) -> None:
    """``connection.execute(statement, rows)`` (one statement, many rows) with the rows handed to the driver
    as they are, in its own parameter style: SQLAlchemy's work on each row's parameters was most of what a
    harvest of millions spent on the OAI-PMH feed. The rows must hold what the driver takes: values already
    through their column type's bind processor where it has one (``bind_value``)."""
    if rows:
        sql, pick = _compiled(statement, connection.dialect)
        connection.exec_driver_sql(sql, [pick(row) for row in rows])


def run_rows(connection: Connection, statement: Executable, values: dict[str, Any]) -> list[Any]:
    """The rows ``statement`` reads with ``values`` for its parameters, through the driver as ``run_many``
    (and as the driver returns them: a boolean is 0 or 1 on SQLite)."""
    sql, pick = _compiled(statement, connection.dialect)
    return connection.exec_driver_sql(sql, pick(values)).all()


@functools.lru_cache(maxsize=256)
def _compiled(statement: Executable, dialect: Any) -> tuple[str, Callable[[dict[str, Any]], Any]]:
    """``statement``'s SQL for ``dialect`` (compiled once), and how a row of named values becomes its parameters."""
    compiled = statement.compile(dialect=dialect)
    names = compiled.positiontup
    if not compiled.positional or not names:
        return str(compiled), dict
    if len(names) == 1:
        return str(compiled), lambda row: (row[names[0]],)
    return str(compiled), operator.itemgetter(*names)


def bind_value(connection: Connection, column: Any, value: Any) -> Any:
    """``value`` as SQLAlchemy would hand it to the driver for ``column`` (a datetime on SQLite is text)."""
    process = column.type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
    return process(value) if process is not None else value


class Store:
    """Hands out sessions bound to one engine; one unit of work per ``session()`` block.

    ``generation`` counts the transactions this process committed that wrote something (ORM or plain
    statements alike), so that a reader can keep a snapshot until the next write; ``registry_generation``
    those that wrote the registry, for a reader of the registry only. ``registry_stamp()`` is
    the same for every process on the database: each transaction writing ``REGISTRY_TABLES`` bumps it
    as its last statement before commit (last, so the row lock is held only to the commit and two
    writers cannot deadlock on it).
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self._factory = sessionmaker(bind=engine, expire_on_commit=False)
        self.generation = 0
        self.registry_generation = 0  # the same, of transactions that wrote REGISTRY_TABLES

        @event.listens_for(engine, "after_cursor_execute")
        def _note_write(connection, _cursor, statement, _parameters, context, _many):  # noqa: ANN001
            table = _WRITTEN_TABLE.match(statement)  # a statement handed to the driver as it is (``run_many``) too
            if table or (context is not None and (context.isinsert or context.isupdate or context.isdelete)):
                connection.info["wrote"] = True
                if table and table.group(1).lower() in REGISTRY_TABLES:
                    connection.info["registry_wrote"] = True  # taken by the stamp's bump
                    connection.info["registry_changed"] = True  # taken at commit

        @event.listens_for(engine, "commit")
        def _count_write(connection):  # noqa: ANN001
            connection.info.pop("registry_wrote", None)
            if connection.info.pop("registry_changed", False):
                self.registry_generation += 1
            if connection.info.pop("wrote", False):
                self.generation += 1

        @event.listens_for(engine, "rollback")
        def _forget_write(connection):  # noqa: ANN001
            for key in ("wrote", "registry_wrote", "registry_changed"):
                connection.info.pop(key, None)

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._factory()
        try:
            yield session
            self._stamp_registry_writes(session)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def registry_stamp(self) -> int:
        """The registry stamp as committed now (``-1`` on a database not migrated to it). Read on the
        pooled DBAPI connection: a session around one primary-key read cost more than the read."""
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(_READ_STAMP)
            row = cursor.fetchone()
            cursor.close()
            connection.rollback()
        finally:
            connection.close()
        return -1 if row is None else row[0]

    @staticmethod
    def _stamp_registry_writes(session: Session) -> None:
        if not session.in_transaction():
            return
        session.flush()
        if session.connection().info.pop("registry_wrote", False):
            session.execute(_BUMP_STAMP)
