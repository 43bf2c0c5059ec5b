"""Sign-in pages: start a login at an identity provider, its callback, linking, logout.

A sign-in is bound to the browser that starts it by a random cookie (``panbroker_login``) whose hash the
login transaction keeps; the callback is accepted only with that cookie. Linking an identity and signing
out are POSTs carrying the page's CSRF token.
"""
from __future__ import annotations

import hmac
import secrets
from typing import Callable

from flask import Blueprint, Response, abort, current_app, jsonify, redirect, render_template, request

from broker.auth import AuthService, LoginRefused

COOKIE = "panbroker_session"
LOGIN_COOKIE = "panbroker_login"
blueprint = Blueprint("auth", __name__, url_prefix="/auth")


def _auth() -> AuthService:
    return current_app.extensions["panbroker"].auth


def _secure() -> bool:
    return _auth().public_url.startswith("https://")


def _bound_redirect(start: Callable[[str], str]) -> Response:
    """Redirect to the provider URL ``start`` builds for this browser, setting the login cookie."""
    browser = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    response = redirect(start(browser), 302)
    response.set_cookie(LOGIN_COOKIE, browser, max_age=600, httponly=True, samesite="Lax", path="/auth",
                        secure=_secure())
    return response


def _problem(status: int, suffix: str, title: str, detail: str) -> tuple[Response, int]:
    response = jsonify({"type": f"urn:panbroker:problem:{suffix}", "title": title, "status": status,
                        "detail": detail})
    response.content_type = "application/problem+json"
    return response, status


def _check_form() -> None:
    """A POST from a page of this site, in this session: same Origin (when sent) and the CSRF token."""
    from web.common import csrf_token, same_origin  # web.common imports this module

    if not same_origin():
        abort(403, "this form was posted from another site")
    expected = csrf_token()
    if not expected or not hmac.compare_digest(expected, request.form.get("csrf_token", "")):
        abort(403, "the form has expired or did not come from this site: reload the page and try again")


@blueprint.get("/providers")
def providers() -> Response:
    return jsonify(_auth().available())


@blueprint.get("/login/<issuer>")
def login(issuer: str) -> Response:
    return _bound_redirect(lambda browser: _auth().login.start(issuer, request.args.get("next"), browser))


@blueprint.get("/link/<issuer>")
def link_confirmation(issuer: str) -> Response | tuple[Response, int]:
    """What linking does, and the button (a POST with the CSRF token) that starts it."""
    principal = _auth().sessions.principal(request.cookies.get(COOKIE))
    if principal is None:
        return _problem(401, "unauthenticated", "Sign in first",
                        "linking an identity needs the session of the first one")
    provider = next((p for p in _auth().available() if p.name == issuer), None)
    if provider is None:
        return _problem(404, "not-found", "Not found", f"no sign-in with {issuer!r}")
    return render_template("link_confirm.html", provider=provider, next_url=request.args.get("next") or "/account")


@blueprint.post("/link/<issuer>")
def link(issuer: str) -> Response | tuple[Response, int]:
    if _auth().sessions.principal(request.cookies.get(COOKIE)) is None:
        return _problem(401, "unauthenticated", "Sign in first",
                        "linking an identity needs the session of the first one")
    _check_form()
    return _bound_redirect(lambda browser: _auth().login.link_start(request.cookies.get(COOKIE), issuer,
                                                                    request.form.get("next"), browser))


@blueprint.get("/callback")
def callback() -> Response | tuple[Response, int]:
    try:
        done = _auth().login.finish(request.args.to_dict(), request.cookies.get(LOGIN_COOKIE),
                              request.cookies.get(COOKIE))
    except LoginRefused as exc:
        return _problem(400, "login-refused", "Sign-in refused", exc.detail)
    response = redirect(done.next_url, 302)
    response.set_cookie(COOKIE, done.session_id, httponly=True, samesite="Lax", path="/", secure=_secure())
    return response


@blueprint.post("/logout")
def logout() -> Response:
    if request.cookies.get(COOKIE):
        _check_form()
    response = redirect(_auth().sessions.end(request.cookies.get(COOKIE)), 303)
    response.delete_cookie(COOKIE, path="/")
    return response
