"""VISA (ILL's Virtual Infrastructure for Scientific Analysis)."""
from urllib.parse import urlencode

from marshmallow import fields, validate

from connectors.base import ConfigSchema, JsonProbe, LaunchTarget, ServiceConnector, url_field


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

    def deep_link(self, target: LaunchTarget) -> str:
        """VISA's new-instance page with the dataset's proposals and DOIs preselected (visa-web reads
        comma-separated ``proposals`` and ``dois``)."""
        query = {k: ",".join(v) for k, v in (("proposals", target.proposals), ("dois", target.dois)) if v}
        path = target.config.get("new_instance_path", "/instances/new")
        return f"{target.base_url.rstrip('/')}{path}" + (f"?{urlencode(query)}" if query else "")
