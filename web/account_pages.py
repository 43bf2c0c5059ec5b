"""The sign-in page (the configured identity providers) and the account page (linked identities,
roles, where the person can launch)."""
from __future__ import annotations

from flask import render_template, request

from broker.auth import safe_next
from web.common import blueprint, broker, require_viewer, viewer


@blueprint.get("/signin")
def signin_page() -> str:
    return render_template("signin.html", providers=broker().auth.available(),
                           next_url=safe_next(request.args.get("next")), signed_in=viewer() is not None)


@blueprint.get("/account")
def account_page() -> str:
    return render_template("account.html", account=broker().account.view(require_viewer()))
