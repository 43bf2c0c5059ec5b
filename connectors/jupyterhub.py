"""JupyterHub (REST API under ``/hub/api``)."""
from marshmallow import fields, validate

from connectors.base import ConfigSchema, JsonProbe, ServiceConnector, url_field


class JupyterHubConfig(ConfigSchema):
    health_url = url_field()
    spawner = fields.String(validate=validate.Length(max=100))
    username_claim = fields.String(validate=validate.Length(min=1, max=100))
    named_servers = fields.Boolean()
    start_timeout_seconds = fields.Integer(validate=validate.Range(min=10, max=7200))
    # calling the service as the user: their token from this issuer, exchanged for this audience if set
    user_token_issuer = fields.String(validate=validate.Length(min=1, max=100))
    token_exchange_audience = fields.String(validate=validate.Length(min=1, max=200))


class JupyterHubConnector(JsonProbe, ServiceConnector):
    kind = "jupyterhub"
    config_schema = JupyterHubConfig
    health_path = "/hub/api/"  # unauthenticated; answers {"version": ...}
    expected_key = "version"
