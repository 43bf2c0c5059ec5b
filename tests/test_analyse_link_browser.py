""""Analyse this DOI" in a real browser (Debian Chromium through Playwright): a reader follows the link a paper
carries while signed out, signs in at a real OpenID provider (npm oidc-provider), and lands in the Analyse
step of that DOI's dataset with the link's service preselected."""
from __future__ import annotations

import re

import pytest

from panbroker.app import build_broker
from broker.authz import Principal
from broker.registry_kinds import KINDS
from panmodel.datasets import Dataset, DocumentRef
from demo.federation import free_port
from tests.conftest import make_settings
from tests.test_portal_browser import Page, _playwright, served_in_chromium

pytestmark = pytest.mark.slow  # Chromium and an OpenID provider

ADMIN = Principal("test", admin=True)
DOI = "10.5291/ILL-DATA.9-13-612"


@pytest.fixture(scope="module")
def portal(tmp_path_factory):  # noqa: ANN001, ANN201
    sync_playwright = _playwright()
    settings = make_settings(tmp_path_factory.mktemp("analyse-link"))
    prepared = build_broker(settings)
    prepared.registry.create(ADMIN, KINDS.facility, {"id": "ill", "name": "Institut Laue-Langevin", "country": "FR",
                                                     "accepted_issuers": ["test-idp"]})
    for sid, title in (("ill-visa", "ILL VISA"), ("ill-desktop", "ILL remote desktop")):
        prepared.registry.create(ADMIN, KINDS.service, {
            "id": sid, "facility_id": "ill", "kind": "visa", "title": title,
            "base_url": f"http://127.0.0.1:{free_port()}", "capabilities": {"max_cpus": 4}})
    prepared.index.upsert([Dataset(pid="ill/9-13-612/1", facility="ill", title="SANS of lysozyme in D2O",
                                   doi=DOI, documents=(DocumentRef("9-13-612", "Lysozyme hydration", "proposal"),))])
    prepared.index.commit()
    prepared.index.close()
    prepared.store.engine.dispose()
    with served_in_chromium(sync_playwright, settings, PANBROKER_EMBEDDED_WORKER="false") as (base, browser):
        yield {"base": base, "browser": browser}


def test_a_signed_out_reader_follows_the_link_signs_in_and_lands_in_the_analyse_step(portal):  # noqa: ANN001
    tab = Page(portal["browser"], portal["base"])
    tab.go(f"/analyse/https://doi.org/{DOI}?service=ill-desktop")
    tab.page.wait_for_url(re.compile(r"/signin\?next="))
    tab.shot("analyse-link-signin")
    tab.page.get_by_role("link", name="Sign in with Test IdP").click()
    tab.page.fill("input[name=login]", "carla")
    tab.page.fill("input[name=password]", "any")
    tab.page.click("button[type=submit]")
    if "/interaction/" in tab.page.url:  # consent
        tab.page.click("button[type=submit]")
    tab.page.wait_for_url(re.compile(re.escape(portal["base"]) + r"/analyse/"))
    assert tab.page.url.endswith(f"/analyse/{DOI}?service=ill-desktop")
    assert tab.page.get_by_role("heading", name="SANS of lysozyme in D2O").is_visible()
    analyse = tab.page.locator("section.panel", has=tab.page.get_by_role("heading", name="Analyse"))
    assert analyse.get_by_role("button", name="Analyse").is_visible()
    assert tab.page.locator("#svc-ill-desktop").is_checked() and not tab.page.locator("#svc-ill-visa").is_checked()
    tab.shot("analyse-link-analyse-step")
    assert tab.errors == []
    tab.close()
