"""BinderHub: health, its build-and-launch page (deep link) and, in API mode, its build-and-launch
event stream (``GET /build/<provider>/<spec>``) followed to a ready server URL and token."""
from __future__ import annotations

from typing import Any, Callable
from urllib.parse import quote, urlencode

import requests
from marshmallow import fields, validate

from connectors.base import (
    ConfigSchema,
    LaunchProgress,
    LaunchTarget,
    check_path_template,
    data_path,
    url_field,
)
from connectors.capabilities import SessionLauncher
from connectors.errors import UpstreamBadResponse, UpstreamError
from connectors.http import HttpClient, json_body

# phases BinderHub sends before ready; "building" and "pushing" repeat per log line or layer
PHASE_WORDS = {"waiting": "waiting for a build slot", "fetching": "fetching the repository",
               "building": "building the image", "pushing": "pushing the image", "built": "the image is built",
               "launching": "launching the server"}


class BinderHubConfig(ConfigSchema):
    health_url = url_field()
    default_repository = fields.String(validate=validate.Length(max=500), metadata={
        "description": "the repository launches build, as BinderHub names it, e.g. gh/org/repo/HEAD"})
    data_path_template = fields.String(validate=[validate.Length(max=500), check_path_template], metadata={
        "description": "where a dataset's files are, e.g. /data/{proposal}: the session opens there"})
    start_timeout_seconds = fields.Integer(validate=validate.Range(min=10, max=7200))
    max_concurrent_spawns = fields.Integer(validate=validate.Range(min=1, max=200))


class BinderHubConnector(SessionLauncher):
    kind = "binderhub"
    title = "Binder (notebooks from a repository)"
    preference = 30

    def describe(self, where: str, home: str, away: bool) -> str:
        return (f"Builds a notebook environment at {where}; the public data is fetched from {home} into it "
                "while the session runs.")

    def refusal(self, config: dict[str, Any], *, api_mode: bool, has_credential: bool,
                issuers: set[str]) -> str | None:
        if api_mode and not config.get("default_repository"):
            return "no repository to launch: set connector_config.default_repository"
        return None
    config_schema = BinderHubConfig
    health_path = "/health"

    def deep_link(self, target: LaunchTarget) -> str | None:
        """BinderHub's build-and-launch page of the configured repository (e.g. gh/org/repo/HEAD)."""
        repository = target.config.get("default_repository")
        if not repository:
            return None
        folder = self._folder(target)
        return f"{target.base_url.rstrip('/')}/v2/{repository}" + (f"?{urlencode({'labpath': folder})}" if folder else "")

    @staticmethod
    def _folder(target: LaunchTarget) -> str | None:
        """The dataset's folder inside the repository (BinderHub's ``labpath``), from the template."""
        folder, _ = data_path(target.config.get("data_path_template"), target.facts)
        return folder.lstrip("/") or None if folder else None

    # -- API mode: the event stream both builds and launches; it must stay open until ready ----------
    def start(self, client: HttpClient, target: LaunchTarget) -> LaunchProgress:
        if not target.config.get("default_repository"):
            raise UpstreamBadResponse("no repository is configured for this BinderHub (default_repository)")
        return LaunchProgress("starting", f"asking the Binder to build and launch {target.config['default_repository']}")

    def poll(self, client: HttpClient, target: LaunchTarget) -> LaunchProgress:
        return LaunchProgress("starting", "waiting for the build-and-launch stream")

    def follow(self, client: HttpClient, target: LaunchTarget, report: Callable[[str], None],
               until: float) -> LaunchProgress | None:
        repository = "/".join(quote(part, safe="%") for part in target.config["default_repository"].split("/"))
        url = f"{target.base_url.rstrip('/')}/build/{repository}"
        last_phase = None
        try:
            for event in client.events(url, until=until, idle_seconds=45):  # BinderHub beats every 30 s
                phase, message = str(event.get("phase", "")), str(event.get("message") or "").strip()[:300]
                if phase == "ready":
                    if not event.get("url"):
                        return LaunchProgress("failed", "the Binder said ready but sent no URL")
                    folder = self._folder(target)
                    url = str(event["url"]).rstrip("/") + (f"/lab/tree/{quote(folder)}" if folder else "")
                    return LaunchProgress("ready", "the Binder is ready", url=url,
                                          secret=str(event.get("token") or "") or None)
                if phase == "failed":
                    return LaunchProgress("failed", f"the Binder reports: {message or 'the build failed'}")
                if phase != last_phase and phase in PHASE_WORDS:
                    report(PHASE_WORDS[phase] + (f": {message}" if phase in ("waiting", "launching") and message else ""))
                    last_phase = phase
        except UpstreamError as exc:
            return LaunchProgress("failed", f"the Binder's build stream broke off: {exc.detail}")
        return LaunchProgress("starting", "the Binder is still working")

    def stop(self, client: HttpClient, target: LaunchTarget) -> LaunchProgress:
        # a Binder session belongs to a temporary user that the Binder's own culler removes when idle
        return LaunchProgress("stopped", "left to the Binder's idle culler (Binder sessions are temporary)")

    def judge(self, response: requests.Response) -> str | None:
        # BinderHub answers 200 {"ok": true, "checks": [...]} or 503 with the failing checks
        body = json_body(response) if response.content else {}
        if response.status_code == 200 and isinstance(body, dict) and body.get("ok") is True:
            return None
        failing = [c.get("service", "?") for c in body.get("checks", []) if not c.get("ok")] if isinstance(body, dict) else []
        return f"HTTP {response.status_code}" + (f"; failing: {', '.join(failing)}" if failing else "")
