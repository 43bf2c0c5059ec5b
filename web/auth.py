"""Sign-in pages: start a login at an identity provider, its callback, linking, logout."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, redirect, request

from broker.auth import LoginRefused

COOKIE = "panbroker_session"
blueprint = Blueprint("auth", __name__, url_prefix="/auth")


def _auth():  # noqa: ANN202 - broker.auth.AuthService
    return current_app.extensions["panbroker"].auth


@blueprint.get("/providers")
def providers() -> Response:
    return jsonify(_auth().available())


@blueprint.get("/login/<issuer>")
def login(issuer: str) -> Response:
    return redirect(_auth().start(issuer, request.args.get("next")), 302)


@blueprint.get("/link/<issuer>")
def link(issuer: str) -> Response | tuple[Response, int]:
    principal = _auth().session_principal(request.cookies.get(COOKIE))
    if principal is None:
        return jsonify({"type": "urn:panbroker:problem:unauthenticated", "title": "Sign in first", "status": 401,
                        "detail": "linking an identity needs the session of the first one"}), 401
    return redirect(_auth().start(issuer, request.args.get("next"),
                                  link_person_id=principal.subject.removeprefix("person:")), 302)


@blueprint.get("/callback")
def callback() -> Response | tuple[Response, int]:
    try:
        done = _auth().finish(request.args.to_dict())
    except LoginRefused as exc:
        response = jsonify({"type": "urn:panbroker:problem:login-refused", "title": "Sign-in refused", "status": 400,
                            "detail": exc.detail})
        response.status_code = 400
        response.content_type = "application/problem+json"
        return response
    response = redirect(done.next_url, 302)
    response.set_cookie(COOKIE, done.session_id, httponly=True, samesite="Lax", path="/",
                        secure=_auth().public_url.startswith("https://"))
    return response


@blueprint.route("/logout", methods=["GET", "POST"])
def logout() -> Response:
    response = redirect(_auth().logout(request.cookies.get(COOKIE)), 302)
    response.delete_cookie(COOKIE, path="/")
    return response
