"""What crawlers read: schema.org Dataset JSON-LD on each dataset page and the sitemap of every dataset page."""
from __future__ import annotations

from urllib.parse import quote
from xml.sax.saxutils import escape

from flask import Response, abort
from markupsafe import Markup

from broker.oai.provider import OaiProvider, for_broker
from broker.oai.schema_org import dataset_jsonld, script_json
from panmodel.datasets import Dataset
from web.common import blueprint, broker

SITEMAP_URLS = 50_000  # the sitemaps.org protocol's limit per file
SITEMAP = "http://www.sitemaps.org/schemas/sitemap/0.9"


def provider() -> OaiProvider:
    return for_broker(broker())


def dataset_url(pid: str) -> str:
    return f"{broker().settings.effective_public_url}/datasets/{quote(pid, safe='/:@')}"


@blueprint.app_template_global()
def dataset_jsonld_script(dataset: Dataset) -> Markup:
    """The ``<script type="application/ld+json">`` block of a dataset page."""
    publisher = provider().facility_names().get(dataset.facility, dataset.facility)
    data = dataset_jsonld(dataset, dataset_url(dataset.pid), publisher, broker().settings.effective_public_url + "/")
    return Markup('<script type="application/ld+json">{}</script>').format(Markup(script_json(data)))


def _xml(body: str) -> Response:
    return Response('<?xml version="1.0" encoding="UTF-8"?>\n' + body, content_type="application/xml; charset=utf-8")


@blueprint.get("/sitemap.xml")
def sitemap_index() -> Response:
    """A sitemap index: the portal's own pages, then one sitemap per 50,000 dataset pages."""
    base = broker().settings.effective_public_url
    files = max(1, -(-provider().published_count() // SITEMAP_URLS))
    entries = "".join(f"<sitemap><loc>{escape(base)}/sitemap-{n}.xml</loc></sitemap>" for n in range(files + 1))
    return _xml(f'<sitemapindex xmlns="{SITEMAP}">{entries}</sitemapindex>')


@blueprint.get("/sitemap-<int:number>.xml")
def sitemap(number: int) -> Response:
    """Sitemap 0 lists the portal's pages; sitemap n (from 1) the n-th 50,000 dataset pages in pid order."""
    base = broker().settings.effective_public_url
    if number == 0:
        urls = [(f"{base}{path}", None) for path in ("/", "/search", "/services")]
    else:
        rows = provider().published((number - 1) * SITEMAP_URLS, SITEMAP_URLS)
        if not rows and number > 1:
            abort(404)
        urls = [(dataset_url(pid), moment.strftime("%Y-%m-%dT%H:%M:%SZ")) for pid, moment in rows]
    entries = "".join(f"<url><loc>{escape(loc)}</loc>{f'<lastmod>{lastmod}</lastmod>' if lastmod else ''}</url>"
                      for loc, lastmod in urls)
    return _xml(f'<urlset xmlns="{SITEMAP}">{entries}</urlset>')
