"""JupyterHub (REST API under ``/hub/api``): health, and launching a named server for a dataset.

The broker is a JupyterHub service whose token has the ``admin:users`` and ``servers`` scopes. A
start is never posted twice blindly: after an error, the server's state is read and followed. The
request is sent in the vocabulary of the hub's spawner (``flavour``): the broker's own keys for hubs
whose profiles read them, or every key jupyterhub-moss reads for Slurm hubs (see docs/operators.md).
"""
from __future__ import annotations

import json
import math
import re
import shlex
import time
from dataclasses import replace
from typing import Any, Callable
from urllib.parse import quote, urlencode

from marshmallow import ValidationError, fields, validate, validates, validates_schema

from connectors.base import (
    ConfigSchema,
    JsonProbe,
    LaunchProgress,
    LaunchTarget,
    RequestRefused,
    check_path_template,
    data_path,
    generic_user_options,
    slurm_memory,
    url_field,
)
from connectors.capabilities import SessionLauncher
from connectors.errors import UpstreamBadResponse, UpstreamError, UpstreamTimeout
from connectors.http import HttpClient, json_body

# jupyterhub-moss 10.1's user_options: on the REST path it reads every one of them (a missing key is a
# KeyError in the spawn) and turns none into another (ngpus is not made into gres; no prologue is built)
MOSS_KEYS = ("partition", "runtime", "nprocs", "memory", "reservation", "ngpus", "options", "output", "environment_id",
             "environment_path", "environment_modules", "default_url", "root_dir", "gres", "prologue")
SLURM_TIME = re.compile(r"^(\d+-\d{1,2}(:\d{1,2}){0,2}|\d+(:\d{1,2}){0,2})$")  # sbatch --time formats
ONE_LINE = validate.Regexp(r"^[^\r\n]*$", error="must be a single line")


class MossEnvironment(ConfigSchema):
    """One of moss's jupyter_environments, as the hub's configuration has it."""

    path = fields.String(validate=[validate.Regexp(r"^/", error="an absolute path (the environment's bin folder)"),
                                   ONE_LINE])
    modules = fields.String(validate=ONE_LINE)
    prologue = fields.String(validate=ONE_LINE)

    @validates_schema
    def _path_or_modules(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("path") and not data.get("modules"):
            raise ValidationError("give the environment's path or its modules", "path")


class MossDefaults(ConfigSchema):
    """Per-service defaults of the moss options the request does not set."""

    runtime = fields.String(validate=validate.Regexp(SLURM_TIME, error="a Slurm time such as 8:00:00 or 1-00:00:00"))
    reservation = fields.String(validate=[validate.Length(max=100), ONE_LINE])
    options = fields.String(validate=[validate.Length(max=500), ONE_LINE])
    output = fields.String(validate=[validate.Length(max=500), ONE_LINE])
    environment_id = fields.String(validate=[validate.Length(min=1, max=100), ONE_LINE])
    default_url = fields.String(validate=[validate.Regexp(r"^/", error="must start with /"), ONE_LINE])
    memory = fields.String(validate=validate.Regexp(r"^[0-9]+[KMGT]?$", error="whole units Slurm takes, e.g. 4G or 512M"))
    prologue = fields.String(validate=[validate.Length(max=2000), ONE_LINE])


class JupyterHubConfig(ConfigSchema):
    health_url = url_field()
    spawner = fields.String(validate=validate.Length(max=100),
                            metadata={"description": "informative: the spawner the hub runs"})
    flavour = fields.String(validate=validate.OneOf(("profiles", "moss")), metadata={
        "description": "the vocabulary the hub's spawner reads: profiles (the broker's own keys) or moss"})
    user_options = fields.Nested(MossDefaults)
    environments = fields.Dict(keys=fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_.-]{1,100}$")),
                               values=fields.Nested(MossEnvironment), validate=validate.Length(max=100))
    data_path_template = fields.String(validate=[validate.Length(max=500), check_path_template])
    username_claim = fields.String(validate=validate.Length(min=1, max=100))
    username_pattern = fields.String(validate=validate.Length(min=1, max=200))
    named_servers = fields.Boolean()
    start_timeout_seconds = fields.Integer(validate=validate.Range(min=10, max=7200),
                                           metadata={"description": "how long a session may take to start"})
    slow_spawn_timeout_seconds = fields.Integer(validate=validate.Range(min=0, max=300), metadata={
        "description": "how long the hub holds a start before answering 202 (JupyterHub's slow_spawn_timeout)"})
    max_concurrent_spawns = fields.Integer(validate=validate.Range(min=1, max=200))
    user_token_issuer = fields.String(validate=validate.Length(min=1, max=100), metadata={
        "description": "call the hub as the user, with their token from this sign-in issuer"})
    token_exchange_audience = fields.String(validate=validate.Length(min=1, max=200), metadata={
        "description": "the user's token is exchanged for one of this audience, if set"})

    @validates("username_pattern")
    def _pattern(self, value: str, **_: Any) -> None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValidationError(f"not a regular expression: {exc}") from exc

    @validates_schema
    def _moss_needs_environments(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("flavour") == "moss" and not data.get("environments"):
            raise ValidationError("moss needs each environment's path (or modules): the hub's jupyter_environments",
                                  "environments")
        if data.get("flavour") != "moss" and data.get("user_options"):
            raise ValidationError("defaults of user_options are for flavour moss", "user_options")


class JupyterHubConnector(JsonProbe, SessionLauncher):
    kind = "jupyterhub"
    title = "JupyterHub (notebooks)"
    preference = 10
    username_from_claims = True  # JupyterHub lower-cases user names; a hub may name people by another claim
    config_schema = JupyterHubConfig
    opens = "Opens JupyterLab on {where}'s own computers, next to the data: the files are read where {home} keeps them."
    health_path = "/hub/api/"  # unauthenticated; answers {"version": ...}
    expected_key = "version"

    def deep_link(self, target: LaunchTarget) -> str:
        """The hub's spawn page with the dataset and resources as form values (moss reads them from the
        query; what only the spawner may set is left out)."""
        options = {k: v for k, v in target.user_options.items() if k not in ("gres", "prologue", "basket", "environment")}
        return f"{target.base_url.rstrip('/')}/hub/spawn?{urlencode(_flat(options))}"

    def refusal(self, config: dict[str, Any], *, api_mode: bool, has_credential: bool,
                issuers: set[str]) -> str | None:
        if api_mode and not has_credential:
            return "API mode without an API credential registered (the hub's service token)"
        return None

    def user_options(self, target: LaunchTarget) -> dict[str, Any]:
        if target.config.get("flavour") == "moss":
            return moss_user_options(target)
        return generic_user_options(target)

    # -- API mode ---------------------------------------------------------------------------------
    def _api(self, target: LaunchTarget, path: str) -> str:
        return f"{target.base_url.rstrip('/')}/hub/api{path}"

    def _headers(self, target: LaunchTarget) -> dict[str, str]:
        if not target.credential:
            raise UpstreamBadResponse("no API token is registered for this JupyterHub (the service's credential)")
        return {"Authorization": f"token {target.credential}", "Accept": "application/json"}

    def _server_path(self, target: LaunchTarget) -> str:
        return f"/users/{quote(target.username or '', safe='')}/servers/{quote(target.server_name, safe='')}"

    def start(self, client: HttpClient, target: LaunchTarget) -> LaunchProgress:
        headers = self._headers(target)
        user_url = self._api(target, f"/users/{quote(target.username or '', safe='')}")
        if client.get(user_url, headers=headers, timeout=10).status_code == 404:
            created = client.request("POST", user_url, headers=headers, timeout=10)
            if created.status_code == 400:  # the hub's authenticator refuses the name: nothing to retry
                return LaunchProgress("failed", f"the hub does not take the user name {target.username!r}: "
                                      f"{_message(created)}")
            if created.status_code not in (201, 409):
                raise UpstreamBadResponse(f"the hub refused to create user {target.username}: HTTP {created.status_code}")
        # the hub holds the POST up to its slow_spawn_timeout (10 s by default) before answering 202
        held = float(target.config.get("slow_spawn_timeout_seconds", 10))
        try:
            response = client.request("POST", self._api(target, self._server_path(target)), headers=headers,
                                      json=target.user_options, timeout=held + 20)
        except UpstreamTimeout as exc:  # the spawn may go on: read its state, never post again
            progress = self.poll(client, target, after_error=exc.detail)
            return replace(progress, overloaded=True)
        if response.status_code == 201:
            return self.poll(client, target)
        if response.status_code == 202:
            return LaunchProgress("starting", "the hub is starting the server")
        if response.status_code == 429:
            retry = response.headers.get("Retry-After", "")
            return LaunchProgress("submitted", "the hub is busy; trying again", overloaded=True,
                                  retry_after=float(retry) if retry.replace(".", "", 1).isdigit() else 10.0)
        if response.status_code == 400 or response.status_code >= 500:
            # already running/pending, or an error while the spawn may go on (slow_spawn_timeout): read state
            progress = self.poll(client, target, after_error=_message(response))
            return replace(progress, overloaded=response.status_code in (502, 503, 504))
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
            told = self.follow(client, target, lambda *_args: None, time.monotonic() + 5)
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

    def follow(self, client: HttpClient, target: LaunchTarget, report: Callable[..., None],
               until: float) -> LaunchProgress | None:
        """Follow the spawn's progress stream to ready or failed, reporting each new message (with the
        state it shows: a batch job pending in the facility's queue is ``waiting``); ``None`` when the
        hub offers no stream for it (the caller falls back to polling)."""
        url = self._api(target, self._server_path(target) + "/progress")
        last = None
        try:
            for event in client.events(url, headers=self._headers(target), until=until, idle_seconds=20):
                message = str(event.get("message") or "")[:300]
                if event.get("ready"):
                    path = str(event.get("url") or "")
                    return LaunchProgress("ready", message or "the server is ready",
                                          url=path if path.startswith("http") else f"{target.base_url.rstrip('/')}{path}")
                if event.get("failed"):
                    return LaunchProgress("failed", f"the hub reports: {message or 'spawn failed'}")
                if message and message != last:  # batchspawner repeats its job state every second
                    last = message
                    state, told = _batch_state(message)
                    progress = event.get("progress")
                    told = f"{told} ({progress}%)" if isinstance(progress, (int, float)) else told
                    report(told, state) if state else report(told)
        except UpstreamError:
            return None  # no stream (older hub, 400 "not starting", a proxy that buffers): poll instead
        return None

    def stop(self, client: HttpClient, target: LaunchTarget) -> LaunchProgress:
        response = client.request("DELETE", self._api(target, self._server_path(target)),
                                  headers=self._headers(target), json={"remove": True}, timeout=30)
        if response.status_code in (202, 204, 404):
            return LaunchProgress("stopped", "the server was stopped")
        if response.status_code >= 500 and self._gone_or_stopping(client, target):
            # two stops crossing (the user's cancel and the broker stopping a start that came up after it):
            # JupyterHub answers the second with a 500 while the first removes the server
            return LaunchProgress("stopped", "the server was stopped (the hub was already stopping it)")
        raise UpstreamBadResponse(f"the hub refused to stop the server: HTTP {response.status_code}")

    def _gone_or_stopping(self, client: HttpClient, target: LaunchTarget) -> bool:
        response = client.get(self._api(target, f"/users/{quote(target.username or '', safe='')}"),
                              headers=self._headers(target), timeout=10)
        if response.status_code == 404:
            return True
        body = json_body(response) if response.status_code == 200 else None
        servers = body.get("servers") if isinstance(body, dict) else None
        if not isinstance(servers, dict):
            return False
        server = servers.get(target.server_name)
        return server is None or (isinstance(server, dict) and server.get("pending") == "stop")


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


# batchspawner's progress messages about the batch job (batchspawner 1.3: BatchSpawnerBase.progress)
BATCH_MESSAGES = {"Pending in queue...": ("waiting", "waiting in the facility's queue (the batch job is pending)"),
                  "Cluster job running... waiting to connect": ("starting", "the batch job runs; the server is starting")}


def _batch_state(message: str) -> tuple[str | None, str]:
    return BATCH_MESSAGES.get(message, (None, message))


def moss_user_options(target: LaunchTarget) -> dict[str, Any]:
    """Every key jupyterhub-moss reads on the REST path, from the request, the partition routing chose,
    the registered environments and the service's defaults; the values go into a batch script, so
    each is one line, and dataset values reach the script only shell-quoted."""
    config, resources = target.config, target.resources
    defaults = dict(config.get("user_options") or {})
    partition = target.partition or {}
    name = resources.get("partition") or partition.get("id")
    if not name:
        raise RequestRefused("this hub's partitions are not registered: the broker cannot choose one")
    gpus = int(resources.get("gpus") or (1 if resources.get("gpu") else 0))
    gres = ""
    if gpus:
        template = partition.get("gres") or ("gpu:{}" if partition.get("gpu") or partition.get("max_gpus") else "")
        if not template:
            raise RequestRefused(f"partition {name} has no GPU")
        gres = template.format(gpus)
    environments = config.get("environments") or {}
    environment_id = resources.get("profile") or defaults.get("environment_id") or next(iter(environments), "")
    environment = environments.get(environment_id)
    if environment is None:
        raise RequestRefused(f"no environment {environment_id!r} at this hub; it offers {', '.join(environments)}")
    cpus = int(resources.get("cpus") or 1)
    memory = slurm_memory(resources.get("memory_gb")) or defaults.get("memory") or f"{cpus}G"  # never the whole node
    folder, where = data_path(config.get("data_path_template"), target.facts)
    default_url = {"notebook": "/tree"}.get(target.interface or "", defaults.get("default_url") or "/lab")
    exports = {"PANOSC_DATASET_PID": target.dataset_pid, "PANOSC_DATASET_DOI": ",".join(target.dois),
               "PANOSC_PROPOSAL": ",".join(target.proposals), "PANOSC_DATA_PATH": folder or "",
               "PANOSC_DATA_LOCATION": where, "PANOSC_DATASET_URL": target.facts.get("landing_url", "")}
    prologue = "; ".join(p for p in (environment.get("prologue"), defaults.get("prologue"),
                                     *(f"export {k}={shlex.quote(v)}" for k, v in exports.items() if v),
                                     *_basket_prologue(target)) if p)
    options = {"partition": name, "runtime": _runtime(resources.get("runtime_hours")) or defaults.get("runtime", ""),
               "nprocs": cpus, "memory": memory, "reservation": defaults.get("reservation", ""), "ngpus": gpus,
               "options": defaults.get("options", ""), "output": defaults.get("output", "/dev/null"),
               "environment_id": environment_id, "environment_path": environment.get("path", ""),
               "environment_modules": environment.get("modules", ""), "default_url": default_url,
               "root_dir": folder or defaults.get("root_dir", ""), "gres": gres, "prologue": prologue}
    for key, value in options.items():
        if isinstance(value, str) and ("\n" in value or "\r" in value):
            raise RequestRefused(f"the value of {key} would break the hub's batch script (a line break)")
    return options


def _basket_prologue(target: LaunchTarget) -> list[str]:
    """A basket's launch: the batch job writes the manifest into the home folder and exports its path and
    the other variables (values shell-quoted; JSON has no line break)."""
    if not target.basket:
        return []
    name = target.environment.get("PANBROKER_BASKET_MANIFEST", "panbroker-basket.json")
    lines = [f'export PANBROKER_BASKET_MANIFEST="$HOME"/{shlex.quote(name)}',
             f'printf "%s" {shlex.quote(json.dumps(target.basket))} > "$PANBROKER_BASKET_MANIFEST"']
    return lines + [f"export {k}={shlex.quote(v)}" for k, v in target.environment.items()
                    if k != "PANBROKER_BASKET_MANIFEST"]


def _runtime(hours: float | None) -> str | None:
    if not hours:
        return None
    minutes = math.ceil(hours * 60)
    return f"{minutes // 60}:{minutes % 60:02d}:00"
