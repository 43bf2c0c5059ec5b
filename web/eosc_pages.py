"""The operator console's EOSC completeness page: for each service of a facility, whether the catalogue
would accept its profile, what is missing or invalid, the rule and catalogue version each comes from,
and where in the registry to fill it."""
from __future__ import annotations

from flask import abort, render_template

from broker.registry_kinds import KINDS
from web.common import blueprint, broker, require_viewer


@blueprint.get("/operator/<facility_id>/eosc-completeness")
def operator_eosc_completeness(facility_id: str) -> str:
    person = require_viewer()
    facility = broker().registry.get(KINDS.facility, facility_id)
    if not person.can_write(facility_id):
        abort(403, f"you are not an operator of {facility['name']}")
    return render_template("eosc_completeness.html", facility=facility,
                           report=broker().eosc.completeness(facility_id))
