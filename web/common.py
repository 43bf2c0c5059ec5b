"""What every portal page shares: the blueprint, the signed-in viewer, CSRF protection of forms, and
error pages.

A form's CSRF token is an HMAC of the browser's session id (a secret the page's script cannot read:
the cookie is HttpOnly), so only a page the broker served to that session can post; posts from another
origin are refused by their Origin header as well.
"""
from __future__ import annotations

import hashlib
import re
import hmac
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, g, render_template, request
from flask_compress import Compress
from markupsafe import Markup

from broker.authz import Principal
from panmodel.errors import BrokerError
from web.auth import COOKIE

blueprint = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                      static_url_path="/static/web")


def broker() -> Any:  # panbroker.app.Broker
    return current_app.extensions["panbroker"]


def viewer() -> Principal | None:
    """The signed-in person of this request, or None."""
    if "viewer" not in g:
        g.viewer = broker().auth.sessions.principal(request.cookies.get(COOKIE))
    return g.viewer


def require_viewer() -> Principal:
    found = viewer()
    if found is None:
        abort(401)
    return found


def csrf_token() -> str:
    session_id = request.cookies.get(COOKIE) or ""
    return hmac.new(session_id.encode(), b"panbroker-form", hashlib.sha256).hexdigest() if session_id else ""


@blueprint.app_template_global()
def csrf_field() -> Markup:
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(csrf_token())


def same_origin() -> bool:
    """False when the request says it comes from another site (its Origin header names another host)."""
    origin = request.headers.get("Origin")
    return not origin or urlsplit(origin).netloc == request.host


@blueprint.before_request
def check_form_origin_and_token() -> None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if not same_origin():
        abort(403, "this form was posted from another site")
    expected = csrf_token()
    if not expected or not hmac.compare_digest(expected, request.form.get("csrf_token", "")):
        abort(403, "the form has expired or did not come from this site: reload the page and try again")


# no inline script or style, nothing from another origin; no framing (clickjacking)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'")
VERSION_ETAG = re.compile(r"^\d+(?:\.[0-9a-f]+)?$")  # a registry object's: If-Match names it as it is
STATIC_MAX_AGE = 3600  # seconds a browser keeps the portal's CSS and JS before asking again (ETag)


@blueprint.record_once
def compress_responses(state: Any) -> None:
    """gzip or brotli, as the browser accepts, for the app's pages, JSON, CSS and JS. A response whose ETag
    is a registry object's version is left as it is: compressing would make it "<version>:br", which an
    If-Match of that object then no longer names."""
    state.app.config.setdefault("COMPRESS_ALGORITHM", ["br", "gzip"])
    # static files are streamed: let a repeated request with the compressed file's ETag get a 304
    state.app.config.setdefault("COMPRESS_STREAMING_ENDPOINT_CONDITIONAL", ["static", "web.static"])
    state.app.config["COMPRESS_REGISTER"] = False
    compress = Compress(state.app)

    @state.app.after_request
    def _compressed(response: Response) -> Response:
        if request.path.startswith("/api/") and VERSION_ETAG.match(response.get_etag()[0] or ""):
            return response
        if response.status_code in (204, 304):  # no body: nothing to compress, nor to vary on
            return response
        return compress.after_request(response)


@blueprint.after_request
def security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if request.endpoint == "web.static" and response.status_code in (200, 304):
        response.cache_control.public = True
        response.cache_control.max_age = STATIC_MAX_AGE
    elif "Cache-Control" not in response.headers:
        response.cache_control.no_cache = True  # pages show live state: revalidate every time
    return response


@blueprint.app_context_processor
def page_globals() -> dict[str, Any]:
    person = viewer() if request.blueprint in ("web", None) else None
    return {"viewer": person, "is_operator": bool(person and person.operates_any)}


def error_page(status: int, title: str, detail: str) -> tuple[str, int]:
    return render_template("error.html", status=status, title=title, detail=detail), status


@blueprint.errorhandler(BrokerError)
def broker_error(exc: BrokerError) -> tuple[str, int]:
    return error_page(exc.status, exc.title, exc.detail)


@blueprint.errorhandler(401)
def unauthenticated(_exc: Exception) -> tuple[str, int]:
    return error_page(401, "Sign in first", "This page shows your own sessions and settings: sign in to see it.")


@blueprint.errorhandler(403)
def forbidden(exc: Any) -> tuple[str, int]:
    return error_page(403, "Not allowed", getattr(exc, "description", "") or "You may not do this.")


@blueprint.errorhandler(404)
def not_found(exc: Any) -> tuple[str, int]:
    return error_page(404, "Not found", "There is no such page.")
