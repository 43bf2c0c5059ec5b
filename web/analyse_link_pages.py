""""Analyse this DOI": a stable link any paper or catalogue can carry, ``/analyse/<DOI>``, that resolves the
DOI to its datasets across facilities and opens the Analyse step (after sign-in when needed), with
``?service=`` and ``?profile=`` preselected; and the badge image such a link shows."""
from __future__ import annotations

from urllib.parse import quote, urlencode
from xml.sax.saxutils import escape

from flask import Response, redirect, render_template, request

from panmodel.errors import NotFound
from panmodel.datasets import Dataset, SearchRequest, Sort
from web.common import blueprint, broker, viewer
from web.search_pages import render_dataset

MAX_DATASETS = 100
MAX_DOI = 500
PREFIXES = ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "doi:")


def normalise(doi: str) -> str:
    doi = doi.strip()
    for prefix in PREFIXES:
        if doi.lower().startswith(prefix):
            return doi[len(prefix):]
    return doi


def datasets_of(doi: str) -> list[Dataset]:
    """The datasets the DOI names: the dataset with that DOI, else every dataset of the proposal or
    publication with that DOI, across facilities (pid order)."""
    if not doi or len(doi) > MAX_DOI:
        return []
    own = broker().index.get(doi)
    if own is not None:
        return [own]
    result = broker().index.search(SearchRequest(documents=(doi,), limit=MAX_DATASETS, sort=Sort.PID))
    return result.items


def _preselected(args: dict[str, str]) -> str:
    chosen = {k: args[k] for k in ("service", "profile") if args.get(k)}
    return f"?{urlencode(chosen)}" if chosen else ""


@blueprint.get("/analyse/<path:doi>")
def analyse_doi(doi: str) -> Response | str | tuple[str, int]:
    doi = normalise(doi)
    datasets = datasets_of(doi)
    if not datasets:
        raise NotFound(f"No dataset with the DOI {doi} or belonging to it is known at any facility of the "
                       "federation yet. Check the DOI, or search for the dataset.")
    service, profile = request.args.get("service", "").strip(), request.args.get("profile", "").strip()
    person = viewer()
    if person is None:
        back = f"/analyse/{quote(doi, safe='/')}" + _preselected(request.args)
        return redirect("/signin?" + urlencode({"next": back}), 303)
    if len(datasets) > 1:
        by_facility: dict[str, list[Dataset]] = {}
        for dataset in datasets:
            by_facility.setdefault(dataset.facility, []).append(dataset)
        return render_template("analyse_doi.html", doi=doi, by_facility=by_facility, count=len(datasets),
                               preselected=_preselected(request.args), quote=quote)
    panel = broker().analyse.panel(person, datasets[0].pid)
    form, notes = {}, []
    if service:
        if service in {offer.service_id for offer in panel.offers}:
            form["service_id"] = service
        else:
            notes.append(f"The link asks for the service {service!r}, which cannot take this dataset for you: "
                         "choose one of those offered.")
    if profile:
        form["profile"] = profile
    return render_dataset(panel.dataset.pid, form, {}, " ".join(notes), panel=panel)


@blueprint.get("/analyse-badge.svg")
def analyse_badge() -> Response:
    """A small "Analyse | N datasets" badge; without ``doi`` (or for an unknown one) it reads "Analyse | PaN data"."""
    doi = normalise(request.args.get("doi", ""))
    count = len(datasets_of(doi)) if doi else 0
    value = f"{count} dataset{'s' if count != 1 else ''}" if count else "PaN data"
    label = "Analyse"
    left, right = 8 + 7 * len(label), 10 + 7 * len(value)
    width = left + right
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
           f'aria-label="{escape(label)}: {escape(value)}"><title>{escape(label)}: {escape(value)}</title>'
           f'<rect width="{left}" height="20" rx="3" fill="#555"/>'
           f'<rect x="{left}" width="{right}" height="20" rx="3" fill="#1f6feb"/>'
           f'<g fill="#fff" font-family="DejaVu Sans,Verdana,sans-serif" font-size="11">'
           f'<text x="{left / 2}" y="14" text-anchor="middle">{escape(label)}</text>'
           f'<text x="{left + right / 2}" y="14" text-anchor="middle">{escape(value)}</text></g></svg>')
    return Response(svg, content_type="image/svg+xml; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=3600"})
