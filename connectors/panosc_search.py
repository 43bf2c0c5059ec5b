"""PaNOSC Search API (LoopBack; REST root ``/api``)."""
from connectors.base import ConfigSchema, JsonProbe, SearchConnector, url_field


class PanoscSearchConfig(ConfigSchema):
    health_url = url_field()


class PanoscSearchConnector(JsonProbe, SearchConnector):
    kind = "panosc-search-api"
    config_schema = PanoscSearchConfig
    health_path = "/api/Datasets/count"
    expected_key = "count"
