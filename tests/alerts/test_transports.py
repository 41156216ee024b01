"""Transports against real receivers on loopback: signed webhooks, Slack, email."""

import json
import logging
import socket

import pytest
from django.core import mail

from alerts.messages import Message
from alerts.transports import TransportError, post_slack, post_webhook, send_email
from tests.alerts.receiver import SECRET_PATH, WebhookReceiver, signature_ok
from tests.authserver.harness import find_free_port

SECRET = "webhook-signing-secret-0123456789"
PAYLOAD = {"event": "oauth.connection.needs_reauth", "connection": "analytics", "facts": {"n": 1}}


def fail(call, **kwargs) -> TransportError:
    with pytest.raises(TransportError) as failed:
        call(**kwargs)
    return failed.value


def assert_nothing_secret(text: str) -> None:
    assert SECRET_PATH not in text
    assert "xoxSecretPathPart" not in text
    assert SECRET not in text


# --- signed webhook -----------------------------------------------------------------------------
def test_it_signs_the_body_and_timestamp_so_the_receiver_can_verify_them():
    with WebhookReceiver(200) as receiver:
        code = post_webhook(url=receiver.url, secret=SECRET, payload=PAYLOAD, delivery_id="42")
    assert code == 200
    [request] = receiver.received
    assert request.json == PAYLOAD
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Tokenadmin-Event"] == "oauth.connection.needs_reauth"
    assert request.headers["X-Tokenadmin-Delivery"] == "42"
    assert signature_ok(request, secret=SECRET)
    assert not signature_ok(request, secret="another-secret-0123456789")


def test_it_makes_a_replayed_request_fail_verification():
    with WebhookReceiver(200) as receiver:
        post_webhook(url=receiver.url, secret=SECRET, payload=PAYLOAD)
    [request] = receiver.received
    sent_at = int(request.headers["X-Tokenadmin-Timestamp"])
    # Too late: the receiver refuses an old timestamp...
    assert not signature_ok(request, secret=SECRET, now=sent_at + 301)
    # ...and a fresh timestamp pasted onto the old body breaks the signature.
    request.headers["X-Tokenadmin-Timestamp"] = str(sent_at + 600)
    assert not signature_ok(request, secret=SECRET, now=sent_at + 600)


@pytest.mark.parametrize("code", [400, 401, 403, 404, 410])
def test_it_takes_a_gone_receiver_as_permanent_and_the_channel_as_broken(code):
    with WebhookReceiver(code) as receiver:
        error = fail(post_webhook, url=receiver.url, secret=SECRET, payload=PAYLOAD)
    assert (error.permanent, error.breaks_channel, error.response_code) == (True, True, code)
    assert f"HTTP {code}" in error.message
    assert "127.0.0.1" in error.message
    assert_nothing_secret(error.message)


@pytest.mark.parametrize("code", [500, 502, 503, 408])
def test_it_retries_server_errors(code):
    with WebhookReceiver(code) as receiver:
        error = fail(post_webhook, url=receiver.url, secret=SECRET, payload=PAYLOAD)
    assert (error.permanent, error.breaks_channel, error.response_code) == (False, False, code)


def test_it_honours_retry_after_on_429():
    with WebhookReceiver(429, headers={"Retry-After": "120"}) as receiver:
        error = fail(post_webhook, url=receiver.url, secret=SECRET, payload=PAYLOAD)
    assert (error.permanent, error.response_code, error.retry_after) == (False, 429, 120.0)


def test_it_neither_follows_a_redirect_nor_calls_the_channel_broken():
    with WebhookReceiver(302, headers={"Location": "http://127.0.0.1:9/elsewhere"}) as receiver:
        error = fail(post_webhook, url=receiver.url, secret=SECRET, payload=PAYLOAD)
    assert (error.permanent, error.breaks_channel, error.response_code) == (True, False, 302)
    assert len(receiver.received) == 1


def test_it_times_out_as_a_transient_failure(settings):
    settings.TOKENADMIN = settings.TOKENADMIN | {"HTTP_TIMEOUT": 0.3}
    with WebhookReceiver(200, delay=1.0) as receiver:
        error = fail(post_webhook, url=receiver.url, secret=SECRET, payload=PAYLOAD)
    assert not error.permanent
    assert "timed out" in error.message
    assert_nothing_secret(error.message)


def test_it_reports_a_refused_connection_without_the_url(caplog):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    caplog.set_level(logging.DEBUG)
    error = fail(
        post_slack,
        url=f"http://127.0.0.1:{port}{SECRET_PATH}",
        message=Message(subject="s", text="t"),
    )
    assert not error.permanent
    assert error.message == f"Slack webhook at 127.0.0.1:{port}: connection failed"
    assert error.__cause__ is None and error.__context__ is not None  # the URL-bearing cause
    assert_nothing_secret(str(error))
    assert_nothing_secret(caplog.text)


def test_it_refuses_an_unusable_url_for_good():
    error = fail(post_webhook, url="http://", secret=SECRET, payload=PAYLOAD)
    assert error.permanent


# --- Slack --------------------------------------------------------------------------------------
def test_it_posts_the_rendered_slack_message_as_it_is():
    payload = {"text": "Analytics: Needs reauthorization", "blocks": [{"type": "divider"}]}
    with WebhookReceiver(200) as receiver:
        post_slack(url=receiver.url, message=Message(subject="s", text="t", payload=payload))
    [request] = receiver.received
    assert request.path == SECRET_PATH
    assert request.json == payload
    assert "X-Tokenadmin-Signature" not in request.headers


def test_it_gives_a_message_without_a_slack_payload_its_text_and_a_dashboard_button(settings):
    message = Message(subject="Analytics <needs> reauth", text="Reason: a & b")
    with WebhookReceiver(200) as receiver:
        post_slack(url=receiver.url, message=message)
    body = receiver.received[0].json
    assert body["text"] == "Analytics &lt;needs&gt; reauth"
    section, actions = body["blocks"]
    assert "Reason: a &amp; b" in section["text"]["text"]
    [button] = actions["elements"]
    assert button["type"] == "button"
    assert button["url"] == settings.SITE_URL + "/"


# --- email --------------------------------------------------------------------------------------
def test_it_sends_text_with_an_html_alternative():
    message = Message(subject="[tokenadmin] Analytics", text="plain body", html="<p>html body</p>")
    send_email(message=message, recipients=["ops@example.com", "owner@example.com"])
    [sent] = mail.outbox
    assert sent.subject == "[tokenadmin] Analytics"
    assert sent.to == ["ops@example.com", "owner@example.com"]
    assert sent.body == "plain body"
    assert sent.alternatives[0][0] == "<p>html body</p>"
    assert sent.alternatives[0][1] == "text/html"


def test_it_takes_an_unreachable_mail_server_as_transient(settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "mailer", "smtp-password-xyz"
    error = fail(send_email, message=Message(subject="s", text="t"), recipients=["a@example.com"])
    assert not error.permanent
    assert "email not sent" in error.message
    assert "smtp-password-xyz" not in json.dumps(error.message)


def test_it_fails_a_message_whose_every_recipient_is_refused_but_keeps_the_channel(settings):
    from aiosmtpd.controller import Controller

    class RefuseEveryone:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            return "550 5.1.1 no such mailbox"

    port = find_free_port()
    controller = Controller(RefuseEveryone(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        error = fail(
            send_email, message=Message(subject="s", text="t"), recipients=["gone@example.com"]
        )
    finally:
        controller.stop()
    assert (error.permanent, error.breaks_channel) == (True, False)
    assert "refused every recipient (SMTP 550)" in error.message
