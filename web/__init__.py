"""The portal: server-rendered pages (Jinja templates, a little hand-written JS and CSS, no build step)
that call the same services as the API."""
from __future__ import annotations

from flask import render_template

from broker.registry_kinds import KINDS
from web import account_pages, catalogue_pages, launch_pages, operator_pages, search_pages  # noqa: F401 - routes
from web import analyse_link_pages, discovery_pages, notification_pages, preview_pages  # noqa: F401 - routes
from web.common import blueprint, broker


@blueprint.get("/")
def index() -> str:
    return render_template("index.html", summary=broker().health.summary(),
                           facilities=broker().registry.list(KINDS.facility, limit=500).items)


@blueprint.get("/healthz")
def healthz() -> tuple[dict, int]:
    """Liveness of the broker itself (not of the facilities)."""
    return {"status": "ok"}, 200


__all__ = ["blueprint"]
