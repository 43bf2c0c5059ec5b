"""``/panosc/api``: the broker as a federated PaNOSC Search API, answering from the index.

Errors use LoopBack's shape, as PaNOSC clients expect; which facilities the answer covers is in the
``X-PaN-Sources`` header (``facility=status`` pairs) and ``X-PaN-Partial``.
"""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from broker.errors import BrokerError
from broker.search.loopback import FilterError
from broker.search.panosc_compat import PanoscCompat

blueprint = Blueprint("panosc", __name__, url_prefix="/panosc/api")


def _compat() -> PanoscCompat:
    return PanoscCompat(current_app.extensions["panbroker"].search)


def _error(status: int, message: str) -> tuple[Response, int]:
    name = {400: "BadRequestError", 404: "Error", 422: "ValidationError"}.get(status, "Error")
    return jsonify({"error": {"statusCode": status, "name": name, "message": message}}), status


@blueprint.errorhandler(FilterError)
def _filter_error(exc: FilterError) -> tuple[Response, int]:
    return _error(400, str(exc))


@blueprint.errorhandler(BrokerError)
def _broker_error(exc: BrokerError) -> tuple[Response, int]:
    return _error(400 if exc.status == 422 else exc.status, exc.detail)


@blueprint.get("/Datasets")
def datasets() -> Response:
    records, result = _compat().datasets(request.args.get("filter"), request.args.get("query"))
    response = jsonify(records)
    response.headers["X-PaN-Sources"] = ",".join(f"{s.facility}={s.status.value}" for s in result.sources)
    response.headers["X-PaN-Partial"] = str(result.partial).lower()
    return response


@blueprint.get("/Datasets/count")
def count() -> Response:
    return jsonify({"count": _compat().count(request.args.get("where"))})


@blueprint.get("/Datasets/<path:pid>")
def dataset(pid: str) -> Response | tuple[Response, int]:
    found = _compat().dataset(pid, request.args.get("filter"))
    return jsonify(found) if found else _error(404, f'Unknown "Dataset" id "{pid}".')


@blueprint.get("/Instruments")
def instruments() -> Response:
    return jsonify(_compat().instruments(request.args.get("filter")))


@blueprint.get("/Documents/<path:pid>")
def document(pid: str) -> Response | tuple[Response, int]:
    if pid == "count":
        return jsonify({"count": _compat().count_documents(request.args.get("where"))})
    found = _compat().document(pid)
    return jsonify(found) if found else _error(404, f'Unknown "Document" id "{pid}".')


@blueprint.get("/Documents")
def documents() -> Response:
    records, _ = _compat().documents(request.args.get("filter"), request.args.get("query"))
    return jsonify(records)
