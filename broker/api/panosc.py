"""``/panosc/api``: the broker as a PaNOSC Search API (the reference's paths, shapes, errors and CORS),
answering from the harvested index; ``/panosc/live/api`` (or the header ``X-PaN-Mode: live``) answers
Datasets live from the facilities instead.

Filters come as JSON or in LoopBack's bracket form (``filter[where][size][gt]=1500``). The API is read-only
(other methods are LoopBack 404s). Errors use LoopBack's shape, as PaNOSC clients expect. Which facilities
an answer covers is in the ``X-PaN-Sources`` header (``facility=status`` pairs), whether some are missing
in ``X-PaN-Partial``, whether a count is exact in ``X-PaN-Total-Exact`` (only when it is not), and where
the answer came from (``index`` or ``live``) in ``X-PaN-Mode``.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from panmodel.errors import BrokerError
from panmodel.datasets import SearchResult
from broker.search.panosc.compat import PanoscCompat
from broker.search.panosc.filters import FilterError, filter_text
from broker.search.service import Mode

blueprint = Blueprint("panosc", __name__, url_prefix="/panosc")
PREFIXES = ("/api", "/live/api")
MODELS = {"Datasets": "Dataset", "Documents": "Document", "Instruments": "Instrument"}
#: as the reference's CORS middleware answers (observed): any origin, with credentials
ALLOW_METHODS = "GET,HEAD,PUT,PATCH,POST,DELETE"
MAX_AGE = "86400"
EXPOSED = "X-PaN-Sources, X-PaN-Partial, X-PaN-Mode, X-PaN-Total-Exact"


def _compat() -> PanoscCompat:
    return PanoscCompat(current_app.extensions["panbroker"].search)


def _mode() -> Mode:
    live = request.path.startswith("/panosc/live/") or request.headers.get("X-PaN-Mode", "").lower() == "live"
    return Mode.LIVE if live else Mode.INDEX


def _route(path: str, **options: Any):  # noqa: ANN202 - a decorator
    """Registers a view under both prefixes (index and live answers)."""
    def register(view):  # noqa: ANN001, ANN202
        for prefix in PREFIXES:
            blueprint.add_url_rule(prefix + path, f"{view.__name__}{prefix.replace('/', '_')}", view,
                                   methods=["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"], **options)
        return view
    return register


def _error(status: int, message: str, code: str | None = None) -> tuple[Response, int]:
    name = {400: "BadRequestError", 422: "ValidationError"}.get(status, "Error")
    body: dict[str, Any] = {"statusCode": status, "name": name, "message": message}
    if code:
        body["code"] = code
    return jsonify({"error": body}), status


def _not_found(model: str, pid: str) -> tuple[Response, int]:
    return _error(404, f'Unknown "{model}" id "{pid}".', "MODEL_NOT_FOUND")


def _sourced(response: Response, result: SearchResult | None, mode: Mode) -> Response:
    if result is not None:
        response.headers["X-PaN-Sources"] = ",".join(f"{s.facility}={s.status.value}" for s in result.sources)
        response.headers["X-PaN-Partial"] = str(result.partial).lower()
        if not result.total_exact:
            response.headers["X-PaN-Total-Exact"] = "false"
    response.headers["X-PaN-Mode"] = mode.value
    return response


@blueprint.before_request
def _preflight_and_methods() -> Response | tuple[Response, int] | None:
    if request.method == "OPTIONS":
        response = Response(status=204)
        response.headers["Vary"] = "Origin, Access-Control-Request-Headers"
        response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
        if request.headers.get("Access-Control-Request-Headers"):
            response.headers["Access-Control-Allow-Headers"] = request.headers["Access-Control-Request-Headers"]
        response.headers["Access-Control-Max-Age"] = MAX_AGE
        return response
    if request.method not in ("GET", "HEAD"):  # the broker's PaNOSC API is read-only
        return _error(404, f"There is no method to handle {request.method} {_tail()}")
    return None


@blueprint.after_request
def _cors(response: Response) -> Response:
    origin = request.headers.get("Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED
        if "Origin" not in response.headers.get("Vary", ""):
            response.headers.add("Vary", "Origin")
    response.headers["Access-Control-Allow-Credentials"] = "true"
    if request.method != "OPTIONS":
        response.headers.add("Vary", "X-PaN-Mode")  # the header asks for live answers on the same URL
    return response


@blueprint.errorhandler(FilterError)
def _filter_error(exc: FilterError) -> tuple[Response, int]:
    return _error(400, str(exc))


@blueprint.errorhandler(BrokerError)
def _broker_error(exc: BrokerError) -> tuple[Response, int]:
    return _error(400 if exc.status == 422 else exc.status, exc.detail)


def _arg(name: str) -> str | None:
    return filter_text(request.args, name)


def _tail() -> str:
    for prefix in ("/panosc/live/api", "/panosc/api"):
        if request.path.startswith(prefix):
            return request.path[len(prefix):] or "/"
    return request.path


# -- Datasets -------------------------------------------------------------------------------------

@_route("/Datasets")
def datasets() -> Response:
    answer = _compat().datasets(_arg("filter"), request.args.get("query"), _mode())
    return _sourced(jsonify(answer.records), answer.result, answer.mode)


@_route("/Datasets/count")
def count() -> Response:
    mode = _mode()
    total, result = _compat().count(_arg("where"), mode)
    return _sourced(jsonify({"count": total}), result, mode)


@_route("/Datasets/<path:pid>/files")
def dataset_files(pid: str) -> Response | tuple[Response, int]:
    found = _compat().files(pid, _arg("filter"))
    if found is None:
        return _error(404, f"could not find a model with id {pid}", "MODEL_NOT_FOUND")
    response = jsonify(found[0])
    response.headers["X-PaN-Partial"] = str(not found[1]).lower()  # the harvest cut the dataset's file list
    return _sourced(response, None, Mode.INDEX)


@_route("/Datasets/<path:pid>/files/count")
def dataset_files_count(pid: str) -> Response | tuple[Response, int]:
    found = _compat().count_files(pid, _arg("where"))
    if found is None:
        return _error(404, f"could not find a model with id {pid}", "MODEL_NOT_FOUND")
    response = jsonify({"count": found[0]})
    response.headers["X-PaN-Partial"] = str(not found[1]).lower()
    return _sourced(response, None, Mode.INDEX)


@_route("/Datasets/<path:pid>")
def dataset(pid: str) -> Response | tuple[Response, int]:
    mode = _mode()
    found = _compat().dataset(pid, _arg("filter"), mode)
    return _sourced(jsonify(found), None, mode) if found else _not_found("Dataset", pid)


# -- Documents and Instruments (from the index in either mode) ------------------------------------

@_route("/Documents")
def documents() -> Response:
    records, _ = _compat().documents(_arg("filter"), request.args.get("query"))
    return _sourced(jsonify(records), None, Mode.INDEX)


@_route("/Documents/count")
def documents_count() -> Response:
    return _sourced(jsonify({"count": _compat().count_documents(_arg("where"))}), None, Mode.INDEX)


@_route("/Documents/<path:pid>")
def document(pid: str) -> Response | tuple[Response, int]:
    found = _compat().document(pid, _arg("filter"))
    return _sourced(jsonify(found), None, Mode.INDEX) if found else _not_found("Document", pid)


def _instruments_answer(compat: PanoscCompat, body: Any) -> Response:
    response = _sourced(jsonify(body), None, Mode.INDEX)
    response.headers["X-PaN-Partial"] = str(not compat.instruments_complete).lower()
    return response


@_route("/Instruments")
def instruments() -> Response:
    compat = _compat()
    return _instruments_answer(compat, compat.instruments(_arg("filter")))


@_route("/Instruments/count")
def instruments_count() -> Response:
    compat = _compat()
    return _instruments_answer(compat, {"count": compat.count_instruments(_arg("where"))})


@_route("/Instruments/<path:pid>")
def instrument(pid: str) -> Response | tuple[Response, int]:
    found = _compat().instrument(pid, _arg("filter"))
    return _sourced(jsonify(found), None, Mode.INDEX) if found else _not_found("Instrument", pid)


# -- anything else: LoopBack's 404 ----------------------------------------------------------------

@_route("", defaults={"rest": ""})
@_route("/", defaults={"rest": ""})
@_route("/<path:rest>")
def unknown(rest: str) -> tuple[Response, int]:
    model, _, tail = rest.partition("/")
    if model in MODELS:
        return _error(404, f'Shared class "{MODELS[model]}" has no method handling {request.method} /{tail}')
    return _error(404, f"There is no method to handle {request.method} {_tail()}")
