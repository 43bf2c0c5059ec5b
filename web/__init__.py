"""The portal: server-rendered pages (Jinja templates, a little hand-written JS and CSS, no build step)
that call the same services as the API."""
from __future__ import annotations

from flask import render_template

from web import (  # noqa: F401 - routes
    account_pages,
    catalogue_pages,
    eosc_pages,
    launch_pages,
    operator_pages,
    search_pages,
    words,
)
from web import analyse_link_pages, basket_pages, discovery_pages, notification_pages  # noqa: F401 - routes
from web.common import blueprint, broker


@blueprint.get("/")
def index() -> str:
    """The landing page: the search box, example searches that find datasets, the facilities."""
    view = broker().landing.home()
    return render_template("index.html", examples=view.examples, facilities=view.facilities)


@blueprint.get("/healthz")
def healthz() -> tuple[dict, int]:
    """Liveness of the broker itself (not of the facilities)."""
    return {"status": "ok"}, 200


__all__ = ["blueprint"]
