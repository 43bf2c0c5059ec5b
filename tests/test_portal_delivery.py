"""How the portal's pages are delivered: compressed, with a strict Content-Security-Policy (so no page
may carry inline script or style), no framing, no sniffing, a referrer policy, and static files cached."""
from __future__ import annotations

import re

from tests.test_portal_pages import signed_in, site  # noqa: F401 - the shared fixture

PAGES = ("/", "/facilities", "/search?q=lysozyme", "/search?q=nothing-like-this", "/datasets/ill/1", "/services",
         "/facilities/ill", "/signin", "/sessions", "/account", "/operator/ill", "/operator/ill/services/new")


def test_every_page_is_compressed_framed_by_no_one_and_free_of_inline_script_and_style(site):  # noqa: ANN001, F811
    broker, client = site
    signed_in(broker, client, "olga", operator_of="ill")
    for path in PAGES:
        page = client.get(path, headers={"Accept-Encoding": "br, gzip"})
        assert page.status_code == 200, path
        assert page.headers["Content-Encoding"] == "br", path
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        # JSON-LD is data for search engines, never run: the CSP's script-src does not apply to it
        assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*application/ld\+json)[^>]*>", page.text), \
            f"inline script on {path}"
        assert not re.search(r"\sstyle=|<style|\son[a-z]+=", page.text), f"inline style or handler on {path}"
    gzip = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert gzip.headers["Content-Encoding"] == "gzip"


def test_static_files_are_cached_and_pages_revalidated(site):  # noqa: ANN001, F811
    _broker, client = site
    css = client.get("/static/web/broker.css")
    assert css.status_code == 200 and "max-age=3600" in css.headers["Cache-Control"] and css.headers.get("ETag")
    again = client.get("/static/web/broker.css", headers={"If-None-Match": css.headers["ETag"]})
    assert again.status_code == 304
    assert "no-cache" in client.get("/").headers["Cache-Control"]


def test_a_registry_objects_etag_stays_its_version_for_clients_that_take_brotli(site):  # noqa: ANN001, F811
    """Compressing a registry read made its ETag "1:br", which If-Match then no longer named."""
    from tests.conftest import ADMIN

    _broker, client = site
    read = client.get("/api/v1/facilities/ill", headers={**ADMIN, "Accept-Encoding": "br, gzip"})
    assert read.status_code == 200 and read.headers["ETag"] == '"1"'
    patched = client.patch("/api/v1/facilities/ill", json={"name": "Institut Laue-Langevin"},
                           headers={**ADMIN, "If-Match": read.headers["ETag"], "Accept-Encoding": "br"})
    assert patched.status_code == 200, patched.text
