"""Operator forms built from each kind's schema: every mistake in one round and one style, a saved
confirmation, every capability editable (partitions, sizes, interfaces), the health URL, and each
connector's settings (its ``config_schema``) read from the connector."""
from __future__ import annotations

import re
from typing import Any

from marshmallow import fields

from broker.registry_kinds import KINDS
from connectors import all_connectors
from connectors.base import ConfigSchema
from connectors.capabilities import Launcher
from connectors.ood import OodConfig
from panmodel.states import TargetType
from tests.test_portal_pages import ADMIN, signed_in, site, token_of  # noqa: F401 - the shared fixture
from web.operator_fields import connector_settings, shown
from web.operator_pages import FORMS, say


def errors_of(page: str) -> dict[str, str]:
    return dict(re.findall(r'<p class="field-error" id="err-([\w.-]+)">([^<]*)</p>', page))


def olgas_new_service(broker, client, data: dict[str, Any]):  # noqa: ANN001, ANN201
    """Olga, signed in as operator of ILL, sends the new-service form with ``data``."""
    signed_in(broker, client, "olga", operator_of="ill")
    token = token_of(client.get("/operator/ill/services/new").text)
    return client.post("/operator/ill/services", follow_redirects=False, data={"csrf_token": token, **data})


def test_every_mistake_shows_in_one_round_in_one_style(site):  # noqa: ANN001, F811
    broker, client = site
    refused = olgas_new_service(broker, client, {
        "id": "Bad Id!", "kind": "visa", "base_url": "ftp://x.example", "max_cpus": "many",
        "max_memory_gb": "0", "harvest_schedule": ""})
    assert refused.status_code == 422
    errors = errors_of(refused.text)
    assert errors["title"] == "required" and errors["max_cpus"] == "a whole number"
    assert "id" in errors and "base_url" in errors and "max_memory_gb" in errors  # the schema's, same round
    assert all(m == m.strip() and not m.endswith(".") and m[:1].islower() for m in errors.values()), errors
    assert broker.registry.list(KINDS.service, {"facility": "ill"}).total == 1


def test_a_saved_service_is_confirmed_and_every_capability_and_the_health_url_round_trip(site):  # noqa: ANN001, F811
    broker, client = site
    created = olgas_new_service(broker, client, {
        "id": "ill-hub", "title": "ILL JupyterHub", "kind": "jupyterhub",
        "base_url": "https://hub.ill.example", "description": "Notebooks beside the data.",
        "max_cpus": "32", "partitions": "x86, CPU nodes\na100, GPU nodes, gpu", "profiles": "small, large",
        "interfaces": ["jupyterlab", "notebook"], "health_url": "https://hub.ill.example/hub/health"})
    assert created.status_code == 303
    console = client.get(created.headers["location"])
    assert "Service ill-hub registered." in console.text
    stored = broker.registry.get(KINDS.service, "ill-hub")
    assert stored["capabilities"]["partitions"] == [{"id": "x86", "title": "CPU nodes"},
                                                    {"id": "a100", "title": "GPU nodes", "gpu": True}]
    assert stored["capabilities"]["profiles"] == ["small", "large"]
    assert stored["capabilities"]["interfaces"] == ["jupyterlab", "notebook"]
    assert stored["connector_config"]["health_url"] == "https://hub.ill.example/hub/health"
    form = client.get("/operator/ill/services/ill-hub/edit").text
    assert "a100, GPU nodes, gpu" in form and 'value="small, large"' in form
    assert re.search(r'id="f-interfaces-jupyterlab"[^>]*checked', form)
    version = re.search(r'name="version" value="(\d+)"', form).group(1)
    saved = client.post("/operator/ill/services/ill-hub", follow_redirects=True, data={
        "csrf_token": token_of(form), "version": version, "title": "ILL JupyterHub", "kind": "jupyterhub",
        "base_url": "https://hub.ill.example", "partitions": "x86", "interfaces": ["notebook"], "max_cpus": "32",
        "description": "Notebooks beside the data."})
    assert "Service ill-hub saved." in saved.text
    stored = broker.registry.get(KINDS.service, "ill-hub")
    assert stored["capabilities"]["partitions"] == [{"id": "x86"}] and stored["capabilities"]["interfaces"] == ["notebook"]
    assert "profiles" not in stored["capabilities"] or not stored["capabilities"]["profiles"]
    assert stored["connector_config"].get("health_url") is None  # emptied
    assert "Notebooks beside the data." in client.get("/services").text  # the description is public


def test_the_capability_fields_come_from_the_schema_and_messages_read_alike():
    names = {f.name for f in FORMS["services"].fields}
    assert {"partitions", "profiles", "plans", "interfaces", "protocols", "software", "health_url"} <= names
    assert say("Missing data for required field.") == "required"
    assert say("Must be greater than or equal to 1 and less than or equal to 100000.") == "from 1 to 100000"


def test_an_object_of_another_facility_has_no_edit_page_and_cannot_be_saved_or_deleted(site):  # noqa: ANN001, F811
    """The ILL operator at ESRF's service through ILL's console: a 404 that shows nothing of it."""
    broker, client = site
    signed_in(broker, client, "ivo", operator_of="ill")
    assert client.get("/operator/ill/services/ill-visa/edit").status_code == 200
    token = token_of(client.get("/operator/ill/services/new").text)
    page = client.get("/operator/ill/services/esrf-visa/edit")
    assert page.status_code == 404 and "ESRF VISA" not in page.text and "visa.esrf.example" not in page.text
    assert client.get("/operator/esrf/services/esrf-visa/edit").status_code == 404  # not their console at all
    saved = client.post("/operator/ill/services/esrf-visa", data={"csrf_token": token, "version": "1",
                                                                  "title": "Mine now"})
    deleted = client.post("/operator/ill/services/esrf-visa/delete", data={"csrf_token": token, "version": "1"})
    assert saved.status_code == 404 and deleted.status_code == 404
    assert broker.registry.get(KINDS.service, "esrf-visa")["title"] == "ESRF VISA"


def test_even_an_admin_edits_an_object_only_under_its_own_facility(site):  # noqa: ANN001, F811
    broker, client = site
    person = signed_in(broker, client, "ada")
    broker.people.grant(ADMIN, person["id"], {"role": "admin"})
    assert client.get("/operator/esrf/services/esrf-visa/edit").status_code == 200
    assert client.get("/operator/ill/services/esrf-visa/edit").status_code == 404


def _hub(broker, config):  # noqa: ANN001, ANN202
    broker.registry.create(ADMIN, KINDS.service, {"id": "ill-hub", "facility_id": "ill", "kind": "jupyterhub",
                                                   "title": "ILL JupyterHub", "base_url": "https://hub.ill.example",
                                                   "connector_config": config})
    return broker.registry.get(KINDS.service, "ill-hub")


HUB_FORM = {"title": "ILL JupyterHub", "kind": "jupyterhub", "base_url": "https://hub.ill.example"}


def test_an_operator_edits_a_hubs_connector_settings_through_the_form(site):  # noqa: ANN001, F811
    broker, client = site
    signed_in(broker, client, "olga", operator_of="ill")
    _hub(broker, {"start_timeout_seconds": 300, "flavour": "profiles"})
    form = client.get("/operator/ill/services/ill-hub/edit").text
    hub_settings = form[form.index('id="settings-jupyterhub"'):]
    assert re.search(r'name="jupyterhub.start_timeout_seconds"[^>]*value="300"', hub_settings)
    assert re.search(r'<option value="profiles" selected>', hub_settings)  # a OneOf setting is a select
    version = re.search(r'name="version" value="(\d+)"', form).group(1)
    saved = client.post("/operator/ill/services/ill-hub", follow_redirects=True, data={
        **HUB_FORM, "csrf_token": token_of(form), "version": version, "jupyterhub.start_timeout_seconds": "900",
        "jupyterhub.flavour": "profiles", "jupyterhub.named_servers": "1",
        "jupyterhub.environments": '{"py311": {"path": "/opt/py311/bin"}}',
        "visa.keyboard_layout": "fr-fr"})  # another kind's setting: not this service's, not read
    assert "Service ill-hub saved." in saved.text
    config = broker.registry.get(KINDS.service, "ill-hub")["connector_config"]
    assert config == {"start_timeout_seconds": 900, "flavour": "profiles", "named_servers": True,
                      "environments": {"py311": {"path": "/opt/py311/bin"}}}
    again = client.get("/operator/ill/services/ill-hub/edit").text
    assert '&#34;/opt/py311/bin&#34;' in again and re.search(r'name="jupyterhub.named_servers"[^>]*checked', again)


def test_a_bad_setting_is_refused_beside_its_field_and_nothing_is_stored(site):  # noqa: ANN001, F811
    broker, client = site
    signed_in(broker, client, "olga", operator_of="ill")
    stored = _hub(broker, {"start_timeout_seconds": 300})
    form = client.get("/operator/ill/services/ill-hub/edit").text
    refused = client.post("/operator/ill/services/ill-hub", data={
        **HUB_FORM, "csrf_token": token_of(form), "version": str(stored["version"]),
        "jupyterhub.start_timeout_seconds": "-5", "jupyterhub.max_concurrent_spawns": "many",
        "jupyterhub.environments": "{not json", "jupyterhub.username_pattern": "(unclosed"})
    assert refused.status_code == 422
    errors = errors_of(refused.text)
    assert errors["jupyterhub.start_timeout_seconds"] == "from 10 to 7200"  # the connector schema's, same round
    assert errors["jupyterhub.max_concurrent_spawns"] == "a whole number"
    assert errors["jupyterhub.environments"].startswith("not JSON")
    assert errors["jupyterhub.username_pattern"].startswith("not a regular expression")
    assert 'value="-5"' in refused.text  # what the operator typed comes back
    assert broker.registry.get(KINDS.service, "ill-hub") == stored


def test_a_new_service_reads_only_the_chosen_kinds_settings(site):  # noqa: ANN001, F811
    broker, client = site
    created = olgas_new_service(broker, client, {
        "id": "ill-binder", "title": "ILL Binder", "kind": "binderhub",
        "base_url": "https://binder.ill.example", "binderhub.default_repository": "gh/ill/notebooks/HEAD",
        "jupyterhub.start_timeout_seconds": "-5", "ood.app": ""})  # other kinds': neither read nor refused
    assert created.status_code == 303, errors_of(created.text)
    config = broker.registry.get(KINDS.service, "ill-binder")["connector_config"]
    assert config == {"default_repository": "gh/ill/notebooks/HEAD"}
    token = token_of(client.get("/operator/ill/services/new").text)
    refused = client.post("/operator/ill/services", data={
        "csrf_token": token, "id": "ill-ood", "title": "ILL OnDemand", "kind": "ood",
        "base_url": "https://ood.ill.example", "binderhub.default_repository": "x"})
    assert refused.status_code == 422 and errors_of(refused.text) == {"ood.app": "required"}


def test_the_ood_connectors_settings_appear_in_the_form_read_from_its_schema(site):  # noqa: ANN001, F811
    broker, client = site
    signed_in(broker, client, "olga", operator_of="ill")
    page = client.get("/operator/ill/services/new?kind=ood").text
    ood = page[page.index('id="settings-ood"'):]
    ood = ood[:ood.index("</fieldset>")]
    shown_names = set(re.findall(r'name="ood\.(\w+)"', ood))
    assert shown_names == set(OodConfig().fields) - {"health_url"}  # the health URL is the form's own field
    assert re.search(r'for="f-ood.app">[^<]*<span aria-hidden="true">\*</span><span class="sr-only">\(required\)', ood)
    assert '<option value="ood" selected>' in page
    binder = page[page.index('id="settings-binderhub"'):]
    assert "e.g. gh/org/repo/HEAD" in binder[:binder.index("</fieldset>")]  # help from the field's metadata
    assert 'src="/static/kind_settings.js"' in page or "kind_settings.js" in page


class _SecretConfig(ConfigSchema):
    api_key = fields.String(load_only=True)
    region = fields.String(metadata={"description": "where the service runs"})


class _NewConnector(Launcher):
    kind = "new-kind"
    title = "A connector installed later"
    preference = 99
    config_schema = _SecretConfig

    def deep_link(self, target):  # noqa: ANN001, ANN201
        return None


def test_a_new_connectors_settings_become_fields_and_its_secrets_are_never_shown(monkeypatch):  # noqa: ANN001
    monkeypatch.setitem(all_connectors(), "new-kind", _NewConnector())
    settings = {f.name: f for f in connector_settings(TargetType.SERVICE, set())}
    assert settings["new-kind.region"].help == "where the service runs"
    assert settings["new-kind.api_key"].type == "password" and shown(settings["new-kind.api_key"], "s3cret") == ""


def test_a_service_given_another_kind_keeps_none_of_the_old_kinds_settings(site):  # noqa: ANN001, F811
    broker, client = site
    signed_in(broker, client, "olga", operator_of="ill")
    stored = _hub(broker, {"flavour": "profiles", "start_timeout_seconds": 300})
    form = client.get("/operator/ill/services/ill-hub/edit").text
    saved = client.post("/operator/ill/services/ill-hub", follow_redirects=False, data={
        **HUB_FORM, "kind": "binderhub", "csrf_token": token_of(form), "version": str(stored["version"]),
        "binderhub.default_repository": "gh/ill/notebooks/HEAD", "jupyterhub.flavour": "profiles"})
    assert saved.status_code == 303, errors_of(saved.text)
    service = broker.registry.get(KINDS.service, "ill-hub")
    assert service["kind"] == "binderhub" and service["connector_config"] == {"default_repository": "gh/ill/notebooks/HEAD"}
