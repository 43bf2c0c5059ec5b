"""The account's notification settings: opt in to an e-mail and/or a webhook when a slow launch is ready or failed."""
from __future__ import annotations

from flask import abort, render_template, request
from werkzeug.wrappers import Response

from panmodel.errors import InvalidInput
from web.common import blueprint, broker, require_viewer


def _person_id() -> str:
    subject = require_viewer().subject
    if not subject.startswith("person:"):
        abort(403, "notifications belong to a person's account: sign in as yourself")
    return subject.removeprefix("person:")


@blueprint.get("/account/notifications")
def notifications_page() -> str:
    prefs = broker().notifier.preferences(_person_id())
    return render_template("notifications.html", form=prefs.as_dict(), errors={}, saved=False,
                           smtp=bool(broker().settings.smtp_host),
                           after=broker().settings.notify_after_seconds)


@blueprint.post("/account/notifications")
def save_notifications() -> Response | tuple[str, int] | str:
    form = {"email_enabled": request.form.get("email_enabled") == "1", "email": request.form.get("email", ""),
            "webhook_url": request.form.get("webhook_url", "")}
    try:
        prefs = broker().notifier.save(_person_id(), form["email_enabled"], form["email"], form["webhook_url"])
    except InvalidInput as exc:
        return render_template("notifications.html", form=form, errors={e.field: e.message for e in exc.errors},
                               saved=False, smtp=bool(broker().settings.smtp_host),
                               after=broker().settings.notify_after_seconds), 422
    return render_template("notifications.html", form=prefs.as_dict(), errors={}, saved=True,
                           smtp=bool(broker().settings.smtp_host), after=broker().settings.notify_after_seconds)
