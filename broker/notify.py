"""Told when ready: a launch that took longer than ``notify_after_seconds`` tells its user, if they opted in,
that it is ready or failed, by e-mail (SMTP) and/or by a POST to their webhook.

Sending happens on a small pool, never in the launch's own thread, and a failure to notify is logged, never
raised: a notification is a courtesy, the launch's state is the record.
"""
from __future__ import annotations

import logging
import re
import smtplib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from broker.authz import Principal
from panmodel.errors import FieldError, InvalidInput
from broker.settings import Settings
from connectors.errors import UpstreamError
from connectors.http import HttpClient
from panmodel.clock import as_utc, utcnow
from panmodel.states import LaunchState
from registry.models import Launch, NotificationSettings
from registry.store import Store

log = logging.getLogger(__name__)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NOTIFIED = (LaunchState.READY, LaunchState.FAILED)
WEBHOOK_TIMEOUT = 10.0


@dataclass(frozen=True)
class Preferences:
    email_enabled: bool = False
    email: str | None = None
    webhook_url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"email_enabled": self.email_enabled, "email": self.email, "webhook_url": self.webhook_url}


@dataclass(frozen=True)
class NotificationView:
    """The account's notification page: the person's choices and what this broker can send."""

    preferences: Preferences
    smtp: bool  # whether e-mail can be sent at all
    after_seconds: float  # launches slower than this are told


MINE = "notifications belong to a person's account: sign in as yourself"


class Notifier:
    def __init__(self, store: Store, http: HttpClient, settings: Settings):
        self.store = store
        self.http = http
        self.settings = settings
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="notify")

    # -- the person's choices --------------------------------------------------------------------
    def view(self, actor: Principal, preferences: Preferences | None = None) -> NotificationView:
        """The caller's own notification page (``preferences``: as just typed, instead of the stored ones)."""
        person_id = actor.require_person(MINE)
        return NotificationView(preferences or self.preferences(person_id), bool(self.settings.smtp_host),
                                self.settings.notify_after_seconds)

    def save_as(self, actor: Principal, email_enabled: bool, email: str, webhook_url: str) -> Preferences:
        """Store the caller's own choices."""
        return self.save(actor.require_person(MINE), email_enabled, email, webhook_url)

    def preferences(self, person_id: str) -> Preferences:
        with self.store.session() as session:
            row = session.get(NotificationSettings, person_id)
            return Preferences(row.email_enabled, row.email, row.webhook_url) if row else Preferences()

    def save(self, person_id: str, email_enabled: bool, email: str, webhook_url: str) -> Preferences:
        """Store the person's choices; ``InvalidInput`` names each field to fix."""
        email, webhook_url = email.strip(), webhook_url.strip()
        errors = []
        if email and not EMAIL.match(email):
            errors.append(FieldError("email", "an e-mail address, e.g. ada@example.org"))
        if email_enabled and not email:
            errors.append(FieldError("email", "give the address to send to, or leave e-mail off"))
        if email_enabled and not self.settings.smtp_host:
            errors.append(FieldError("email_enabled", "this broker sends no e-mail (its operator set no SMTP server)"))
        if webhook_url:
            parts = urlsplit(webhook_url)
            if parts.scheme not in ("https", "http") or not parts.hostname or len(webhook_url) > 2048:
                errors.append(FieldError("webhook_url", "an http(s) URL of at most 2048 characters"))
        if errors:
            raise InvalidInput.from_fields(errors)
        with self.store.session() as session:
            row = session.get(NotificationSettings, person_id) or NotificationSettings(person_id=person_id)
            row.email_enabled, row.email, row.webhook_url = email_enabled, email or None, webhook_url or None
            session.add(row)
        return self.preferences(person_id)

    # -- the hook the launch service calls ----------------------------------------------------------
    def launch_settled(self, launch_id: str, state: LaunchState) -> None:
        """Called once when a launch reaches ready or failed; notifies in the background when it was slow."""
        if state not in NOTIFIED:
            return
        self._pool.submit(self._notify, launch_id, state)

    def _notify(self, launch_id: str, state: LaunchState) -> None:
        try:
            with self.store.session() as session:
                launch = session.get(Launch, launch_id)
                took = (utcnow() - as_utc(launch.created_at)).total_seconds()
                if took < self.settings.notify_after_seconds:
                    return
                prefs = session.get(NotificationSettings, launch.person_id)
                if prefs is None:
                    return
                event = {"event": f"launch.{state.value}", "launch_id": launch.id, "state": state.value,
                         "dataset": launch.dataset_pid, "facility": launch.facility_id, "service": launch.service_id,
                         "error": launch.error if state == LaunchState.FAILED else None,
                         "page": f"{self.settings.effective_public_url}/sessions/{launch.id}",
                         "seconds": round(took, 1)}
                email = prefs.email if prefs.email_enabled else None
                webhook = prefs.webhook_url
            if email and self.settings.smtp_host:
                self._email(email, event)
            if webhook:
                self._webhook(webhook, event)
        except Exception:  # noqa: BLE001 - a courtesy must never break the launch worker
            log.exception("could not notify about launch %s", launch_id)

    def _email(self, address: str, event: dict[str, Any]) -> None:
        host = urlsplit(self.settings.effective_public_url).hostname or "localhost"
        message = EmailMessage()
        message["From"] = self.settings.smtp_from or f"panbroker@{host}"
        message["To"] = address
        ready = event["state"] == LaunchState.READY.value
        dataset = " ".join(str(event["dataset"]).split())[:200]  # a pid is facility data: no header injection
        message["Subject"] = (f"Your analysis session is ready ({dataset})" if ready
                              else f"Your analysis session failed to start ({dataset})")
        lines = [f"Your session for dataset {event['dataset']} at {event['facility']} "
                 f"({event['service']}) is {'ready' if ready else 'not available: it failed to start'}.",
                 "" if ready else f"Reason: {event['error']}", f"Open it from {event['page']}", "",
                 "You get this e-mail because you asked to be told when a slow launch is ready (Account page)."]
        message.set_content("\n".join(line for line in lines if line is not None))
        with smtplib.SMTP(self.settings.smtp_host, self.settings.smtp_port, timeout=WEBHOOK_TIMEOUT) as smtp:
            if self.settings.smtp_starttls:
                smtp.starttls()
            if self.settings.smtp_username:
                smtp.login(self.settings.smtp_username, self.settings.smtp_password)
            smtp.send_message(message)
        log.info("told %s by e-mail that launch %s is %s", "its user", event["launch_id"], event["state"])

    def _webhook(self, url: str, event: dict[str, Any]) -> None:
        try:
            response = self.http.request("POST", url, json=event, timeout=WEBHOOK_TIMEOUT)
        except UpstreamError as exc:  # the SSRF guard, a timeout, a refused connection
            log.warning("webhook for launch %s not delivered: %s", event["launch_id"], exc.detail)
            return
        if response.status_code >= 300:
            log.warning("webhook for launch %s answered HTTP %s", event["launch_id"], response.status_code)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
