"""What every command of the ``panbroker`` CLI uses: the broker built from the environment, the acting
administrator, failures ended with their message, ``--set`` pairs and tables."""
from __future__ import annotations

import getpass
import sys
from typing import Any, Callable

import click
import yaml

from broker.authz import Principal
from broker.settings import Settings
from panmodel.errors import BrokerError


def broker_from_env():  # noqa: ANN202 - panbroker.app.Broker
    """The broker of the configured settings (registry commands act on its database directly)."""
    from panbroker.app import build_broker

    return build_broker(Settings.from_env())


def cli_actor() -> Principal:
    return Principal(f"cli:{getpass.getuser()}", admin=True)


def fail_cleanly(fn: Callable) -> Callable:
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


def parse_sets(pairs: tuple[str, ...]) -> dict[str, Any]:
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


def table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[str(dig(row, c) if dig(row, c) is not None else "") for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def dig(row: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        row = row.get(part) if isinstance(row, dict) else None
    return row
