""""Analyse this DOI": a stable link any paper or catalogue can carry, ``/analyse/<DOI>``, that resolves the
DOI to its datasets across facilities and opens the Analyse step (after sign-in when needed), with
``?service=`` and ``?profile=`` preselected; and the badge image such a link shows."""
from __future__ import annotations

from urllib.parse import quote, urlencode
from xml.sax.saxutils import escape

from flask import Response, redirect, render_template, request

from web.common import blueprint, broker, viewer
from web.search_pages import render_dataset


def _preselected(args: dict[str, str]) -> str:
    chosen = {k: args[k] for k in ("service", "profile") if args.get(k)}
    return f"?{urlencode(chosen)}" if chosen else ""


@blueprint.get("/analyse/<path:doi>")
def analyse_doi(doi: str) -> Response | str | tuple[str, int]:
    view = broker().analyse.doi(viewer(), doi, request.args.get("service", "").strip(),
                                request.args.get("profile", "").strip())
    if view.sign_in:
        back = f"/analyse/{quote(view.doi, safe='/')}" + _preselected(request.args)
        return redirect("/signin?" + urlencode({"next": back}), 303)
    if view.panel is None:
        return render_template("analyse_doi.html", doi=view.doi, groups=view.groups, count=view.count,
                               preselected=_preselected(request.args), quote=quote)
    return render_dataset(view.panel.dataset.pid, view.chosen, {}, view.note, panel=view.panel)


@blueprint.get("/analyse-badge.svg")
def analyse_badge() -> Response:
    """A small "Analyse | N datasets" badge; without ``doi`` (or for an unknown one) it reads "Analyse | PaN data"."""
    count = broker().analyse.doi_count(request.args.get("doi", ""))
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
