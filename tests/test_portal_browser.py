"""The portal in a real browser: Debian's Chromium driven by Playwright, against the broker served as a
real process, a real OpenID provider (npm oidc-provider) and a real JupyterHub.

A scientist signs in, searches, opens a dataset, analyses it in the hub, watches the progress reach
ready and opens the session; an operator registers a service (after a refused first try) and finds it
in the catalogue. Any console error fails the test; every page is saved as a screenshot under
test-output/screenshots/.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
import requests

from panbroker.app import build_broker
from broker.authz import Principal
from broker.registry_kinds import KINDS
from panmodel.datasets import Dataset, DocumentRef, Parameter, TechniqueRef
from demo import federation as sim
from demo.federation import free_port
from registry.models import ComputeService
from broker.settings import Settings
from tests.conftest import make_settings
from tests.jupyterhub_fixture import start_hub, stop_hub
from tests.loopback import answers_within
from tests.oidc_fixtures import start_provider

pytestmark = pytest.mark.slow  # Chromium, JupyterHub and an OpenID provider

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "test-output" / "screenshots"
AXE = ROOT / "demo" / "oidc" / "node_modules" / "axe-core" / "axe.min.js"
PHONE = 390
# the README's screenshots (docs/screenshots/<name>.png), copied from SHOTS when PANBROKER_UPDATE_SCREENSHOTS=1
README_SHOTS = {"home": "home", "search-sans": "search", "dataset": "dataset", "session-ready": "session-ready",
                "services": "services", "operator-form-errors": "operator-form-errors", "search-phone": "search-phone",
                "dataset-phone": "dataset-phone"}


def publish(*shots: str) -> None:
    """Copy these screenshots to the README's folder (only when asked: they change on every run)."""
    if os.environ.get("PANBROKER_UPDATE_SCREENSHOTS") == "1":
        for shot in shots:
            shutil.copyfile(SHOTS / f"{shot}.png", ROOT / "docs" / "screenshots" / f"{README_SHOTS[shot]}.png")
ADMIN = Principal("test", admin=True)
DATASETS = [
    Dataset(pid="10.5291/ILL-DATA.9-13-612/0001", facility="ill", title="SANS of lysozyme in D2O at 295 K",
            summary="Small-angle neutron scattering of hen egg-white lysozyme, contrast series.",
            doi="10.5291/ILL-DATA.9-13-612", size=48_200_000_000, file_count=1210,
            creation_date=datetime(2021, 3, 14, tzinfo=timezone.utc), instrument="D22", source="ill-search",
            techniques=(TechniqueRef("small angle neutron scattering"),),
            parameters=(Parameter("sample_temperature", 295.0, "K", 295.0, "K"),),
            documents=(DocumentRef("9-13-612", "Lysozyme hydration", "proposal", "10.5291/ILL-DATA.9-13-612"),)),
    *[Dataset(pid=f"ill/run-{n}", facility="ill", title=f"Lysozyme crystal series {n}", source="ill-search",
              doi=f"10.5291/ILL-DATA.8-04-{900 + n}", size=n * 2_100_000_000,
              parameters=(Parameter("sample_temperature", 280.0 + n, "K", 280.0 + n),),
              creation_date=datetime(2020, 1, 1 + n, tzinfo=timezone.utc), instrument="D11",
              techniques=(TechniqueRef("small angle neutron scattering"),)) for n in range(1, 25)],
    Dataset(pid="esrf/ds-1", facility="esrf", title="Lysozyme powder diffraction", source="esrf-search",
            creation_date=datetime(2022, 5, 2, tzinfo=timezone.utc), instrument="ID22", doi="10.15151/ESRF-DC-2040551",
            techniques=(TechniqueRef("x-ray powder diffraction"),)),
]


def _playwright():  # noqa: ANN202
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is missing (make test installs it): browser tests SKIPPED")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is missing (pip install -e '.[test]'): browser tests SKIPPED")
    return sync_playwright


@contextmanager
def served_in_chromium(sync_playwright, settings: Settings, issuer: dict[str, str] | None = None,  # noqa: ANN001
                       **env: str) -> Iterator[tuple[str, Any]]:
    """The broker prepared in ``settings`` served on a free loopback port as a real process (`panbroker serve`,
    with ``env`` added to its environment), signing in at a real provider ``test-idp`` (``issuer``: more of its
    settings), and a headless Chromium to drive it: (the broker's URL, the browser). All end after."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    provider = start_provider("test-idp", broker_url=base)
    issuers = [provider.config(name="test-idp", title="Test IdP", **(issuer or {}))]
    env = {**os.environ, "PANBROKER_DATA_DIR": str(settings.data_dir), "PANBROKER_LOG_LEVEL": "WARNING",
           "PANBROKER_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128", "PANBROKER_PUBLIC_URL": base,
           "PANBROKER_ADMIN_TOKEN": settings.admin_token, "PANBROKER_OIDC_ISSUERS": json.dumps(issuers), **env}
    log_file = settings.data_dir / "broker.log"
    with open(log_file, "w") as log:
        server = subprocess.Popen([str(Path(sys.executable).with_name("panbroker")), "serve", "--port", str(port)],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            assert answers_within(f"{base}/healthz", 30), log_file.read_text()[-2000:]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                                     args=["--no-sandbox", "--disable-gpu"])
                yield base, browser
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=15)
            provider.process.kill()


@pytest.fixture(scope="module")
def portal(tmp_path_factory):  # noqa: ANN001, ANN201
    """The broker as `panbroker serve` with its worker, a provider and a hub, all on loopback."""
    sync_playwright = _playwright()
    tmp = tmp_path_factory.mktemp("portal")
    hub = start_hub(tmp / "hub")
    federation = sim.Federation()
    federation.add("binder", sim.binderhub())
    federation.start()
    try:
        settings = _federation_of_three(tmp, hub, federation.url("binder"))
        SHOTS.mkdir(parents=True, exist_ok=True)
        with served_in_chromium(sync_playwright, settings, {"operator_entitlement_prefix": "urn:panbroker:role:operator:"},
                                PANBROKER_LAUNCH_POLL_SECONDS="1") as (base, browser):
            yield {"base": base, "browser": browser, "hub": hub}
    finally:
        stop_hub(hub)
        federation.stop()


def _federation_of_three(tmp: Path, hub: Any, binder_url: str) -> Settings:
    """A broker prepared in ``tmp``: ILL (with ``hub``) and ESRF (its hub down), EGI's Binder at ``binder_url``,
    and ``DATASETS`` indexed."""
    settings = make_settings(tmp)
    prepared = build_broker(settings)
    registry = prepared.registry
    for fid, name in (("ill", "Institut Laue-Langevin"), ("esrf", "European Synchrotron Radiation Facility (ESRF)")):
        registry.create(ADMIN, KINDS.facility, {"id": fid, "name": name, "country": "FR",
                                                "accepted_issuers": ["test-idp"]})
    for fid in ("ill", "esrf"):  # the endpoints the datasets below came from (the worker drops orphans)
        registry.create(ADMIN, KINDS.search_endpoint, {"id": f"{fid}-search", "facility_id": fid,
                                                       "kind": "panosc-search-api",
                                                       "base_url": f"http://127.0.0.1:{free_port()}/api"})
    registry.create(ADMIN, KINDS.facility, {"id": "egi-fed", "name": "EGI Federation", "country": "NL",
                                            "accepted_issuers": ["test-idp"], "federation_wide": True})
    registry.create(ADMIN, KINDS.service, {
        "id": "egi-binder", "facility_id": "egi-fed", "kind": "binderhub", "title": "EGI Binder",
        "base_url": binder_url, "launch_mode": "deeplink", "capabilities": {"interfaces": ["notebook"]}})
    registry.create(ADMIN, KINDS.service, {  # a hub that is down: nothing listens there
        "id": "esrf-hub", "facility_id": "esrf", "kind": "jupyterhub", "title": "ESRF JupyterHub",
        "base_url": f"http://127.0.0.1:{free_port()}", "capabilities": {"max_cpus": 16}})
    registry.create(ADMIN, KINDS.service, {
        "id": "ill-hub", "facility_id": "ill", "kind": "jupyterhub", "title": "ILL JupyterHub", "base_url": hub.url,
        "launch_mode": "api", "credential": hub.token, "capabilities": {"max_cpus": 8, "interfaces": ["notebook"]},
        "connector_config": {"start_timeout_seconds": 90}})
    registry.create(ADMIN, KINDS.service, {
        "id": "ill-visa", "facility_id": "ill", "kind": "visa", "title": "ILL VISA",
        "base_url": f"http://127.0.0.1:{free_port()}", "capabilities": {"max_cpus": 4}})
    with prepared.store.session() as session:
        session.get(ComputeService, "esrf-hub").health_status = "down"
        session.get(ComputeService, "esrf-hub").health_error = "http://127.0.0.1:1: 5 consecutive failures; calls paused"
    prepared.index.upsert(DATASETS)
    prepared.index.commit()
    prepared.index.close()
    prepared.store.engine.dispose()
    return settings


class Page:
    """A browser tab that records console errors and saves a screenshot of each page it is asked to."""

    def __init__(self, browser, base: str, width: int = 1280):  # noqa: ANN001
        self.width = width
        self.context = browser.new_context(viewport={"width": width, "height": 900 if width > PHONE else 844})
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.base = base
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.context.route("**/*", self._loopback_only)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def _loopback_only(self, route) -> None:  # noqa: ANN001
        """Tests contact loopback only: anything else is cut, and listed (no page may ask for it)."""
        host = urlsplit(route.request.url).hostname
        if route.request.url.startswith("data:") or host in ("127.0.0.1", "localhost", "::1"):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def _console(self, message) -> None:  # noqa: ANN001
        if message.type == "error" and self.page.url.startswith(self.base):  # the broker's pages, not the IdP's
            self.errors.append(f"{message.type}: {message.text} ({self.page.url})")

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def labelled(self) -> list[str]:
        """Form controls a screen reader could not name (no label, no aria-label)."""
        return self.page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(e => !e.labels.length && !e.getAttribute('aria-label')).map(e => e.name || e.id)""")

    def fits_width(self) -> bool:
        return self.page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")

    def violations(self) -> list[str]:
        """axe-core's WCAG 2.1 AA violations of the page as it is now (evaluated, not injected: the CSP
        allows no inline script)."""
        if not self.page.evaluate("() => !!window.axe"):
            self.page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
        found = self.page.evaluate("""async () => (await axe.run(document, {runOnly: {type: 'tag',
            values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}, resultTypes: ['violations']}))
            .violations.map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '))""")
        return [f"{self.page.url}: {v}" for v in found]

    def check(self, name: str | None = None) -> None:
        """The page as it is now: no axe violation, no sideways scrolling at phone width; saved as ``name``."""
        assert self.violations() == []
        assert self.fits_width(), f"{self.page.url} is wider than the {self.width} px screen"
        if name:
            self.shot(name)

    def sign_in(self, login: str) -> None:
        """Through the sign-in page and the provider's development login and consent pages."""
        if self.page.get_by_role("button", name="Menu").is_visible():  # a phone: the links are folded
            self.page.get_by_role("button", name="Menu").click()
        self.page.get_by_role("link", name="Sign in", exact=True).click()
        self.page.wait_for_url(re.compile(r"/signin"))
        self.shot("signin")
        self.page.get_by_role("link", name="Sign in with Test IdP").click()
        self.page.fill("input[name=login]", login)
        self.page.fill("input[name=password]", "any")
        self.page.click("button[type=submit]")
        if "/interaction/" in self.page.url:  # consent
            self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(re.escape(self.base)))

    def close(self) -> None:
        self.context.close()


def test_a_scientist_searches_opens_a_dataset_analyses_it_and_opens_the_session(portal):  # noqa: ANN001
    tab = Page(portal["browser"], portal["base"])
    tab.go("/")
    examples = tab.page.locator(".examples a")
    assert examples.count() >= 2 and "SANS" in tab.page.inner_text(".examples")
    assert "Institut Laue-Langevin" in tab.page.inner_text(".facilities")
    tab.check("home")
    for n in range(examples.count()):  # every example the landing page suggests finds datasets
        href = examples.nth(n).get_attribute("href")
        assert re.search(r"^[1-9][\d,]* dataset", requests.get(portal["base"] + href, timeout=5).text.split(
            'id="results-title">')[1].strip()), href
    tab.sign_in("alice")
    assert tab.page.get_by_role("link", name="My sessions").is_visible()
    tab.page.get_by_role("link", name="Account").click()
    account = tab.page.inner_text("main")
    assert "Test IdP: alice" in account  # the linked identity; where alice can analyse, by name
    assert all(name in account for name in ("EGI Federation", "(ESRF)", "Institut Laue-Langevin"))
    tab.check("account")

    # "SANS" is in one title only: the other 24 are found as small-angle neutron scattering (PaNET)
    tab.go("/search")
    tab.page.focus("#q")
    tab.page.keyboard.type("SANS")
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url(re.compile(r"q=SANS"))
    assert "25 datasets" in tab.page.inner_text("#results-title")
    first = tab.page.locator(".hit").first.inner_text()
    assert "Institut Laue-Langevin" in first and "ill" not in first.split()
    tab.check("search-sans")
    tab.go("/search?q=SANS+lysozyme+D2O")
    assert "DOI 10.5291/ILL-DATA.9-13-612" in tab.page.inner_text(".hits") and "48.2 GB" in tab.page.inner_text(".hits")

    # a DOI typed in the box opens the dataset itself
    tab.go("/")
    tab.page.fill("#home-q", "doi:10.15151/ESRF-DC-2040551")
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url(re.compile(r"/datasets/esrf/ds-1$"))
    assert tab.page.inner_text("h1") == "Lysozyme powder diffraction"

    # search with the keyboard: the URL holds the whole search; two facilities can be chosen
    tab.go("/search?q=lysozyme")
    assert "26 datasets" in tab.page.inner_text("#results-title")
    assert tab.labelled() == []
    tab.check("search")
    tab.page.get_by_role("link", name="Next →").click()  # paging keeps the query
    tab.page.wait_for_url(re.compile(r"page=2"))
    assert "q=lysozyme" in tab.page.url and tab.page.locator(".hit").count() == 6
    facets = tab.page.locator(".facet", has_text="Facility")
    facets.get_by_role("link", name=re.compile("ESRF")).click()  # narrows the search, back to page 1
    tab.page.wait_for_url(re.compile(r"facility=esrf"))
    assert "1 dataset" in tab.page.inner_text("#results-title") and "page=2" not in tab.page.url
    facets.get_by_role("link", name=re.compile("Institut Laue-Langevin")).click()  # and a second facility
    tab.page.wait_for_url(re.compile(r"facility=esrf.*facility=ill|facility=ill.*facility=esrf"))
    assert "26 datasets" in tab.page.inner_text("#results-title")
    assert facets.locator("a.on").count() == 2
    tab.check("search-two-facilities")
    tab.go("/search?q=lysozyme+unobtainium")  # nothing: the nearest searches that find something
    assert "No dataset matches" in tab.page.inner_text(".results")
    assert tab.page.locator(".suggestions a", has_text="lysozyme").count() == 1
    tab.check("search-empty")

    tab.go("/search?q=lysozyme+D2O")
    tab.page.get_by_role("link", name="SANS of lysozyme in D2O at 295 K").click()
    tab.page.wait_for_url(re.compile(r"/datasets/"))
    assert "10.5291/ILL-DATA.9-13-612" in tab.page.inner_text("main")
    assert "sample temperature" in tab.page.inner_text("table.params")
    panel = tab.page.inner_text(".panel")
    assert "ILL JupyterHub" in panel and "Opens JupyterLab" in panel and "Up to 8 CPUs" in panel
    assert tab.page.locator("#gpu").count() == 0  # no service here has a GPU
    assert tab.labelled() == []
    tab.check("dataset")

    # a refused form: every message at its field at once, and no session recorded
    tab.page.fill("#cpus", "64")
    tab.page.fill("#memory_gb", "lots")
    tab.page.get_by_role("button", name="Analyse").click()
    tab.page.wait_for_selector("#err-cpus")
    assert tab.page.inner_text("#err-cpus") == "at most 8 on ILL JupyterHub"
    assert tab.page.inner_text("#err-memory_gb") == "a number, e.g. 8 or 0.5"
    assert tab.page.input_value("#cpus") == "64"
    tab.errors = [e for e in tab.errors if "status of 422" not in e]  # the refusal's own status line
    tab.check("analyse-refused")
    assert "No sessions yet" in requests.get(f"{portal['base']}/sessions", timeout=5,
                                              cookies={c["name"]: c["value"] for c in tab.context.cookies()}).text
    tab.page.fill("#cpus", "2")
    tab.page.fill("#memory_gb", "")
    tab.page.get_by_role("button", name="Analyse").click()
    tab.page.wait_for_url(re.compile(r"/sessions/"))
    tab.check()
    tab.page.wait_for_selector("#state.state-ready", timeout=90_000)
    # "ready" shows as the event arrives; the Open button comes with the page the script then fetches again
    tab.page.wait_for_selector("#open-line:not([hidden]) #open", state="visible", timeout=15_000)
    events = tab.page.inner_text("#events")
    assert "routed to ILL JupyterHub" in events and re.search(r"(?i)server (is )?ready", events)
    assert "2 CPUs" in tab.page.inner_text(".facts")
    open_button = tab.page.get_by_role("link", name="Open")
    assert open_button.is_visible() and open_button.get_attribute("href").startswith(portal["hub"].url)
    tab.check("session-ready")
    session_url = tab.page.url
    with tab.page.expect_popup() as popup_info:
        open_button.click()
    session = popup_info.value
    session.wait_for_load_state()
    assert session.url.startswith(portal["hub"].url)  # the hub (its own login first), not the broker
    if "/hub/login" in session.url:
        session.fill("input[name=username]", "alice")
        session.fill("input[name=password]", "x")
        session.click("input[type=submit], button[type=submit]")
        session.wait_for_url(re.compile(r"/user/alice/pb-"), timeout=30_000)
    assert "/user/alice/pb-" in session.url
    session.close()

    # the same dataset at the same hub again: the running session is offered, not a second one
    tab.go("/datasets/10.5291/ILL-DATA.9-13-612/0001")
    tab.page.get_by_role("button", name="Analyse").click()
    tab.page.wait_for_selector("#existing")
    assert "already has a session of yours" in tab.page.inner_text("#existing")
    assert tab.page.locator("#existing a").first.get_attribute("href") == urlsplit(session_url).path
    tab.errors = [e for e in tab.errors if "status of 409" not in e]
    tab.check("analyse-existing")

    # a public dataset whose facility's hub is down: the federation-wide Binder, the outage in words
    tab.go("/datasets/esrf/ds-1")
    assert tab.page.locator("#svc-egi-binder").is_checked()
    assert "Builds a notebook environment at EGI Federation" in tab.page.inner_text(".panel")
    tab.page.locator("details", has_text="cannot take it now").locator("summary").click()
    unfit = tab.page.inner_text(".unfit")
    assert "ESRF JupyterHub (European Synchrotron Radiation Facility (ESRF)): is not answering" in unfit
    assert "127.0.0.1" not in tab.page.inner_text(".panel") and "consecutive" not in unfit
    tab.check("analyse-binder")

    tab.go("/sessions")
    assert "Ready" in tab.page.inner_text("table") and "SANS of lysozyme in D2O" in tab.page.inner_text("table")
    tab.check("sessions")
    tab.page.once("dialog", lambda dialog: dialog.accept())  # stopping asks first
    tab.page.get_by_role("button", name=re.compile("^Stop")).click()
    tab.page.wait_for_url(re.compile(r"/sessions$"))
    tab.page.wait_for_selector("text=Stopped")
    assert portal["hub"].api("/users/alice").json()["servers"] == {}
    tab.page.goto(session_url)
    tab.check()

    # every page at phone width: no sideways scrolling, the filters behind a button, the menu folded
    phone = Page(portal["browser"], portal["base"], width=PHONE)
    phone.go("/")
    phone.sign_in("alice")
    for path in ("/", "/facilities", "/search?q=lysozyme", "/search?q=unobtainium", "/services", "/facilities/ill",
                 "/datasets/10.5291/ILL-DATA.9-13-612/0001", "/sessions", urlsplit(session_url).path, "/account",
                 "/signin", "/search?q=lysozyme&year_from=last+year", "/datasets/no/such/dataset"):
        phone.go(path)
        phone.check()
    phone.errors = [e for e in phone.errors if not re.search(r"status of (400|404)", e)]  # the two refusals above
    phone.go("/search?q=lysozyme")
    assert not phone.page.locator(".facet").first.is_visible()  # folded behind "Filters", above the results
    assert phone.page.get_by_text("Filters", exact=True).is_visible()
    phone.page.get_by_text("Filters", exact=True).click()
    assert phone.page.locator(".facet").first.is_visible()
    phone.check("search-phone")
    assert not phone.page.get_by_role("link", name="Services").is_visible()
    phone.page.get_by_role("button", name="Menu").click()
    assert phone.page.get_by_role("link", name="Services").is_visible()
    phone.check("menu-phone")
    phone.go("/datasets/10.5291/ILL-DATA.9-13-612/0001")
    assert phone.page.get_by_role("link", name="Analyse ↓").is_visible()  # Analyse on the first screen
    phone.check("dataset-phone")
    phone.close()
    assert tab.errors == [] and phone.errors == []
    assert tab.blocked == [] and phone.blocked == []  # no page asked for anything off this machine
    tab.close()
    publish("home", "search-sans", "dataset", "session-ready", "search-phone", "dataset-phone")


def test_an_operator_registers_a_service_and_sees_it_in_the_catalogue(portal):  # noqa: ANN001
    tab = Page(portal["browser"], portal["base"])
    tab.go("/services")
    assert "ILL JupyterHub" in tab.page.inner_text("table") and tab.page.locator("svg.spark").count() >= 1
    assert "Not in the EOSC catalogue" in tab.page.inner_text("table")  # states in words
    tab.check("services")
    tab.go("/facilities/ill")
    tab.check("facility")
    tab.go("/facilities")
    tab.check("facilities")
    tab.sign_in("op-ill-olga")
    tab.page.get_by_role("link", name="Operator").click()
    tab.page.wait_for_url(re.compile(r"/operator/ill$"))
    tab.check("operator")
    tab.page.get_by_role("link", name="Register a service").click()
    assert tab.labelled() == []
    tab.check("operator-form")

    tab.page.fill("#f-id", "Bad Id!")
    tab.page.fill("#f-base_url", "ftp://desktop.ill.example")
    tab.page.select_option("#f-kind", "remote-desktop")
    # the chosen kind's connector settings, read from its connector, and no other kind's
    assert tab.page.locator("#settings-remote-desktop").is_visible()
    assert not tab.page.locator("#settings-jupyterhub").is_visible()
    tab.page.fill("#f-max_cpus", "many")
    tab.page.get_by_role("button", name="Register").click()
    # one round: the form's own checks and the kind's schema together, each message at its field
    assert tab.page.inner_text("#err-title") == "required"
    assert tab.page.inner_text("#err-max_cpus") == "a whole number"
    assert tab.page.locator("#err-id").is_visible() and tab.page.locator("#err-base_url").is_visible()
    assert tab.page.input_value("#f-id") == "Bad Id!" and tab.page.input_value("#f-max_cpus") == "many"
    tab.errors = [e for e in tab.errors if "status of 422" not in e]
    tab.check("operator-form-errors")

    tab.page.fill("#f-id", "ill-desktop")
    tab.page.fill("#f-title", "ILL remote desktop")
    tab.page.fill("#f-max_cpus", "4")
    tab.page.fill("#f-base_url", f"http://127.0.0.1:{free_port()}/guacamole/")
    tab.page.fill("#f-description", "A Linux desktop at ILL with the instrument software.")
    tab.page.check("#f-protocols-guacamole")
    tab.page.get_by_role("button", name="Register").click()
    tab.page.wait_for_url(re.compile(r"/operator/ill"))
    assert tab.page.inner_text("#saved") == "Service ill-desktop registered."
    assert "ILL remote desktop" in tab.page.inner_text("#services")
    assert "create service ill-desktop" in tab.page.inner_text("#audit")
    assert "Test user op-ill-olga" in tab.page.inner_text("#audit")  # who, by name
    tab.check("operator-saved")

    tab.go("/services?kind=remote-desktop")
    assert "ILL remote desktop" in tab.page.inner_text("table")
    assert "A Linux desktop at ILL" in tab.page.inner_text("table")  # the description is public
    csv = requests.get(f"{portal['base']}/services?kind=remote-desktop&format=csv", timeout=5).text
    assert "ill-desktop" in csv and "ill-hub" not in csv

    phone = Page(portal["browser"], portal["base"], width=PHONE)
    phone.go("/")
    phone.sign_in("op-ill-olga")
    for path in ("/operator/ill", "/operator/ill/services/new", "/operator/ill/services/ill-desktop/edit",
                 "/services", "/facilities"):
        phone.go(path)
        phone.check()
    phone.go("/operator/ill")
    phone.shot("operator-phone")
    assert phone.errors == [] and phone.blocked == []
    phone.close()

    # a form posted without the page's token (another site, or an expired page) is refused
    cookies = {c["name"]: c["value"] for c in tab.context.cookies()}
    forged = requests.post(f"{portal['base']}/operator/ill/services", data={"id": "x", "title": "x", "kind": "visa"},
                           cookies=cookies, timeout=5, allow_redirects=False)
    assert forged.status_code == 403
    assert tab.errors == [] and tab.blocked == []
    tab.close()
    publish("services", "operator-form-errors")
