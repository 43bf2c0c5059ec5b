"""The basket: datasets a signed-in scientist collects from dataset pages and search results (kept per person by
the broker), where they would be analysed together and why, and "Analyse together", which launches one session
followed like any other on its session page."""
from __future__ import annotations

import uuid
from typing import Any

from flask import g, redirect, render_template, request
from werkzeug.wrappers import Response

from panmodel.errors import BrokerError
from broker.launch.panel import plain
from web.common import blueprint, broker, require_viewer, viewer


def _back() -> str:
    """Where the add came from (a page of this site only), else the basket."""
    back = request.form.get("back") or ""
    return back if back.startswith("/") and not back.startswith("//") else "/basket"


@blueprint.app_template_global()
def in_basket(pid: str) -> bool:
    """Whether the signed-in person's basket holds the dataset (read once per page)."""
    person = viewer()
    if person is None:
        return False
    if "basket_pids" not in g:
        g.basket_pids = set(broker().basket_items.pids(person))
    return pid in g.basket_pids


@blueprint.post("/basket/add")
def add_to_basket() -> Response:
    person = require_viewer()
    broker().basket_items.add(person, request.form.get("pid", ""))
    return redirect(_back(), 303)


@blueprint.post("/basket/remove")
def remove_from_basket() -> Response:
    person = require_viewer()
    broker().basket_items.remove(person, request.form.get("pid", ""))
    return redirect("/basket", 303)


@blueprint.get("/basket")
def basket_page() -> str:
    return _render()


@blueprint.post("/basket/analyse")
def analyse_basket() -> Response | tuple[str, int]:
    """One session for every dataset in the basket, where the plan says; a form sent twice is one launch."""
    try:
        launch = broker().basket_items.launch(require_viewer(), request.form.get("idempotency_key"))
    except BrokerError as exc:
        reasons = "; ".join(plain(e.message) for e in exc.errors)
        return _render(plain(exc.detail) + (f" ({reasons})" if reasons else "")), exc.status
    return redirect(f"/sessions/{launch.id}", 303)


def _render(summary: str = "") -> str:
    page = broker().basket_items.page(require_viewer())
    left: dict[str, Any] = dict(page.plan.left_out) if page.plan else {}
    return render_template("basket.html", page=page, plan=page.plan, left=left, summary=summary, names=page.names,
                           idempotency_key=str(uuid.uuid4()), plain=plain)
