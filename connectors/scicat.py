"""SciCat (public datasets through its REST API)."""
from connectors.base import ConfigSchema, JsonProbe, SearchConnector, url_field


class SciCatConfig(ConfigSchema):
    health_url = url_field()


class SciCatConnector(JsonProbe, SearchConnector):
    kind = "scicat"
    config_schema = SciCatConfig
    health_path = "/api/v3/datasets/count"  # anonymous callers count published datasets
    expected_key = "count"
