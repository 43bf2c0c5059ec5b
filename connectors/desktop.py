"""Remote desktop gateways (Guacamole, FastX, NoMachine, VNC/XPRA web clients)."""
import re
from urllib.parse import quote

from marshmallow import ValidationError, fields, validate, validates

from connectors.base import ConfigSchema, LaunchTarget, url_field
from connectors.capabilities import Launcher

PLACEHOLDERS = ("base_url", "dataset_pid", "doi", "proposal")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class RemoteDesktopConfig(ConfigSchema):
    health_url = url_field()
    launch_url_template = fields.String(validate=validate.Length(min=1, max=2048))

    @validates("launch_url_template")
    def _known_placeholders(self, value: str, **_kwargs: object) -> None:
        unknown = sorted({name for name in PLACEHOLDER.findall(value) if name not in PLACEHOLDERS})
        if unknown:
            raise ValidationError(f"unknown placeholder(s) {', '.join(unknown)}; use {', '.join(PLACEHOLDERS)}")
        if not re.match(r"^(\{base_url\}|https?://)", value):
            raise ValidationError("must start with {base_url} or http(s)://")


class RemoteDesktopConnector(Launcher):
    """Up when the gateway's page (or the configured URL) answers below 400; a redirect to a login is up."""

    kind = "remote-desktop"
    title = "Remote desktop"
    config_schema = RemoteDesktopConfig
    preference = 40
    eosc_categories = ("analysis", "compute")

    opens = "Opens a remote desktop at {where}, with the data on its file system."

    def deep_link(self, target: LaunchTarget) -> str:
        """The gateway's page, or the configured template with {base_url}, {dataset_pid}, {doi} and
        {proposal} filled in (URL-encoded); nothing else in the template is interpreted."""
        template = target.config.get("launch_url_template")
        if not template:
            return target.base_url
        values = {"base_url": target.base_url.rstrip("/"), "dataset_pid": quote(target.dataset_pid, safe=""),
                  "doi": quote(target.dois[0], safe="") if target.dois else "",
                  "proposal": quote(target.proposals[0], safe="") if target.proposals else ""}
        return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)
