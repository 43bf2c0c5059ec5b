"""The registry commands of the ``panbroker`` CLI: import and export of the whole registry, list/show/add/
update/delete of each kind of registry object, and the EOSC catalogue entries' sync, export and push.

They act on the configured database directly, as the local administrator.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from broker.registry_kinds import KINDS, Kind
from broker.registry_service import Precondition
from panbroker.cli_support import broker_from_env, cli_actor, fail_cleanly, parse_sets, table


@click.group()
def registry() -> None:
    """Import and export the whole registry (seed-file format)."""


@registry.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@fail_cleanly
def registry_import(file: Path) -> None:
    """Load FILE (YAML or JSON); idempotent, contacts no URL."""
    from broker.seeding import import_registry, read_file

    report = import_registry(broker_from_env().registry, cli_actor(), read_file(file))
    for outcome in ("created", "updated", "unchanged"):
        counts = getattr(report, outcome)
        click.echo(f"{outcome}: " + (", ".join(f"{n} {k}" for k, n in counts.items()) or "nothing"))


@registry.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@fail_cleanly
def registry_export(file: Path | None) -> None:
    """Write the registry to FILE (default: standard output), without secrets."""
    from broker.seeding import dump_yaml, export_registry

    text = dump_yaml(export_registry(broker_from_env().registry))
    if file:
        file.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


def _crud_group(name: str, kind: Kind, columns: list[str], help_text: str) -> click.Group:
    """list/show/add/update/delete commands for one kind of registry object."""

    @click.group(name=name, help=help_text)
    def group() -> None:
        pass

    filter_names = sorted(kind.filters)

    @group.command("list")
    @click.option("--filter", "filters", multiple=True, help=f"name=value; names: {', '.join(filter_names)}")
    @click.option("--limit", type=int, default=500)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    @fail_cleanly
    def list_(filters: tuple[str, ...], limit: int, as_json: bool) -> None:
        page = broker_from_env().registry.list(kind, {k: str(v) for k, v in parse_sets(filters).items()}, limit)
        if as_json:
            click.echo(json.dumps(page.items, indent=2))
        else:
            table(page.items, columns)

    @group.command("show")
    @click.argument("key")
    @fail_cleanly
    def show(key: str) -> None:
        click.echo(json.dumps(broker_from_env().registry.get(kind, key), indent=2))

    @group.command("add")
    @click.option("--json", "body", help="The whole object as JSON.")
    @click.option("--set", "sets", multiple=True, help="field=value (dotted for nested, e.g. capabilities.gpu=true).")
    @fail_cleanly
    def add(body: str | None, sets: tuple[str, ...]) -> None:
        payload = {**(json.loads(body) if body else {}), **parse_sets(sets)}
        item = broker_from_env().registry.create(cli_actor(), kind, payload)
        click.echo(f"created {kind.name} {item[kind.key]} (version {item['version']})")

    @group.command("update")
    @click.argument("key")
    @click.option("--json", "body", help="Fields to change, as JSON.")
    @click.option("--set", "sets", multiple=True, help="field=value (dotted for nested).")
    @click.option("--version", "version", type=int, help="Refuse unless the stored version is this one.")
    @fail_cleanly
    def update(key: str, body: str | None, sets: tuple[str, ...], version: int | None) -> None:
        broker = broker_from_env()
        payload = {**(json.loads(body) if body else {}), **parse_sets(sets)}
        expected = version if version is not None else broker.registry.get(kind, key)["version"]
        item = broker.registry.update(cli_actor(), kind, key, payload, Precondition(expected, True), partial=True)
        click.echo(f"updated {kind.name} {key} (version {item['version']})")

    @group.command("delete")
    @click.argument("key")
    @click.option("--version", "version", type=int, help="Refuse unless the stored version is this one.")
    @fail_cleanly
    def delete(key: str, version: int | None) -> None:
        broker = broker_from_env()
        expected = version if version is not None else broker.registry.get(kind, key)["version"]
        broker.registry.delete(cli_actor(), kind, key, Precondition(expected, True))
        click.echo(f"deleted {kind.name} {key}")

    return group


eosc_group = _crud_group("eosc", KINDS.eosc_entry, ["service_id", "status", "resource_id", "marketplace_url"],
                         "EOSC catalogue entries of services.")


@eosc_group.command("sync")
@click.argument("services", nargs=-1)
@fail_cleanly
def eosc_sync(services: tuple[str, ...]) -> None:
    """Refresh SERVICES' entries (default: every entry with a resource id) from the catalogue."""
    broker = broker_from_env()
    events = [broker.eosc.sync(s) for s in services] if services else broker.eosc.sync_all()
    table([{**e, "drift": ", ".join(d["field"] for d in e["drift"])} for e in events],
          ["service_id", "outcome", "onboarding_status", "drift", "error"])


@eosc_group.command("status")
@fail_cleanly
def eosc_status() -> None:
    """Every entry's registration state, onboarding state, drift and last sync."""
    items = broker_from_env().registry.list(KINDS.eosc_entry, limit=500).items
    table([{**i, "drift": ", ".join(d["field"] for d in i["catalogue"]["drift"])} for i in items],
          ["service_id", "status", "catalogue.onboarding_status", "last_synced_at", "drift",
           "catalogue.last_sync_error"])


@eosc_group.command("export")
@click.argument("service", required=False)
@click.option("--facility", help="Every service of this facility.")
@fail_cleanly
def eosc_export(service: str | None, facility: str | None) -> None:
    """Print EOSC service profiles (JSON) and what each still misses."""
    broker = broker_from_env()
    if bool(service) == bool(facility):
        raise click.UsageError("name a SERVICE or --facility")
    pairs = [(service, broker.eosc.profile(service))] if service else broker.eosc.profiles(facility)
    click.echo(json.dumps([{"service_id": sid, "valid": p.valid, "missing": p.missing, "invalid": p.invalid,
                            "profile": p.profile} for sid, p in pairs], indent=2))


@eosc_group.command("completeness")
@click.option("--facility", help="Only this facility's services.")
@fail_cleanly
def eosc_completeness(facility: str | None) -> None:
    """Which services' profiles the catalogue would accept, and what each still lacks (with the rule)."""
    report = broker_from_env().eosc.completeness(facility)
    click.echo(f"catalogue version {report['catalogue_version']}: {report['complete']} of {report['total']} "
               "profiles complete")
    table([{**i, "complete": "yes" if i["complete"] else "no", "missing": ", ".join(i["missing"]),
            "invalid": "; ".join(i["invalid"])} for i in report["items"]],
          ["service_id", "complete", "missing", "invalid"])


@eosc_group.command("push")
@click.argument("service")
@click.option("--dry-run", is_flag=True, help="Show the body and the catalogue validator's verdict; create nothing.")
@fail_cleanly
def eosc_push(service: str, dry_run: bool) -> None:
    """Validate SERVICE's profile at the catalogue, then create or update it there."""
    click.echo(json.dumps(broker_from_env().eosc.push(cli_actor(), service, dry_run=dry_run), indent=2, default=str))


#: the registry's commands, as the CLI adds them
COMMANDS = [
    registry,
    _crud_group("facility", KINDS.facility, ["id", "name", "country", "ror_id", "accepted_issuers"],
                "Facilities of the federation."),
    _crud_group("service", KINDS.service, ["id", "facility_id", "kind", "lifecycle", "base_url", "health.status",
                                           "eosc.status"], "Compute services (VISA, JupyterHub, BinderHub, desktops)."),
    _crud_group("search-endpoint", KINDS.search_endpoint, ["id", "facility_id", "kind", "base_url", "health.status"],
                "Dataset search endpoints (PaNOSC Search API, SciCat, OAI-PMH)."),
    eosc_group,
]
