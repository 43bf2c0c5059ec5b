"""VISA (ILL's Virtual Infrastructure for Scientific Analysis): health, deep links, and API launches.

VISA's REST API is the back-end of visa-web and takes the user's own access token (one whose `azp` is
VISA's client, see the reference notes): the broker finds the user's experiments for the dataset's
proposals/DOIs, picks the smallest plan that fits, creates the instance (named after the launch, so a
retry finds it instead of creating a second) and follows its state to ACTIVE.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from marshmallow import fields, validate

from connectors.base import ConfigSchema, JsonProbe, LaunchProgress, LaunchTarget, url_field
from connectors.capabilities import SessionLauncher, user_token_refusal
from connectors.errors import UpstreamBadResponse
from connectors.http import HttpClient, json_body

ACTIVE = {"ACTIVE", "PARTIALLY_ACTIVE", "ACTIVE_MIGRATING"}
FAILED = {"ERROR", "DELETED", "DELETING", "STOPPED", "UNAVAILABLE"}


class VisaConfig(ConfigSchema):
    health_url = url_field()
    new_instance_path = fields.String(validate=validate.Regexp(r"^/", error="must start with /"))
    start_timeout_seconds = fields.Integer(validate=validate.Range(min=10, max=7200))
    max_concurrent_spawns = fields.Integer(validate=validate.Range(min=1, max=200))
    keyboard_layout = fields.String(validate=validate.Length(min=1, max=50))
    # calling the service as the user: their token from this issuer, exchanged for this audience if set
    user_token_issuer = fields.String(validate=validate.Length(min=1, max=100))
    token_exchange_audience = fields.String(validate=validate.Length(min=1, max=200))


class VisaConnector(JsonProbe, SessionLauncher):
    kind = "visa"
    title = "VISA (virtual machines)"
    preference = 20
    eosc_categories = ("analysis", "compute")
    config_schema = VisaConfig
    opens = ("Opens a virtual machine at {where} (remote desktop or Jupyter) with the data of the dataset's "
             "proposal mounted.")
    health_path = "/api/configuration"  # read by the VISA web client before login
    expected_key = "data"

    def deep_link(self, target: LaunchTarget) -> str:
        """VISA's new-instance page with the dataset's proposals and DOIs preselected (visa-web reads
        comma-separated ``proposals`` and ``dois``)."""
        query = {k: ",".join(v) for k, v in (("proposals", target.proposals), ("dois", target.dois)) if v}
        path = target.config.get("new_instance_path", "/instances/new")
        return f"{target.base_url.rstrip('/')}{path}" + (f"?{urlencode(query)}" if query else "")

    # -- API mode ---------------------------------------------------------------------------------
    def _call(self, client: HttpClient, target: LaunchTarget, method: str, path: str, **kwargs: Any) -> Any:
        if not target.user_token:
            raise UpstreamBadResponse("VISA needs the user's own token (connector_config.user_token_issuer)")
        response = client.request(method, f"{target.base_url.rstrip('/')}/api{path}", timeout=20,
                                  headers={"Authorization": f"Bearer {target.user_token}"}, **kwargs)
        if response.status_code == 401:
            raise UpstreamBadResponse("VISA does not accept the user's token (or the experiments are not theirs)")
        if response.status_code >= 400:
            raise UpstreamBadResponse(f"VISA answered HTTP {response.status_code} to {method} {path}")
        return json_body(response) if response.content else {}

    def _instance(self, client: HttpClient, target: LaunchTarget) -> dict[str, Any] | None:
        instances = self._call(client, target, "GET", "/account/instances").get("data") or []
        return next((i for i in instances if i.get("name") == target.server_name), None)

    def refusal(self, config: dict[str, Any], *, api_mode: bool, has_credential: bool,
                issuers: set[str]) -> str | None:
        if not api_mode:
            return None
        return user_token_refusal(config, issuers, "VISA's API")

    def start(self, client: HttpClient, target: LaunchTarget) -> LaunchProgress:
        if self._instance(client, target) is not None:  # a retry: the instance exists, follow it
            return self.poll(client, target)
        query = [("includeOpenData", "true"), *(("proposal", p) for p in target.proposals),
                 *(("doi", d) for d in target.dois)]
        experiments = self._call(client, target, "GET", "/account/experiments?" + urlencode(query)).get("data") or []
        if not experiments:
            return LaunchProgress("failed", "VISA knows no experiment of yours for proposal "
                                  f"{', '.join(target.proposals) or '-'} / DOI {', '.join(target.dois) or '-'}")
        ids = [str(e["id"]) for e in experiments]
        plans = self._call(client, target, "GET", "/plans?" + urlencode({"experiments": ",".join(ids)})).get("data")
        plan = _fitting_plan(plans or [], target.resources)
        if plan is None:
            return LaunchProgress("failed", "no VISA plan offers the CPUs and memory asked for"
                                  + (f" (plan {target.resources['plan']})" if target.resources.get("plan") else ""))
        self._call(client, target, "POST", "/account/instances", json={
            "name": target.server_name, "comments": f"Analysis of {target.dataset_pid} (PaN Broker)",
            "planId": plan["id"], "screenWidth": 1920, "screenHeight": 1080,
            "keyboardLayout": target.config.get("keyboard_layout", "en-gb-qwerty"), "acceptedTerms": True,
            "experiments": ids})
        return LaunchProgress("starting", f"VISA is building the instance (plan {plan['id']})")

    def poll(self, client: HttpClient, target: LaunchTarget) -> LaunchProgress:
        instance = self._instance(client, target)
        if instance is None:
            return LaunchProgress("failed", "the VISA instance is gone")
        state = (self._call(client, target, "GET", f"/account/instances/{quote(str(instance['uid']))}/state")
                 .get("data") or {}).get("state", "UNKNOWN")
        if state in ACTIVE:
            url = f"{target.base_url.rstrip('/')}/instances/{instance['uid']}"
            return LaunchProgress("ready", "the VISA instance is active", url=url)
        if state in FAILED:
            return LaunchProgress("failed", f"VISA reports the instance {state}")
        return LaunchProgress("starting", f"VISA reports {state}")

    def stop(self, client: HttpClient, target: LaunchTarget) -> LaunchProgress:
        instance = self._instance(client, target)
        if instance is not None:
            self._call(client, target, "DELETE", f"/account/instances/{quote(str(instance['uid']))}")
        return LaunchProgress("stopped", "the VISA instance was deleted")


def _fitting_plan(plans: list[dict[str, Any]], resources: dict[str, Any]) -> dict[str, Any] | None:
    """The smallest plan whose flavour has the CPUs and memory (GB; VISA flavours count MB) asked for,
    or the one named by ``plan``."""
    if resources.get("plan"):
        return next((p for p in plans if str(p.get("id")) == str(resources["plan"])
                     or p.get("name") == resources["plan"]), None)
    cpus = float(resources.get("cpus") or 0)
    memory_mb = float(resources.get("memory_gb") or 0) * 1024
    fitting = [p for p in plans if float(p["flavour"].get("cpu", 0)) >= cpus
               and float(p["flavour"].get("memory", 0)) >= memory_mb]
    return min(fitting, key=lambda p: (float(p["flavour"]["cpu"]), float(p["flavour"]["memory"])), default=None)
