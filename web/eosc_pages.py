"""The operator console's EOSC completeness page: for each service of a facility, whether the catalogue
would accept its profile, what is missing or invalid, the rule and catalogue version each comes from,
and where in the registry to fill it."""
from __future__ import annotations

from flask import render_template

from web.common import blueprint, broker, require_viewer


@blueprint.get("/operator/<facility_id>/eosc-completeness")
def operator_eosc_completeness(facility_id: str) -> str:
    view = broker().operator.completeness(require_viewer(), facility_id)
    return render_template("eosc_completeness.html", facility=view.facility, report=view.report)
