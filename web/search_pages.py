"""Search and dataset pages. The search page renders from the index (mode=live is the user's explicit
choice); the URL holds the whole search, so it can be shared."""
from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from flask import redirect, render_template, request
from werkzeug.wrappers import Response

from panmodel.errors import InvalidInput
from broker.launch.panel import AnalysePanel, plain
from web.common import blueprint, broker, viewer

LISTED = ("facility", "technique", "instrument", "parameter")
FACET_TITLES = {"facility": "Facility", "technique": "Technique", "instrument": "Instrument", "year": "Year",
                "access": "Access"}
# the ranges the "More filters" form offers: parameter -> (label, units offered, first the default)
RANGES = {"sample_temperature": ("Sample temperature", ("K", "°C")),
          "incident_wavelength": ("Incident wavelength", ("Å", "nm")),
          "incident_photon_energy": ("Photon energy", ("keV", "eV")),
          "sample_pressure": ("Sample pressure", ("bar", "kPa", "GPa"))}
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _params() -> tuple[dict[str, Any], dict[str, str]]:
    """The search in the URL, and a message per "More filters" field that is not a number. The form's
    range fields (``<parameter>.min``, ``.max``, ``.unit``) become ``parameter=name:low..high:unit``."""
    params: dict[str, Any] = {k: [v for v in request.args.getlist(k) if v] for k in LISTED}
    params = {k: v for k, v in params.items() if v}
    for name in ("q", "page", "size", "sort", "mode", "year_from", "year_to", "public"):
        if request.args.get(name):
            params[name] = request.args[name]
    errors: dict[str, str] = {}
    for name, (_label, units) in RANGES.items():
        low, high = (request.args.get(f"{name}.{end}", "").strip() for end in ("min", "max"))
        for end, value in (("min", low), ("max", high)):
            if value and not NUMBER.match(value):
                errors[f"{name}.{end}"] = "a number, e.g. 280 or 1.5e-10"
        unit = request.args.get(f"{name}.unit") if request.args.get(f"{name}.unit") in units else units[0]
        if (low or high) and f"{name}.min" not in errors and f"{name}.max" not in errors:
            params.setdefault("parameter", []).append(f"{name}:{low}..{high}:{unit}")
    for name in ("year_from", "year_to"):
        if params.get(name) and not params[name].isdigit():
            errors[name] = "a year, e.g. 2021"
    if params.get("year_from", "").isdigit() and params.get("year_to", "").isdigit() \
            and int(params["year_from"]) > int(params["year_to"]):
        errors["year_to"] = f"a year from {params['year_from']} on (From is the earlier year)"
    for name in RANGES:
        low, high = (request.args.get(f"{name}.{end}", "").strip() for end in ("min", "max"))
        if low and high and NUMBER.match(low) and NUMBER.match(high) and float(low) > float(high):
            errors[f"{name}.max"] = f"at least {low} (From is the lower end)"
    return params, errors


def _without_range(params: dict[str, Any], name: str) -> str:
    """The search without the range filter on ``name``."""
    kept = [p for p in params.get("parameter", []) if not p.startswith(f"{name}:")]
    return _url(params, parameter=kept, page=None)


def ranges_chosen(params: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The chosen ranges by parameter (min, max, unit), to fill the form and list the active filters."""
    chosen = {}
    for text in params.get("parameter", []):
        name, _, rest = text.partition(":")
        bounds, _, unit = rest.partition(":")
        low, _, high = bounds.partition("..")
        chosen[name] = {"min": low, "max": high, "unit": unit}
    return chosen


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


def _tidy(params: dict[str, Any]) -> str | None:
    """The URL of this search without the empty fields a submitted form carries, when it has any."""
    clean = _url(params)
    sent = sorted(request.args.items(multi=True))
    return clean if sent != sorted(parse_qsl(urlsplit(clean).query)) else None


@blueprint.get("/search")
def search_page() -> tuple[str, int] | str | Response:
    params, field_errors = _params()
    shared = {"params": params, "field_errors": field_errors, "ranges": RANGES, "chosen_ranges": ranges_chosen(params),
              "url": _url, "without_range": _without_range}
    if not field_errors and (clean := _tidy(params)):
        return redirect(clean, 303)
    try:
        if field_errors:
            raise InvalidInput("some filters are not right")
        page = broker().search_pages.view(params)
    except InvalidInput as exc:
        return render_template("search.html", result=None, errors=exc.errors, query=None, document=None,
                               **shared), 400
    if page.dataset is not None:
        return redirect(f"/datasets/{quote(page.dataset, safe='/')}", 303)
    query, result = page.query, page.result
    pages = max(1, -(-result.total // query.size))
    suggestions = [(s.label, _url(s.params, page=None), s.count) for s in page.suggestions]
    return render_template("search.html", result=result, errors=(), query=query, pages=pages, toggle=_toggle,
                           chosen=_chosen, facet_titles=FACET_TITLES, suggestions=suggestions, document=page.document,
                           names=page.names, failed=result.unanswered, **shared)


@blueprint.get("/datasets/<path:pid>")
def dataset_page(pid: str) -> str:
    return render_dataset(pid)


def render_dataset(pid: str, form: Any = None, errors: dict[str, str] | None = None, summary: str = "",
                   existing: list[Any] | None = None, panel: AnalysePanel | None = None) -> str:
    """The dataset with its "Analyse" panel (``panel``, when the caller has read it already); after a
    refused launch, with the user's choices and the message beside each field."""
    person = viewer()
    panel = panel or broker().analyse.panel(person, pid)
    return render_template("dataset.html", dataset=panel.dataset, candidates=panel.candidates,
                           services=panel.services, offers=panel.offers, home=panel.home, choices=panel.choices,
                           idempotency_key=str(uuid.uuid4()), signed_in=person is not None, plain=plain,
                           form=form or {}, errors=errors or {}, summary=summary, running=existing or panel.running,
                           offered_existing=existing is not None, names=panel.facility_names,
                           previews=panel.previews)
