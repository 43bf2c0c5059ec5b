"""``/oai``: the broker as an OAI-PMH 2.0 data provider (GET and POST, as the protocol allows)."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from broker.oai.provider import for_broker

blueprint = Blueprint("oai", __name__)


@blueprint.route("/oai", methods=["GET", "POST"])
def oai() -> Response:
    args = request.form if request.method == "POST" else request.args
    body = for_broker(current_app.extensions["panbroker"]).handle({name: args.getlist(name) for name in args})
    return Response(body, content_type="text/xml; charset=utf-8")

