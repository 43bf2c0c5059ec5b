"""The account's notification settings: opt in to an e-mail and/or a webhook when a slow launch is ready or failed."""
from __future__ import annotations

from flask import render_template, request

from panmodel.errors import InvalidInput
from broker.notify import NotificationView, Preferences
from web.common import blueprint, broker, require_viewer


def _render(view: NotificationView, errors: dict[str, str], saved: bool) -> str:
    return render_template("notifications.html", form=view.preferences.as_dict(), errors=errors, saved=saved,
                           smtp=view.smtp, after=view.after_seconds)


@blueprint.get("/account/notifications")
def notifications_page() -> str:
    return _render(broker().notifier.view(require_viewer()), {}, False)


@blueprint.post("/account/notifications")
def save_notifications() -> tuple[str, int] | str:
    person = require_viewer()
    typed = Preferences(request.form.get("email_enabled") == "1", request.form.get("email", ""),
                        request.form.get("webhook_url", ""))
    try:
        saved = broker().notifier.save_as(person, typed.email_enabled, typed.email or "", typed.webhook_url or "")
    except InvalidInput as exc:
        return _render(broker().notifier.view(person, typed), {e.field: e.message for e in exc.errors}, False), 422
    return _render(broker().notifier.view(person, saved), {}, True)
