"""``/oai``: the broker as an OAI-PMH 2.0 data provider (GET and POST, as the protocol allows)."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, request

from broker.oai.provider import OaiProvider, Repository
from broker.registry_kinds import KINDS

blueprint = Blueprint("oai", __name__)
DOMAIN = re.compile(r"^[A-Za-z][A-Za-z0-9-]*(\.[A-Za-z][A-Za-z0-9-]*)+$")


def provider() -> OaiProvider:
    broker = current_app.extensions["panbroker"]
    settings = broker.settings
    public = settings.effective_public_url
    host = urlsplit(public).hostname or "localhost"
    identifier = settings.oai_repository_identifier or (host if DOMAIN.match(host) else "panbroker.invalid")
    repository = Repository(name=settings.oai_repository_name, base_url=public + "/oai", identifier=identifier,
                            admin_email=settings.oai_admin_email or f"panbroker@{identifier}", portal_url=public,
                            page_size=max(1, settings.oai_page_size))

    def facility_names() -> dict[str, str]:
        return {f["id"]: f["name"] for f in broker.registry.list(KINDS.facility, limit=500).items}

    return OaiProvider(broker.store, broker.index, repository, facility_names)


@blueprint.route("/oai", methods=["GET", "POST"])
def oai() -> Response:
    args = request.form if request.method == "POST" else request.args
    body = provider().handle({name: args.getlist(name) for name in args})
    return Response(body, content_type="text/xml; charset=utf-8")
