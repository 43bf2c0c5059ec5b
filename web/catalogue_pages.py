"""The services catalogue (the live version of the report's tables) and one page per facility: kind,
health with a latency history drawn as inline SVG, EOSC registration; filters; CSV and JSON export."""
from __future__ import annotations

import json
from typing import Any

from flask import render_template, request
from markupsafe import Markup
from werkzeug.wrappers import Response

from panmodel.states import EoscStatus, HealthStatus, TargetType
from connectors import kinds
from web.common import blueprint, broker

def _filters() -> dict[str, Any]:
    filters: dict[str, Any] = {}
    for name in ("facility", "kind"):
        if request.args.getlist(name):
            filters[name] = [v for v in request.args.getlist(name) if v]
    for name in ("status", "eosc_status", "scientific_domain"):
        if request.args.get(name):
            filters[name] = request.args[name]
    if request.args.get("gpu") in ("true", "false"):
        filters["gpu"] = request.args["gpu"] == "true"
    return {k: v for k, v in filters.items() if v not in ([], None, "")}


def sparkline(history: list[dict[str, Any]], width: int = 120, height: int = 28) -> Markup:
    """Latency of the last checks, oldest first, as an inline SVG; failed checks are red marks."""
    points = list(reversed(history))
    if not points:
        return Markup('<span class="muted">no checks yet</span>')
    latencies = [p["latency_ms"] for p in points if p["latency_ms"] is not None]
    top = max(latencies) if latencies else 1.0
    step = width / max(1, len(points) - 1)
    line, marks = [], []
    for i, point in enumerate(points):
        x = round(i * step, 1)
        if point["latency_ms"] is None or point["status"] != "up":
            marks.append(f'<rect x="{max(0, x - 1.5)}" y="0" width="3" height="{height}" fill="#a4001d"/>')
        if point["latency_ms"] is not None:
            line.append(f"{x},{round(height - 2 - (height - 4) * point['latency_ms'] / top, 1)}")
    last = next((p for p in reversed(points) if p["latency_ms"] is not None), None)
    label = (f"latency of the last {len(points)} checks, up to {top:.0f} ms"
             + (f", latest {last['latency_ms']:.0f} ms" if last else "")
             + (f", {len(marks)} failed" if marks else ""))
    if len(line) > 1:
        polyline = f'<polyline fill="none" stroke="#0a4ea3" stroke-width="1.5" points="{" ".join(line)}"/>'
    elif line:  # one check so far: a dot
        x, y = line[0].split(",")
        polyline = f'<circle cx="{max(3.0, float(x))}" cy="{y}" r="2.5" fill="#0a4ea3"/>'
    else:
        polyline = ""
    return Markup(f'<svg class="spark" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
                  f'<title>{Markup.escape(label)}</title>{"".join(marks)}{polyline}</svg>')


def _charts(histories: dict[str, list[dict[str, Any]]]) -> dict[str, Markup]:
    return {target_id: sparkline(history) for target_id, history in histories.items()}


@blueprint.get("/services")
def services_page() -> Response | str:
    filters = _filters()
    wanted = request.args.get("format")
    if wanted in ("csv", "json"):
        return _export(broker().catalogue.services(**filters), wanted)
    view = broker().catalogue.services_view(**filters)
    return render_template("services.html", items=view.items, filters=filters, facilities=view.facilities,
                           kinds=kinds(TargetType.SERVICE), statuses=[s.value for s in HealthStatus],
                           eosc_statuses=[s.value for s in EoscStatus], charts=_charts(view.histories),
                           query=request.query_string.decode())


def _export(items: list[dict[str, Any]], wanted: str) -> Response:
    if wanted == "csv":
        return Response(broker().catalogue.to_csv(items), mimetype="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="panbroker-services.csv"'})
    return Response(json.dumps({"items": items, "total": len(items)}), mimetype="application/json",
                    headers={"Content-Disposition": 'attachment; filename="panbroker-services.json"'})


@blueprint.get("/facilities")
def facilities_page() -> str:
    return render_template("facilities.html", facilities=broker().landing.facilities())


@blueprint.get("/facilities/<facility_id>")
def facility_page(facility_id: str) -> str:
    view = broker().catalogue.facility_view(facility_id)
    return render_template("facility.html", facility=view.facility, items=view.items, endpoints=view.endpoints,
                           charts=_charts(view.histories), issuers=view.issuers)
