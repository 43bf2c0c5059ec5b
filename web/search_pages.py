"""Search and dataset pages. The search page renders from the index (mode=live is the user's explicit
choice); the URL holds the whole search, so it can be shared."""
from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from flask import render_template, request

from broker.errors import InvalidInput
from broker.search.service import parse_query
from web.common import blueprint, broker, viewer

LISTED = ("facility", "technique", "instrument", "parameter")
FACET_TITLES = {"facility": "Facility", "technique": "Technique", "instrument": "Instrument", "year": "Year",
                "access": "Access"}


def _params() -> dict[str, Any]:
    params: dict[str, Any] = {k: request.args.getlist(k) for k in LISTED if request.args.getlist(k)}
    for name in ("q", "page", "size", "sort", "mode", "year_from", "year_to", "public"):
        if request.args.get(name):
            params[name] = request.args[name]
    return params


def _url(params: dict[str, Any], **changes: Any) -> str:
    merged = {**params, **changes}
    pairs = [(k, v) for k, value in merged.items() if value not in (None, "", [])
             for v in (value if isinstance(value, list) else [value])]
    return "/search?" + urlencode(pairs)


def _toggle(params: dict[str, Any], facet: str, value: str) -> str:
    """The search with ``value`` of ``facet`` added, or removed when already chosen (page back to 1)."""
    if facet == "year":
        chosen = params.get("year_from") == value and params.get("year_to") == value
        return _url(params, year_from=None if chosen else value, year_to=None if chosen else value, page=None)
    if facet == "access":
        wanted = "true" if value == "public" else "false"
        return _url(params, public=None if params.get("public") == wanted else wanted, page=None)
    current = list(params.get(facet, []))
    current = [v for v in current if v != value] if value in current else [*current, value]
    return _url(params, **{facet: current, "page": None})


def _chosen(params: dict[str, Any], facet: str, value: str) -> bool:
    if facet == "year":
        return params.get("year_from") == value and params.get("year_to") == value
    if facet == "access":
        return params.get("public") == ("true" if value == "public" else "false")
    return value in params.get(facet, [])


@blueprint.get("/search")
def search_page() -> tuple[str, int] | str:
    params = _params()
    try:
        query = parse_query(params)
    except InvalidInput as exc:
        return render_template("search.html", params=params, result=None, errors=exc.errors, query=None), 400
    result = broker().search.search(query)
    pages = max(1, -(-result.total // query.size))
    return render_template("search.html", params=params, result=result, errors=(), query=query, pages=pages,
                           url=_url, toggle=_toggle, chosen=_chosen, facet_titles=FACET_TITLES,
                           failed=[s for s in result.sources if s.status in ("timeout", "error")])


@blueprint.get("/datasets/<path:pid>")
def dataset_page(pid: str) -> str:
    return render_dataset(pid)


def render_dataset(pid: str, form: Any = None, errors: dict[str, str] | None = None, summary: str = "") -> str:
    """The dataset with its "Analyse" panel; after a refused launch, with the user's choices and the
    message beside each field."""
    dataset = broker().search.get(pid)
    person = viewer()
    candidates = broker().launches.preview(person, dataset, {})
    services = {s["id"]: s for s in broker().catalogue.services(
        facility=sorted({c["facility_id"] for c in candidates}) or None)}
    return render_template("dataset.html", dataset=dataset, candidates=candidates, services=services,
                           idempotency_key=str(uuid.uuid4()), signed_in=person is not None,
                           form=form or {}, errors=errors or {}, summary=summary)
