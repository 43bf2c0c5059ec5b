"""VISA (ILL's Virtual Infrastructure for Scientific Analysis)."""
from marshmallow import fields, validate

from connectors.base import ConfigSchema, JsonProbe, ServiceConnector, url_field


class VisaConfig(ConfigSchema):
    health_url = url_field()
    new_instance_path = fields.String(validate=validate.Regexp(r"^/", error="must start with /"))
    start_timeout_seconds = fields.Integer(validate=validate.Range(min=10, max=7200))


class VisaConnector(JsonProbe, ServiceConnector):
    kind = "visa"
    config_schema = VisaConfig
    health_path = "/api/configuration"  # read by the VISA web client before login
    expected_key = "data"
