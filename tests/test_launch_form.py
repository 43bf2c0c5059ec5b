"""The Analyse panel offers only what the services that fit can give."""
from __future__ import annotations

from broker.authz import Principal
from broker.registry_kinds import KINDS
from tests.test_portal_pages import signed_in, site  # noqa: F401 - the portal's fixture

ADMIN = Principal("test", admin=True)


def test_the_gpu_choice_is_offered_only_when_a_service_that_fits_has_a_gpu(site):  # noqa: ANN001, F811
    broker, client = site
    signed_in(broker, client, "bea")
    assert 'name="gpu"' not in client.get("/datasets/ill/1").text  # ILL's VISA registered no GPU
    broker.registry.create(ADMIN, KINDS.service, {
        "id": "ill-hub", "facility_id": "ill", "kind": "jupyterhub", "title": "ILL hub", "base_url": "https://hub.ill.example",
        "capabilities": {"partitions": [{"id": "cpu"}, {"id": "gpu", "gpu": True, "max_gpus": 2, "gres": "gpu:{}",
                                                       "profiles": ["cuda"]}]}})
    page = client.get("/datasets/ill/1").text
    assert 'name="gpu"' in page
