"""Search and dataset pages. The search page renders from the index (mode=live is the user's explicit
choice); the URL holds the whole search, so it can be shared."""
from __future__ import annotations

import re
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
# the ranges the "More filters" form offers: parameter -> (label, units offered, first the default)
RANGES = {"sample_temperature": ("Sample temperature", ("K", "°C")),
          "incident_wavelength": ("Incident wavelength", ("Å", "nm")),
          "incident_photon_energy": ("Photon energy", ("keV", "eV")),
          "sample_pressure": ("Sample pressure", ("bar", "kPa", "GPa"))}
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _params() -> tuple[dict[str, Any], dict[str, str]]:
    """The search in the URL, and a message per "More filters" field that is not a number. The form's
    range fields (``<parameter>.min``, ``.max``, ``.unit``) become ``parameter=name:low..high:unit``."""
    params: dict[str, Any] = {k: request.args.getlist(k) for k in LISTED if request.args.getlist(k)}
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


@blueprint.get("/search")
def search_page() -> tuple[str, int] | str:
    params, field_errors = _params()
    shared = {"params": params, "field_errors": field_errors, "ranges": RANGES, "chosen_ranges": ranges_chosen(params),
              "url": _url, "without_range": _without_range}
    try:
        if field_errors:
            raise InvalidInput("some filters are not numbers")
        query = parse_query(params)
    except InvalidInput as exc:
        return render_template("search.html", result=None, errors=exc.errors, query=None, **shared), 400
    result = broker().search.search(query)
    pages = max(1, -(-result.total // query.size))
    return render_template("search.html", result=result, errors=(), query=query, pages=pages, toggle=_toggle,
                           chosen=_chosen, facet_titles=FACET_TITLES,
                           failed=[s for s in result.sources if s.status in ("timeout", "error")], **shared)


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
        facility=sorted({c["facility_id"] for c in candidates}))} if candidates else {}
    return render_template("dataset.html", dataset=dataset, candidates=candidates, services=services,
                           choices=_choices([services[c["service_id"]] for c in candidates
                                             if c["fits"] and c["service_id"] in services]),
                           offers_gpu=any(services[c["service_id"]]["capabilities"]["gpu"] for c in candidates
                                          if c["fits"] and c["service_id"] in services),
                           idempotency_key=str(uuid.uuid4()), signed_in=person is not None,
                           form=form or {}, errors=errors or {}, summary=summary)


def _choices(fitting: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The partitions, profiles and plans the fitting services offer, for the Analyse panel's selects."""
    offered: dict[str, dict[str, None]] = {"partition": {}, "profile": {}, "plan": {}}
    for service in fitting:
        for name, values in offered.items():
            values.update(dict.fromkeys(service["capabilities"][f"{name}s"]))
    return {name: list(values) for name, values in offered.items() if values}
