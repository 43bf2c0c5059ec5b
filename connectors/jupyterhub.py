"""JupyterHub (REST API under ``/hub/api``): health, and launching a named server for a dataset.

The broker is a JupyterHub service whose token has the ``admin:users`` and ``servers`` scopes. A
start is never posted twice blindly: after an error, the server's state is read and followed.
"""
from __future__ import annotations

import time
from typing import Any, Callable
from urllib.parse import quote, urlencode

from marshmallow import fields, validate

from connectors.base import ConfigSchema, JsonProbe, LaunchProgress, LaunchTarget, ServiceConnector, url_field
from connectors.errors import UpstreamBadResponse, UpstreamError
from connectors.http import HttpClient, json_body


class JupyterHubConfig(ConfigSchema):
    health_url = url_field()
    spawner = fields.String(validate=validate.Length(max=100))
    username_claim = fields.String(validate=validate.Length(min=1, max=100))
    named_servers = fields.Boolean()
    start_timeout_seconds = fields.Integer(validate=validate.Range(min=10, max=7200))
    max_concurrent_spawns = fields.Integer(validate=validate.Range(min=1, max=200))
    # calling the service as the user: their token from this issuer, exchanged for this audience if set
    user_token_issuer = fields.String(validate=validate.Length(min=1, max=100))
    token_exchange_audience = fields.String(validate=validate.Length(min=1, max=200))


class JupyterHubConnector(JsonProbe, ServiceConnector):
    kind = "jupyterhub"
    config_schema = JupyterHubConfig
    health_path = "/hub/api/"  # unauthenticated; answers {"version": ...}
    expected_key = "version"

    def deep_link(self, target: LaunchTarget) -> str:
        """The hub's spawn page with the dataset and resources as form values."""
        return f"{target.base_url.rstrip('/')}/hub/spawn?{urlencode(_flat(target.user_options))}"

    # -- API mode ---------------------------------------------------------------------------------
    def _api(self, target: LaunchTarget, path: str) -> str:
        return f"{target.base_url.rstrip('/')}/hub/api{path}"

    def _headers(self, target: LaunchTarget) -> dict[str, str]:
        if not target.credential:
            raise UpstreamBadResponse("no API token is registered for this JupyterHub (the service's credential)")
        return {"Authorization": f"token {target.credential}", "Accept": "application/json"}

    def _server_path(self, target: LaunchTarget) -> str:
        return f"/users/{quote(target.username or '', safe='')}/servers/{quote(target.server_name, safe='')}"

    def launch(self, client: HttpClient, target: LaunchTarget) -> LaunchProgress:
        headers = self._headers(target)
        user_url = self._api(target, f"/users/{quote(target.username or '', safe='')}")
        if client.get(user_url, headers=headers, timeout=10).status_code == 404:
            created = client.request("POST", user_url, headers=headers, timeout=10)
            if created.status_code not in (201, 409):
                raise UpstreamBadResponse(f"the hub refused to create user {target.username}: HTTP {created.status_code}")
        response = client.request("POST", self._api(target, self._server_path(target)), headers=headers,
                                  json=target.user_options, timeout=30)
        if response.status_code == 201:
            return self.poll(client, target)
        if response.status_code == 202:
            return LaunchProgress("starting", "the hub is starting the server")
        if response.status_code == 429:
            retry = response.headers.get("Retry-After", "")
            return LaunchProgress("submitted", "the hub is busy; trying again",
                                  retry_after=float(retry) if retry.replace(".", "", 1).isdigit() else 10.0)
        if response.status_code == 400 or response.status_code >= 500:
            # already running/pending, or an error while the spawn may go on (slow_spawn_timeout): read state
            return self.poll(client, target, after_error=_message(response))
        raise UpstreamBadResponse(f"the hub refused the start: HTTP {response.status_code}: {_message(response)}")

    def poll(self, client: HttpClient, target: LaunchTarget, after_error: str | None = None) -> LaunchProgress:
        response = client.get(self._api(target, f"/users/{quote(target.username or '', safe='')}"),
                              headers=self._headers(target), timeout=10)
        if response.status_code == 404:
            return LaunchProgress("failed", "the user is gone from the hub")
        body = json_body(response)
        server = (body.get("servers") or {}).get(target.server_name) if isinstance(body, dict) else None
        if server is None:
            # a spawn that failed leaves no server, but the progress stream still tells why
            told = self.follow(client, target, lambda _message: None, time.monotonic() + 5)
            if told is not None and told.state == "failed":
                return told
            reason = f"the hub has no such server ({after_error})" if after_error else "the server stopped"
            return LaunchProgress("failed", reason)
        if server.get("ready"):
            url = server.get("full_url") or f"{target.base_url.rstrip('/')}{server.get('url', '')}"
            return LaunchProgress("ready", "the server is ready", url=url)
        pending = server.get("pending")
        if pending == "stop":
            return LaunchProgress("failed", "the hub is stopping the server")
        return LaunchProgress("starting", f"the hub reports: {pending or 'starting'}")

    def follow(self, client: HttpClient, target: LaunchTarget, report: Callable[[str], None],
               until: float) -> LaunchProgress | None:
        """Follow the spawn's progress stream to ready or failed, reporting each message; ``None`` when
        the hub offers no stream for it (the caller falls back to polling)."""
        url = self._api(target, self._server_path(target) + "/progress")
        try:
            for event in client.events(url, headers=self._headers(target), until=until, idle_seconds=20):
                message = str(event.get("message") or "")[:300]
                if event.get("ready"):
                    path = str(event.get("url") or "")
                    return LaunchProgress("ready", message or "the server is ready",
                                          url=path if path.startswith("http") else f"{target.base_url.rstrip('/')}{path}")
                if event.get("failed"):
                    return LaunchProgress("failed", f"the hub reports: {message or 'spawn failed'}")
                if message:
                    progress = event.get("progress")
                    report(f"{message} ({progress}%)" if isinstance(progress, (int, float)) else message)
        except UpstreamError:
            return None  # no stream (older hub, 400 "not starting", a proxy that buffers): poll instead
        return None

    def stop(self, client: HttpClient, target: LaunchTarget) -> LaunchProgress:
        response = client.request("DELETE", self._api(target, self._server_path(target)),
                                  headers=self._headers(target), json={"remove": True}, timeout=30)
        if response.status_code in (202, 204, 404):
            return LaunchProgress("stopped", "the server was stopped")
        raise UpstreamBadResponse(f"the hub refused to stop the server: HTTP {response.status_code}")


def _message(response: Any) -> str:
    try:
        body = response.json()
        return str(body.get("message") or body)[:200]
    except ValueError:
        return f"HTTP {response.status_code}"


def _flat(options: dict[str, Any]) -> dict[str, str]:
    return {k: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) for k, v in options.items()
            if v not in (None, "", [], ())}


__all__ = ["JupyterHubConnector", "UpstreamError"]
