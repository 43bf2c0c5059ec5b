"""BinderHub."""
import requests
from marshmallow import fields, validate

from connectors.base import ConfigSchema, LaunchTarget, ServiceConnector, url_field
from connectors.http import json_body


class BinderHubConfig(ConfigSchema):
    health_url = url_field()
    default_repository = fields.String(validate=validate.Length(max=500))


class BinderHubConnector(ServiceConnector):
    kind = "binderhub"
    config_schema = BinderHubConfig
    health_path = "/health"

    def deep_link(self, target: LaunchTarget) -> str | None:
        """BinderHub's build-and-launch page of the configured repository (e.g. gh/org/repo/HEAD)."""
        repository = target.config.get("default_repository")
        return f"{target.base_url.rstrip('/')}/v2/{repository}" if repository else None

    def judge(self, response: requests.Response) -> str | None:
        # BinderHub answers 200 {"ok": true, "checks": [...]} or 503 with the failing checks
        body = json_body(response) if response.content else {}
        if response.status_code == 200 and isinstance(body, dict) and body.get("ok") is True:
            return None
        failing = [c.get("service", "?") for c in body.get("checks", []) if not c.get("ok")] if isinstance(body, dict) else []
        return f"HTTP {response.status_code}" + (f"; failing: {', '.join(failing)}" if failing else "")
