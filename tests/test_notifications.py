"""Told when ready: a launch that took longer than PANBROKER_NOTIFY_AFTER_SECONDS e-mails its user (a real SMTP
server on loopback: aiosmtpd) and POSTs to their webhook, when they opted in on the account page; a fast one
does not; a mail server that is down never breaks the launch."""
from __future__ import annotations

import json
import re
import threading
import time
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from werkzeug.wrappers import Response

from panbroker.app import build_broker, create_app
from broker.authz import Principal
from broker.registry_kinds import KINDS
from demo import federation as sim
from demo.federation import free_port
from tests.conftest import make_settings
from tests.loopback import serve
from tests.test_launch import DATASET, ginas_visa, person, run_to_end, visa_api_with_gina
from tests.test_portal_pages import signed_in, token_of

ADMIN = Principal("test", admin=True)


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802 - aiosmtpd's hook
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        self.arrived.set()
        return "250 OK"


@pytest.fixture
def inbox():  # noqa: ANN201
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


def setup_visa(broker, fed_url: str) -> Principal:  # noqa: ANN001
    broker.registry.create(ADMIN, KINDS.facility, {"id": "ill", "name": "ILL", "country": "FR",
                                                   "accepted_issuers": ["ill-idp"]})
    broker.index.upsert([DATASET])
    broker.index.commit()
    return visa_api_with_gina(broker, fed_url)


def test_a_slow_launch_mails_and_posts_its_user_when_ready_and_a_fast_failure_does_not(inbox, tmp_path):  # noqa: ANN001
    box, port = inbox
    posted: list[dict] = []

    def hook(request):  # noqa: ANN001, ANN202
        posted.append(json.loads(request.get_data()))
        return Response("", status=204)

    visa = ginas_visa(build_seconds=1.5)
    with sim.Federation() as fed, serve(hook) as (hook_url, _):
        fed.add("visa", visa)
        fed.start()
        broker = build_broker(make_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=port,
                                            smtp_from="broker@pan.example", notify_after_seconds=1.0))
        gina = setup_visa(broker, fed.url("visa"))
        broker.notifier.save(gina.subject.removeprefix("person:"), True, "gina@ill.example", hook_url + "/hook")
        launch, _ = broker.launches.create(gina, "k-1", {"dataset": DATASET.pid, "service_id": "ill-visa-api"})
        assert run_to_end(broker, launch["id"], gina)["state"] == "ready"
        assert box.arrived.wait(10), "no e-mail arrived at the loopback SMTP server"
        (recipients, mail), = box.messages
        assert recipients == ["gina@ill.example"] and mail["From"] == "broker@pan.example"
        assert "ready" in mail["Subject"] and f"/sessions/{launch['id']}" in mail.get_payload(decode=True).decode()
        deadline = time.monotonic() + 10
        while not posted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert posted[0]["event"] == "launch.ready" and posted[0]["launch_id"] == launch["id"]
        assert posted[0]["seconds"] >= 1.0 and "token" not in json.dumps(posted[0])

        # a launch that fails at once (no VISA token kept for this person) is seen on its page: no message
        hank = person(broker, "Hank")
        broker.notifier.save(hank.subject.removeprefix("person:"), True, "hank@ill.example", "")
        refused, _ = broker.launches.create(hank, "k-2", {"dataset": DATASET.pid, "service_id": "ill-visa-api"})
        assert run_to_end(broker, refused["id"], hank)["state"] == "failed"
        broker.notifier.close()
        assert len(box.messages) == 1 and len(posted) == 1
        broker.launches.cancel(gina, launch["id"])


def test_a_mail_server_that_is_down_never_breaks_a_launch(tmp_path, caplog):  # noqa: ANN001
    visa = ginas_visa(build_seconds=0.2)
    with sim.Federation() as fed:
        fed.add("visa", visa)
        fed.start()
        broker = build_broker(make_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=free_port(),
                                            notify_after_seconds=0.0))
        gina = setup_visa(broker, fed.url("visa"))
        broker.notifier.save(gina.subject.removeprefix("person:"), True, "gina@ill.example", "")
        launch, _ = broker.launches.create(gina, "k-1", {"dataset": DATASET.pid, "service_id": "ill-visa-api"})
        assert run_to_end(broker, launch["id"], gina)["state"] == "ready"
        broker.notifier.close()
        assert "could not notify about launch" in caplog.text
        assert broker.launches.get(gina, launch["id"])["state"] == "ready"
        broker.launches.cancel(gina, launch["id"])


@pytest.mark.parametrize("form, field, message", [
    ({"email_enabled": "1", "email": "not-an-address"}, "email", "an e-mail address"),
    ({"email_enabled": "1", "email": ""}, "email", "give the address"),
    ({"webhook_url": "ftp://files.example/x"}, "webhook_url", "an http(s) URL"),
    ({"webhook_url": "javascript:alert(1)"}, "webhook_url", "an http(s) URL"),
])
def test_the_account_page_refuses_bad_choices_beside_the_field(sqlite_settings, form, field, message):  # noqa: ANN001
    broker = build_broker(sqlite_settings.__class__(**{**sqlite_settings.__dict__, "smtp_host": "127.0.0.1"}))
    client = create_app(broker=broker).test_client()
    signed_in(broker, client, "ada")
    page = client.get("/account/notifications").text
    response = client.post("/account/notifications", data={"csrf_token": token_of(page), **form})
    assert response.status_code == 422
    assert re.search(rf'<p class="field-error" id="err-{field}">' + re.escape(message), response.text)


def test_opting_in_is_kept_and_e_mail_is_refused_where_the_broker_has_no_smtp_server(sqlite_broker, sqlite_client):  # noqa: ANN001
    me = signed_in(sqlite_broker, sqlite_client, "ada")
    assert "/account/notifications" in sqlite_client.get("/account").text
    page = sqlite_client.get("/account/notifications").text
    assert "This broker sends no e-mail" in page
    refused = sqlite_client.post("/account/notifications", data={"csrf_token": token_of(page), "email_enabled": "1",
                                                                  "email": "ada@example.org"})
    assert refused.status_code == 422 and "sends no e-mail" in refused.text
    saved = sqlite_client.post("/account/notifications", data={"csrf_token": token_of(page),
                                                                "webhook_url": "https://hooks.example/ada"})
    assert saved.status_code == 200 and "Saved." in saved.text
    assert sqlite_broker.notifier.preferences(me["id"]).webhook_url == "https://hooks.example/ada"
    forged = sqlite_client.post("/account/notifications", data={"webhook_url": "https://evil.example"})
    assert forged.status_code == 403
    assert sqlite_broker.notifier.preferences(me["id"]).webhook_url == "https://hooks.example/ada"
