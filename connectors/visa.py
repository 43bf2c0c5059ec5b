"""VISA (ILL's Virtual Infrastructure for Scientific Analysis)."""
from marshmallow import fields, validate

from connectors.base import ConfigSchema, JsonProbe, ServiceConnector, url_field


class VisaConfig(ConfigSchema):
    health_url = url_field()
    new_instance_path = fields.String(validate=validate.Regexp(r"^/", error="must start with /"))
    start_timeout_seconds = fields.Integer(validate=validate.Range(min=10, max=7200))
    # calling the service as the user: their token from this issuer, exchanged for this audience if set
    user_token_issuer = fields.String(validate=validate.Length(min=1, max=100))
    token_exchange_audience = fields.String(validate=validate.Length(min=1, max=200))


class VisaConnector(JsonProbe, ServiceConnector):
    kind = "visa"
    config_schema = VisaConfig
    health_path = "/api/configuration"  # read by the VISA web client before login
    expected_key = "data"
