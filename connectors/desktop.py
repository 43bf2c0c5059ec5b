"""Remote desktop gateways (Guacamole, FastX, NoMachine, VNC/XPRA web clients)."""
from marshmallow import fields, validate

from connectors.base import ConfigSchema, ServiceConnector, url_field


class RemoteDesktopConfig(ConfigSchema):
    health_url = url_field()
    launch_url_template = fields.String(validate=validate.Length(min=1, max=2048))


class RemoteDesktopConnector(ServiceConnector):
    """Up when the gateway's page (or the configured URL) answers below 400; a redirect to a login is up."""

    kind = "remote-desktop"
    config_schema = RemoteDesktopConfig
