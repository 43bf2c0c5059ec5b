"""Open OnDemand: an interactive app ("batch connect") of the facility's OnDemand portal.

Deep-link mode sends the browser to the app's form (``/pun/sys/dashboard/batch_connect/<app>/session_contexts/new``).
API mode acts on the person's behalf with their own token (OnDemand behind mod_auth_openidc accepting bearer
tokens): it submits the app's form (``session_contexts.json``: 204 when the batch job is submitted, 422 with the
form's errors), follows the session card on "My Interactive Sessions" (Queued/Held/Suspended, Starting, Running,
Completed) and ends the session by deleting it, which cancels its job.

OnDemand shows no name of the caller's choosing on a card, so the app carries the broker's session name in a form
attribute (``name_attribute``) that its card shows (a custom info view); the dataset's folder goes into
``path_attribute`` when the app has one.
"""
from __future__ import annotations

import math
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

from marshmallow import fields, validate

from connectors.base import ConfigSchema, LaunchProgress, LaunchTarget, check_path_template, data_path, url_field
from connectors.capabilities import SessionLauncher, user_token_refusal
from connectors.errors import UpstreamBadResponse
from connectors.http import HttpClient, json_body

DASHBOARD = "/pun/sys/dashboard/batch_connect"
ATTRIBUTE = validate.Regexp(r"^[a-z][a-z0-9_]{0,63}$", error="a form attribute of the app, such as working_dir")
#: the words a session card says, and where a launch stands for each
STATES = {"Queued": ("waiting", "the batch job is queued at the facility"),
          "Held": ("waiting", "the batch job is held in the facility's queue"),
          "Suspended": ("waiting", "the batch job is suspended by the facility's scheduler"),
          "Starting": ("starting", "the batch job runs; the app is starting"),
          "Running": ("ready", "the interactive app is running"),
          "Completed": ("failed", "the session has ended (its batch job completed)"),
          "Undetermined": ("starting", "OnDemand cannot tell the batch job's state yet")}
STATE_WORD = re.compile(r"\b(" + "|".join(STATES) + r")\b")


class OodConfig(ConfigSchema):
    health_url = url_field()
    app = fields.String(required=True, validate=validate.Regexp(
        r"^(sys|dev|usr/[A-Za-z0-9_.-]+)/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?$",
        error="the app's token as in its form's URL, such as sys/jupyter or sys/bc_desktop/owens"))
    name_attribute = fields.String(validate=ATTRIBUTE)
    path_attribute = fields.String(validate=ATTRIBUTE)
    cores_attribute = fields.String(validate=ATTRIBUTE)
    data_path_template = fields.String(validate=[validate.Length(max=500), check_path_template])
    user_token_issuer = fields.String(validate=validate.Length(min=1, max=100))
    start_timeout_seconds = fields.Integer(validate=validate.Range(min=10, max=7200))
    max_concurrent_spawns = fields.Integer(validate=validate.Range(min=1, max=200))


class OodConnector(SessionLauncher):
    """Up when the portal answers below 400 (a redirect to its sign-in is up)."""

    kind = "ood"
    title = "Open OnDemand (interactive apps)"
    config_schema = OodConfig
    preference = 25
    eosc_categories = ("analysis", "compute")

    opens = ("Starts an interactive app at {where} as a batch job on its cluster, with the data on its file "
             "system; the job may wait in the facility's queue first.")

    def refusal(self, config: dict[str, Any], *, api_mode: bool, has_credential: bool,
                issuers: set[str]) -> str | None:
        if not api_mode:
            return None
        refused = user_token_refusal(config, issuers, "Open OnDemand")
        if refused:
            return refused
        if not config.get("name_attribute"):
            return "API mode needs connector_config.name_attribute (the app's form field its card shows)"
        return None

    def deep_link(self, target: LaunchTarget) -> str:
        return f"{target.base_url.rstrip('/')}{DASHBOARD}/{target.config['app']}/session_contexts/new"

    def user_options(self, target: LaunchTarget) -> dict[str, Any]:
        """The app's form, as ``batch_connect_session_context[...]`` fields."""
        config, resources = target.config, target.resources
        form = {"bc_num_hours": str(max(1, math.ceil(float(resources.get("runtime_hours") or 1))))}
        if resources.get("partition"):
            form["bc_queue"] = str(resources["partition"])
        if config.get("cores_attribute") and resources.get("cpus"):
            form[config["cores_attribute"]] = str(resources["cpus"])
        if config.get("name_attribute"):
            form[config["name_attribute"]] = target.server_name
        folder, _ = data_path(config.get("data_path_template"), target.facts)
        if config.get("path_attribute") and folder:
            form[config["path_attribute"]] = folder
        return {f"batch_connect_session_context[{name}]": value for name, value in form.items()}

    def start(self, client: HttpClient, target: LaunchTarget) -> LaunchProgress:
        if self._card(client, target) is not None:  # a retry: the session exists, follow it
            return self.poll(client, target)
        url = f"{target.base_url.rstrip('/')}{DASHBOARD}/{target.config['app']}/session_contexts.json"
        response = client.request("POST", url, form=target.user_options, timeout=30, headers=self._headers(target))
        if response.status_code == 422:
            errors = json_body(response)
            said = "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in errors.items()) if isinstance(errors, dict) else ""
            return LaunchProgress("failed", f"Open OnDemand refused the form: {said or 'no reason given'}")
        self._check(response, "submitting the app's form")
        return LaunchProgress("starting", "Open OnDemand submitted the batch job")

    def poll(self, client: HttpClient, target: LaunchTarget) -> LaunchProgress:
        card = self._card(client, target)
        if card is None:
            return LaunchProgress("failed", "Open OnDemand lists no session of this launch (deleted, or never created)")
        found = STATE_WORD.search(card.text)
        state, message = STATES[found.group(1)] if found else STATES["Undetermined"]
        if state == "ready":
            link = next((href for href in card.links if href.startswith(("/rnode/", "/node/"))), None)
            if link is None:
                return LaunchProgress("starting", "the app runs; its connection details are not shown yet")
            return LaunchProgress("ready", message, url=target.base_url.rstrip("/") + link)
        return LaunchProgress(state, message)

    def stop(self, client: HttpClient, target: LaunchTarget) -> LaunchProgress:
        card = self._card(client, target)
        if card is not None:
            url = f"{target.base_url.rstrip('/')}{DASHBOARD}/sessions/{quote(card.id, safe='')}.json"
            response = client.request("DELETE", url, timeout=30, headers=self._headers(target))
            if response.status_code != 404:
                self._check(response, "deleting the session")
        return LaunchProgress("stopped", "the Open OnDemand session was deleted (its batch job cancelled)")

    # -- the sessions page ----------------------------------------------------------------------------
    @staticmethod
    def _headers(target: LaunchTarget) -> dict[str, str]:
        if not target.user_token:
            raise UpstreamBadResponse("no token of the user to call Open OnDemand with (sign in again)")
        return {"Authorization": f"Bearer {target.user_token}", "Accept": "text/html, application/json"}

    @staticmethod
    def _check(response: Any, doing: str) -> None:
        if response.status_code in (401, 403):
            raise UpstreamBadResponse(f"Open OnDemand does not accept the user's token ({doing})")
        if response.status_code >= 400:
            raise UpstreamBadResponse(f"Open OnDemand answered HTTP {response.status_code} {doing}")

    def _card(self, client: HttpClient, target: LaunchTarget) -> _Card | None:
        response = client.get(f"{target.base_url.rstrip('/')}{DASHBOARD}/sessions", timeout=20,
                              headers=self._headers(target))
        self._check(response, "listing the sessions")
        reader = _Cards()
        reader.feed(response.text)
        name = re.compile(rf"(?<![\w-]){re.escape(target.server_name)}(?![\w-])")
        return next((c for c in reader.cards if name.search(c.text)), None)


class _Card:
    def __init__(self, session_id: str):
        self.id, self.text, self.links = session_id, "", []


class _Cards(HTMLParser):
    """The session cards of "My Interactive Sessions": each card's id, its text and its links."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[_Card] = []
        self._depth = 0  # open divs inside the current card; 0: outside any card

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "div" and self._depth == 0 and "session-panel" in (attributes.get("class") or "").split() \
                and attributes.get("data-id"):
            self.cards.append(_Card(attributes["data-id"]))
            self._depth = 1
            return
        if self._depth == 0:
            return
        if tag == "div":
            self._depth += 1
        link = attributes.get("href") if tag == "a" else attributes.get("action") if tag == "form" else None
        if link:
            self.cards[-1].links.append(link)

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._depth:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.cards[-1].text += data + " "
