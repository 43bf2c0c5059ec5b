"""The ``panbroker`` command line: serve, worker, migrate, harvest, a one-off health check, the registry's
commands (``panbroker.cli_registry``), the people's (``panbroker.cli_people``) and the commands of other
packages (demo).
"""
from __future__ import annotations

import os
import warnings
from importlib.metadata import entry_points

import click

# connexion imports starlette's test client, which warns about httpx on every command: not the user's concern
warnings.filterwarnings("ignore", message=".*starlette.testclient.*")

from broker.registry_kinds import KINDS  # noqa: E402
from broker.settings import Settings  # noqa: E402
from panbroker.cli_people import person  # noqa: E402
from panbroker.cli_registry import COMMANDS as REGISTRY_COMMANDS  # noqa: E402
from panbroker.cli_support import broker_from_env, fail_cleanly, table  # noqa: E402
from panmodel.errors import ConfigurationError  # noqa: E402

COMMANDS = "panbroker.commands"


class _Commands(click.Group):
    """The CLI's own commands and those other packages add under the entry-point group ``panbroker.commands``
    (``panbroker demo`` is one: the CLI reaches the demo only through it), each loaded when it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *(e.name for e in entry_points(group=COMMANDS))})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        entry = next((e for e in entry_points(group=COMMANDS) if e.name == name), None)
        if command is None and entry is not None:
            command = entry.load()
            command.callback = fail_cleanly(command.callback)
        return command


@click.group(cls=_Commands)
def main() -> None:
    """PaN Broker: federated dataset search and analysis launch for photon and neutron facilities."""


@main.command()
@click.option("--host", default=None, help="Listen address (default PANBROKER_HOST).")
@click.option("--port", type=int, default=None, help="Port (default PANBROKER_PORT).")
@click.option("--worker/--no-worker", default=None, help="Run scheduled jobs here (default PANBROKER_EMBEDDED_WORKER).")
@click.option("--workers", type=int, default=None,
              help="Web worker processes (default PANBROKER_WORKERS); scheduled jobs run once, in the parent.")
@fail_cleanly
def serve(host: str | None, port: int | None, worker: bool | None, workers: int | None) -> None:
    """Serve the API and portal."""
    from panbroker.server import run

    os.umask(0o077)  # whatever the broker writes (database, index, keys) is its own
    settings = Settings.from_env()
    run(settings, host or settings.host, port or settings.port,
        settings.embedded_worker if worker is None else worker, workers=workers)


@main.command()
@fail_cleanly
def worker() -> None:
    """Run the scheduled jobs (health checks, harvests, launches, EOSC sync) in the foreground."""
    from broker import datalock, index_roles, logs
    from panbroker.worker import run_forever

    os.umask(0o077)
    settings = Settings.from_env()
    logs.configure(settings.log_level, settings.log_format)
    datalock.hold(settings.data_dir, "panbroker worker")
    index_roles.claim(settings, "panbroker worker")
    run_forever(broker_from_env())


@main.command()
@fail_cleanly
def migrate() -> None:
    """Bring the database schema to the newest revision and exit (replicas started with
    PANBROKER_MIGRATE_ON_START=false wait for this). Safe to run beside running processes."""
    from registry.store import make_engine, migrate as upgrade, schema_is_current

    engine = make_engine(Settings.from_env().effective_database_url)
    was_current = schema_is_current(engine)
    upgrade(engine)
    click.echo("the schema was already current" if was_current else "the schema is migrated to its newest revision")


@main.command()
@fail_cleanly
def check() -> None:
    """Run health checks of every endpoint once and print a table."""
    outcomes = broker_from_env().health.check_all()
    table([o.__dict__ for o in outcomes], ["target_type", "id", "facility_id", "kind", "status", "latency_ms", "error"])


@main.group()
def harvest() -> None:
    """Harvest search endpoints into the index."""


@harvest.command("run")
@click.argument("endpoints", nargs=-1)
@click.option("--confirm-deletions", is_flag=True,
              help="Let the harvest delete more than PANBROKER_HARVEST_MAX_DELETE_SHARE of a source (after `suspect`).")
@click.option("--wait", "wait_seconds", type=float, default=600, show_default=True,
              help="Seconds to wait for a running broker's worker to finish the harvests it was asked for.")
@fail_cleanly
def harvest_run(endpoints: tuple[str, ...], confirm_deletions: bool, wait_seconds: float) -> None:
    """Harvest ENDPOINTS (default: every search endpoint) now and print each job. Beside a running broker,
    which owns the index, its worker is asked to run them."""
    import time

    from broker import datalock

    settings = Settings.from_env()
    busy = None
    if not settings.elasticsearch_url:  # the embedded index has one writer: the running broker's, if any
        try:
            datalock.hold(settings.data_dir, "panbroker harvest run")
        except datalock.DataDirBusy:
            busy = datalock.holder(settings.data_dir)
    broker = broker_from_env()
    names = list(endpoints) or [e["id"] for e in broker.registry.list(KINDS.search_endpoint, limit=500).items]
    if busy is None:
        jobs = [broker.harvest.run(e, confirm_deletions) for e in names]
    else:
        click.echo(f"a broker is running on this data folder ({busy}) and owns the index: asking its worker",
                   err=True)
        ids = [broker.harvest.queue(e, confirm_deletions)["id"] for e in names]
        deadline = time.monotonic() + wait_seconds
        while True:
            jobs = [broker.harvest.job(i) for i in ids]
            if all(j["state"] not in ("queued", "running") for j in jobs) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    table(jobs, ["id", "endpoint_id", "state", "gathered", "imported", "deleted", "failed", "error"])
    if any(j["state"] in ("queued", "running") for j in jobs):
        raise ConfigurationError(f"the worker has not finished within {wait_seconds:g} s: follow the jobs with "
                                 "`panbroker harvest jobs` or GET /api/v1/harvest/jobs")
    broker.index.close()


@harvest.command("status")
@click.option("--endpoint", help="Only this search endpoint.")
@click.option("--limit", type=int, default=20)
@fail_cleanly
def harvest_status(endpoint: str | None, limit: int) -> None:
    """Recent harvest jobs, newest first."""
    table(broker_from_env().harvest.jobs(endpoint, limit),
          ["id", "endpoint_id", "state", "started_at", "finished_at", "imported", "deleted", "failed", "error"])


for command in (*REGISTRY_COMMANDS, person):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    main()
