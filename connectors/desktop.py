"""Remote desktop gateways (Guacamole, FastX, NoMachine, VNC/XPRA web clients)."""
from urllib.parse import quote

from marshmallow import fields, validate

from connectors.base import ConfigSchema, LaunchTarget, ServiceConnector, url_field


class RemoteDesktopConfig(ConfigSchema):
    health_url = url_field()
    launch_url_template = fields.String(validate=validate.Length(min=1, max=2048))


class RemoteDesktopConnector(ServiceConnector):
    """Up when the gateway's page (or the configured URL) answers below 400; a redirect to a login is up."""

    kind = "remote-desktop"
    config_schema = RemoteDesktopConfig

    def deep_link(self, target: LaunchTarget) -> str:
        """The gateway's page, or the configured template with {base_url}, {dataset_pid}, {doi},
        {proposal} filled in (URL-encoded)."""
        template = target.config.get("launch_url_template")
        if not template:
            return target.base_url
        values = {"base_url": target.base_url.rstrip("/"), "dataset_pid": quote(target.dataset_pid, safe=""),
                  "doi": quote(target.dois[0], safe="") if target.dois else "",
                  "proposal": quote(target.proposals[0], safe="") if target.proposals else ""}
        return template.format_map(values)
