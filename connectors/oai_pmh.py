"""OAI-PMH repositories."""
import requests
from marshmallow import fields, validate

from connectors.base import ConfigSchema, SearchConnector, url_field


class OaiPmhConfig(ConfigSchema):
    health_url = url_field()
    metadata_prefix = fields.String(validate=validate.Length(min=1, max=100))
    set_spec = fields.String(validate=validate.Length(min=1, max=200))


class OaiPmhConnector(SearchConnector):
    kind = "oai-pmh"
    config_schema = OaiPmhConfig

    def health_url(self, base_url, config):  # noqa: ANN001, ANN201 - same contract as the base
        if config.get("health_url") or not base_url:
            return super().health_url(base_url, config)
        return base_url + "?verb=Identify"

    def judge(self, response: requests.Response) -> str | None:
        if response.status_code != 200:
            return f"HTTP {response.status_code}"
        if b"<Identify" not in response.content:
            return "answer is not an OAI-PMH Identify response"
        return None
