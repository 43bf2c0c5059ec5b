"""The ``panbroker`` command line: serve, worker, migrate, the commands of other packages (demo), registry
import/export, CRUD of every registry object, and a one-off health check.

Registry commands act on the configured database directly, as the local administrator.
"""
from __future__ import annotations

import getpass
import json
import os
import sys
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

import click
import yaml

# connexion imports starlette's test client, which warns about httpx on every command: not the user's concern
warnings.filterwarnings("ignore", message=".*starlette.testclient.*")

from broker.authz import Principal  # noqa: E402
from broker.registry_kinds import KINDS, Kind  # noqa: E402
from broker.registry_service import Precondition  # noqa: E402
from broker.settings import Settings  # noqa: E402
from panmodel.errors import BrokerError, ConfigurationError  # noqa: E402

COMMANDS = "panbroker.commands"


def _broker():  # noqa: ANN202 - panbroker.app.Broker
    from panbroker.app import build_broker

    return build_broker(Settings.from_env())


def _actor() -> Principal:
    return Principal(f"cli:{getpass.getuser()}", admin=True)


def _fail_cleanly(fn: Callable) -> Callable:
    """Broker errors end the command with their message and exit status 1, not a traceback."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BrokerError as exc:
            click.echo(f"error: {exc.detail}", err=True)
            for error in exc.errors:
                click.echo(f"  {error.field}: {error.message}", err=True)
            sys.exit(1)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _parse_sets(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``a.b=value`` pairs into a nested dict; values are read as YAML (numbers, lists, true/false)."""
    result: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"{pair!r}: use field=value", param_hint="--set")
        path, raw = pair.split("=", 1)
        target = result
        *parents, leaf = path.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = yaml.safe_load(raw) if raw else None
    return result


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[str(_dig(row, c) if _dig(row, c) is not None else "") for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _dig(row: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        row = row.get(part) if isinstance(row, dict) else None
    return row


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
            command.callback = _fail_cleanly(command.callback)
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
@_fail_cleanly
def serve(host: str | None, port: int | None, worker: bool | None, workers: int | None) -> None:
    """Serve the API and portal."""
    from panbroker.server import run

    os.umask(0o077)  # whatever the broker writes (database, index, keys) is its own
    settings = Settings.from_env()
    run(settings, host or settings.host, port or settings.port,
        settings.embedded_worker if worker is None else worker, workers=workers)


@main.command()
@_fail_cleanly
def worker() -> None:
    """Run the scheduled jobs (health checks, harvests, launches, EOSC sync) in the foreground."""
    from broker import datalock, index_roles, logs
    from panbroker.worker import run_forever

    os.umask(0o077)
    settings = Settings.from_env()
    logs.configure(settings.log_level, settings.log_format)
    datalock.hold(settings.data_dir, "panbroker worker")
    index_roles.claim(settings, "panbroker worker")
    run_forever(_broker())


@main.command()
@_fail_cleanly
def migrate() -> None:
    """Bring the database schema to the newest revision and exit (replicas started with
    PANBROKER_MIGRATE_ON_START=false wait for this). Safe to run beside running processes."""
    from registry.store import make_engine, migrate as upgrade, schema_is_current

    engine = make_engine(Settings.from_env().effective_database_url)
    was_current = schema_is_current(engine)
    upgrade(engine)
    click.echo("the schema was already current" if was_current else "the schema is migrated to its newest revision")


@main.command()
@_fail_cleanly
def check() -> None:
    """Run health checks of every endpoint once and print a table."""
    outcomes = _broker().health.check_all()
    _table([o.__dict__ for o in outcomes], ["target_type", "id", "facility_id", "kind", "status", "latency_ms", "error"])


@main.group()
def registry() -> None:
    """Import and export the whole registry (seed-file format)."""


@registry.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_fail_cleanly
def registry_import(file: Path) -> None:
    """Load FILE (YAML or JSON); idempotent, contacts no URL."""
    from broker.seeding import import_registry, read_file

    report = import_registry(_broker().registry, _actor(), read_file(file))
    for outcome in ("created", "updated", "unchanged"):
        counts = getattr(report, outcome)
        click.echo(f"{outcome}: " + (", ".join(f"{n} {k}" for k, n in counts.items()) or "nothing"))


@registry.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@_fail_cleanly
def registry_export(file: Path | None) -> None:
    """Write the registry to FILE (default: standard output), without secrets."""
    from broker.seeding import dump_yaml, export_registry

    text = dump_yaml(export_registry(_broker().registry))
    if file:
        file.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@main.group()
def harvest() -> None:
    """Harvest search endpoints into the index."""


@harvest.command("run")
@click.argument("endpoints", nargs=-1)
@click.option("--confirm-deletions", is_flag=True,
              help="Let the harvest delete more than PANBROKER_HARVEST_MAX_DELETE_SHARE of a source (after `suspect`).")
@click.option("--wait", "wait_seconds", type=float, default=600, show_default=True,
              help="Seconds to wait for a running broker's worker to finish the harvests it was asked for.")
@_fail_cleanly
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
    broker = _broker()
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
    _table(jobs, ["id", "endpoint_id", "state", "gathered", "imported", "deleted", "failed", "error"])
    if any(j["state"] in ("queued", "running") for j in jobs):
        raise ConfigurationError(f"the worker has not finished within {wait_seconds:g} s: follow the jobs with "
                                 "`panbroker harvest jobs` or GET /api/v1/harvest/jobs")
    broker.index.close()


@harvest.command("status")
@click.option("--endpoint", help="Only this search endpoint.")
@click.option("--limit", type=int, default=20)
@_fail_cleanly
def harvest_status(endpoint: str | None, limit: int) -> None:
    """Recent harvest jobs, newest first."""
    _table(_broker().harvest.jobs(endpoint, limit),
           ["id", "endpoint_id", "state", "started_at", "finished_at", "imported", "deleted", "failed", "error"])


def _crud_group(name: str, kind: Kind, columns: list[str], help_text: str) -> None:
    """list/show/add/update/delete commands for one kind of registry object."""

    @main.group(name=name, help=help_text)
    def group() -> None:
        pass

    filter_names = sorted(kind.filters)

    @group.command("list")
    @click.option("--filter", "filters", multiple=True, help=f"name=value; names: {', '.join(filter_names)}")
    @click.option("--limit", type=int, default=500)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    @_fail_cleanly
    def list_(filters: tuple[str, ...], limit: int, as_json: bool) -> None:
        page = _broker().registry.list(kind, {k: str(v) for k, v in _parse_sets(filters).items()}, limit)
        if as_json:
            click.echo(json.dumps(page.items, indent=2))
        else:
            _table(page.items, columns)

    @group.command("show")
    @click.argument("key")
    @_fail_cleanly
    def show(key: str) -> None:
        click.echo(json.dumps(_broker().registry.get(kind, key), indent=2))

    @group.command("add")
    @click.option("--json", "body", help="The whole object as JSON.")
    @click.option("--set", "sets", multiple=True, help="field=value (dotted for nested, e.g. capabilities.gpu=true).")
    @_fail_cleanly
    def add(body: str | None, sets: tuple[str, ...]) -> None:
        payload = {**(json.loads(body) if body else {}), **_parse_sets(sets)}
        item = _broker().registry.create(_actor(), kind, payload)
        click.echo(f"created {kind.name} {item[kind.key]} (version {item['version']})")

    @group.command("update")
    @click.argument("key")
    @click.option("--json", "body", help="Fields to change, as JSON.")
    @click.option("--set", "sets", multiple=True, help="field=value (dotted for nested).")
    @click.option("--version", "version", type=int, help="Refuse unless the stored version is this one.")
    @_fail_cleanly
    def update(key: str, body: str | None, sets: tuple[str, ...], version: int | None) -> None:
        broker = _broker()
        payload = {**(json.loads(body) if body else {}), **_parse_sets(sets)}
        expected = version if version is not None else broker.registry.get(kind, key)["version"]
        item = broker.registry.update(_actor(), kind, key, payload, Precondition(expected, True), partial=True)
        click.echo(f"updated {kind.name} {key} (version {item['version']})")

    @group.command("delete")
    @click.argument("key")
    @click.option("--version", "version", type=int, help="Refuse unless the stored version is this one.")
    @_fail_cleanly
    def delete(key: str, version: int | None) -> None:
        broker = _broker()
        expected = version if version is not None else broker.registry.get(kind, key)["version"]
        broker.registry.delete(_actor(), kind, key, Precondition(expected, True))
        click.echo(f"deleted {kind.name} {key}")


_crud_group("facility", KINDS.facility, ["id", "name", "country", "ror_id", "accepted_issuers"],
            "Facilities of the federation.")
_crud_group("service", KINDS.service, ["id", "facility_id", "kind", "lifecycle", "base_url", "health.status",
                                       "eosc.status"], "Compute services (VISA, JupyterHub, BinderHub, desktops).")
_crud_group("search-endpoint", KINDS.search_endpoint, ["id", "facility_id", "kind", "base_url", "health.status"],
            "Dataset search endpoints (PaNOSC Search API, SciCat, OAI-PMH).")
_crud_group("eosc", KINDS.eosc_entry, ["service_id", "status", "resource_id", "marketplace_url"],
            "EOSC catalogue entries of services.")
eosc_group = main.commands["eosc"]


@eosc_group.command("sync")
@click.argument("services", nargs=-1)
@_fail_cleanly
def eosc_sync(services: tuple[str, ...]) -> None:
    """Refresh SERVICES' entries (default: every entry with a resource id) from the catalogue."""
    broker = _broker()
    events = [broker.eosc.sync(s) for s in services] if services else broker.eosc.sync_all()
    _table([{**e, "drift": ", ".join(d["field"] for d in e["drift"])} for e in events],
           ["service_id", "outcome", "onboarding_status", "drift", "error"])


@eosc_group.command("status")
@_fail_cleanly
def eosc_status() -> None:
    """Every entry's registration state, onboarding state, drift and last sync."""
    items = _broker().registry.list(KINDS.eosc_entry, limit=500).items
    _table([{**i, "drift": ", ".join(d["field"] for d in i["catalogue"]["drift"])} for i in items],
           ["service_id", "status", "catalogue.onboarding_status", "last_synced_at", "drift",
            "catalogue.last_sync_error"])


@eosc_group.command("export")
@click.argument("service", required=False)
@click.option("--facility", help="Every service of this facility.")
@_fail_cleanly
def eosc_export(service: str | None, facility: str | None) -> None:
    """Print EOSC service profiles (JSON) and what each still misses."""
    broker = _broker()
    if bool(service) == bool(facility):
        raise click.UsageError("name a SERVICE or --facility")
    pairs = [(service, broker.eosc.profile(service))] if service else broker.eosc.profiles(facility)
    click.echo(json.dumps([{"service_id": sid, "valid": p.valid, "missing": p.missing, "invalid": p.invalid,
                            "profile": p.profile} for sid, p in pairs], indent=2))


@eosc_group.command("completeness")
@click.option("--facility", help="Only this facility's services.")
@_fail_cleanly
def eosc_completeness(facility: str | None) -> None:
    """Which services' profiles the catalogue would accept, and what each still lacks (with the rule)."""
    report = _broker().eosc.completeness(facility)
    click.echo(f"catalogue version {report['catalogue_version']}: {report['complete']} of {report['total']} "
               "profiles complete")
    _table([{**i, "complete": "yes" if i["complete"] else "no", "missing": ", ".join(i["missing"]),
             "invalid": "; ".join(i["invalid"])} for i in report["items"]],
           ["service_id", "complete", "missing", "invalid"])


@eosc_group.command("push")
@click.argument("service")
@click.option("--dry-run", is_flag=True, help="Show the body and the catalogue validator's verdict; create nothing.")
@_fail_cleanly
def eosc_push(service: str, dry_run: bool) -> None:
    """Validate SERVICE's profile at the catalogue, then create or update it there."""
    click.echo(json.dumps(_broker().eosc.push(_actor(), service, dry_run=dry_run), indent=2, default=str))


@main.group()
def person() -> None:
    """People, their identities and roles."""


@person.command("add")
@click.option("--name", "display_name", required=True)
@click.option("--email")
@click.option("--identity", "identities", multiple=True, required=True, help="issuer:subject (repeatable).")
@_fail_cleanly
def person_add(display_name: str, email: str | None, identities: tuple[str, ...]) -> None:
    pairs = [i.split(":", 1) for i in identities]
    if any(len(p) != 2 for p in pairs):
        raise click.BadParameter("use issuer:subject", param_hint="--identity")
    created = _broker().people.create(_actor(), {"display_name": display_name, "email": email,
                                                 "identities": [{"issuer": i, "subject": s} for i, s in pairs]})
    click.echo(f"created person {created['id']}")


@person.command("list")
@_fail_cleanly
def person_list() -> None:
    _table([{**p, "identities": ", ".join(f"{i['issuer']}:{i['subject']}" for i in p["identities"]),
             "roles": ", ".join(r["role"] + (f"@{r['facility_id']}" if r["facility_id"] else "") for r in p["roles"])}
            for p in _broker().people.list()], ["id", "display_name", "identities", "roles"])


@person.command("grant")
@click.argument("person_id")
@click.argument("role", type=click.Choice(["admin", "operator"]))
@click.option("--facility", help="The facility an operator role is for.")
@_fail_cleanly
def person_grant(person_id: str, role: str, facility: str | None) -> None:
    _broker().people.grant(_actor(), person_id, {"role": role, "facility_id": facility})
    click.echo(f"granted {role}" + (f" of {facility}" if facility else "") + f" to {person_id}")


@person.command("revoke")
@click.argument("person_id")
@click.argument("role", type=click.Choice(["admin", "operator"]))
@click.option("--facility")
@_fail_cleanly
def person_revoke(person_id: str, role: str, facility: str | None) -> None:
    _broker().people.revoke_role(_actor(), person_id, role, facility)
    click.echo(f"revoked {role} from {person_id}")


@person.command("token")
@click.argument("person_id")
@click.option("--name", required=True)
@click.option("--days", type=int, default=90)
@_fail_cleanly
def person_token(person_id: str, name: str, days: int) -> None:
    """Issue a personal API token for PERSON_ID; the secret is printed once."""
    issued = _broker().people.issue_token(_actor(), person_id, {"name": name, "expires_in_days": days})
    click.echo(issued["token"])


if __name__ == "__main__":  # pragma: no cover
    main()
