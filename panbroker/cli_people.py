"""The ``panbroker person`` commands: people, their identities, roles and personal API tokens."""
from __future__ import annotations

import click

from panbroker.cli_support import broker_from_env, cli_actor, fail_cleanly, table


@click.group()
def person() -> None:
    """People, their identities and roles."""


@person.command("add")
@click.option("--name", "display_name", required=True)
@click.option("--email")
@click.option("--identity", "identities", multiple=True, required=True, help="issuer:subject (repeatable).")
@fail_cleanly
def person_add(display_name: str, email: str | None, identities: tuple[str, ...]) -> None:
    pairs = [i.split(":", 1) for i in identities]
    if any(len(p) != 2 for p in pairs):
        raise click.BadParameter("use issuer:subject", param_hint="--identity")
    created = broker_from_env().people.create(cli_actor(), {
        "display_name": display_name, "email": email, "identities": [{"issuer": i, "subject": s} for i, s in pairs]})
    click.echo(f"created person {created['id']}")


@person.command("list")
@fail_cleanly
def person_list() -> None:
    table([{**p, "identities": ", ".join(f"{i['issuer']}:{i['subject']}" for i in p["identities"]),
            "roles": ", ".join(r["role"] + (f"@{r['facility_id']}" if r["facility_id"] else "") for r in p["roles"])}
           for p in broker_from_env().people.list()], ["id", "display_name", "identities", "roles"])


@person.command("grant")
@click.argument("person_id")
@click.argument("role", type=click.Choice(["admin", "operator"]))
@click.option("--facility", help="The facility an operator role is for.")
@fail_cleanly
def person_grant(person_id: str, role: str, facility: str | None) -> None:
    broker_from_env().people.grant(cli_actor(), person_id, {"role": role, "facility_id": facility})
    click.echo(f"granted {role}" + (f" of {facility}" if facility else "") + f" to {person_id}")


@person.command("revoke")
@click.argument("person_id")
@click.argument("role", type=click.Choice(["admin", "operator"]))
@click.option("--facility")
@fail_cleanly
def person_revoke(person_id: str, role: str, facility: str | None) -> None:
    broker_from_env().people.revoke_role(cli_actor(), person_id, role, facility)
    click.echo(f"revoked {role} from {person_id}")


@person.command("token")
@click.argument("person_id")
@click.option("--name", required=True)
@click.option("--days", type=int, default=90)
@fail_cleanly
def person_token(person_id: str, name: str, days: int) -> None:
    """Issue a personal API token for PERSON_ID; the secret is printed once."""
    issued = broker_from_env().people.issue_token(cli_actor(), person_id, {"name": name, "expires_in_days": days})
    click.echo(issued["token"])
