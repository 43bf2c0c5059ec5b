"""Handlers of the people API: who am I, people, identities, roles, personal API tokens."""
from __future__ import annotations

from typing import Any

from broker.api.context import broker, principal
from broker.api.registry import JSON
from panmodel.errors import Forbidden


def _person_id(token_info: dict | None) -> str:
    subject = principal(token_info).subject
    if not subject.startswith("person:"):
        raise Forbidden(f"{subject} is not a person; use a personal API token or sign in")
    return subject.removeprefix("person:")


def me(token_info: dict | None = None) -> tuple:
    return broker().people.me(principal(token_info)), 200, JSON


def my_tokens(token_info: dict | None = None) -> tuple:
    person_id = _person_id(token_info)
    return {"items": broker().people.tokens(principal(token_info), person_id)}, 200, JSON


def issue_my_token(body: dict[str, Any], token_info: dict | None = None) -> tuple:
    person_id = _person_id(token_info)
    return broker().people.issue_token(principal(token_info), person_id, body), 201, JSON


def revoke_my_token(token_id: str, token_info: dict | None = None) -> tuple:
    broker().people.revoke_token(principal(token_info), _person_id(token_info), token_id)
    return "", 204


def list_people(token_info: dict | None = None) -> tuple:
    principal(token_info).require_write(None)
    items = broker().people.list()
    return {"items": items, "total": len(items)}, 200, JSON


def create_person(body: dict[str, Any], token_info: dict | None = None) -> tuple:
    return broker().people.create(principal(token_info), body), 201, JSON


def get_person(person_id: str, token_info: dict | None = None) -> tuple:
    return broker().people.get_as(principal(token_info), person_id), 200, JSON


def link_identity(person_id: str, body: dict[str, Any], token_info: dict | None = None) -> tuple:
    return broker().people.link(principal(token_info), person_id, body), 200, JSON


def unlink_identity(person_id: str, issuer: str, subject: str, token_info: dict | None = None) -> tuple:
    return broker().people.unlink(principal(token_info), person_id, issuer, subject), 200, JSON


def grant_role(person_id: str, body: dict[str, Any], token_info: dict | None = None) -> tuple:
    return broker().people.grant(principal(token_info), person_id, body), 200, JSON


def revoke_role(person_id: str, role: str, facility_id: str | None = None, token_info: dict | None = None) -> tuple:
    return broker().people.revoke_role(principal(token_info), person_id, role, facility_id), 200, JSON
