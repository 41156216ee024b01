"""The seam to the outside world for alerts: email, signed webhooks and Slack incoming webhooks.

Each transport sends one rendered `Message` once and returns the response code (None for email),
or raises `TransportError` classified where it is caught: `permanent` when retrying cannot help,
`breaks_channel` when the channel itself is dead (a webhook answering 410) rather than this one
message. A Slack URL is a credential and a webhook secret signs requests: neither ever appears in
an error, a log line or a Notification row; errors name the host at most.
"""

import hashlib
import hmac
import json
import logging
import smtplib
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from alerts.messages import Message
from connections.oauth.http import retry_after_seconds, timeouts

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Tokenadmin-Signature"
TIMESTAMP_HEADER = "X-Tokenadmin-Timestamp"
# Receivers gone for good: retrying cannot help and the channel should be fixed by a person.
PERMANENT_CODES = frozenset({400, 401, 403, 404, 410})
# Worth another try later (RFC 9110 §15.5.9 408, RFC 6585 §4 429 with Retry-After, 5xx).
TRANSIENT_CODES = frozenset({408, 425, 429})
SLACK_TEXT_LIMIT = 3000  # characters in one section block (Slack Block Kit)


class TransportError(Exception):
    """A delivery failed. `permanent`: do not retry. `breaks_channel`: mark the channel broken."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        breaks_channel: bool | None = None,
        response_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message[:500])
        self.message = message[:500]
        self.permanent = permanent
        self.breaks_channel = permanent if breaks_channel is None else breaks_channel
        self.response_code = response_code
        self.retry_after = retry_after


def host_of(url: str) -> str:
    """The host (and port) of `url`: what may be shown of a webhook, never its path or query."""
    parts = urlsplit(url)
    if not parts.hostname:
        return "(no host)"
    return parts.hostname + (f":{parts.port}" if parts.port else "")


# --- email ------------------------------------------------------------------------------------
def send_email(*, message: Message, recipients: list[str]) -> None:
    """Send `message` (text, with its HTML as an alternative) through Django's email backend.

    A server that refuses every recipient is permanent for this message but says nothing about
    the channel (one connection's contact address may be wrong); anything else is transient.
    """
    mail = EmailMultiAlternatives(
        subject=message.subject,
        body=message.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        connection=get_connection(timeout=settings.TOKENADMIN["HTTP_TIMEOUT"]),
    )
    if message.html:
        mail.attach_alternative(message.html, "text/html")
    try:
        mail.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = sorted({code for code, _ in exc.recipients.values()})
        raise TransportError(
            f"the mail server refused every recipient (SMTP {', '.join(map(str, codes))})",
            permanent=True,
            breaks_channel=False,
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        # Server messages may echo credentials from EMAIL_URL; keep only the kind and code.
        code = getattr(exc, "smtp_code", None)
        detail = f" (SMTP {code})" if code else ""
        raise TransportError(f"email not sent: {type(exc).__name__}{detail}") from None


# --- HTTP (webhooks, Slack) -------------------------------------------------------------------
def sign_webhook(*, secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`: the timestamp is signed too, so
    a captured request cannot be replayed later with a fresh timestamp."""
    signed = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def post_webhook(*, url: str, secret: str, payload: dict[str, Any], delivery_id: str = "") -> int:
    """POST the JSON `payload` with a signature and timestamp header; returns the status code.

    Receivers verify: recompute the HMAC over `<X-Tokenadmin-Timestamp>.<raw body>` with the
    shared secret, compare in constant time, and reject timestamps older than a few minutes.
    """
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "tokenadmin-alerts",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign_webhook(secret=secret, timestamp=timestamp, body=body),
    }
    if delivery_id:
        headers["X-Tokenadmin-Delivery"] = delivery_id
    if event := payload.get("event"):
        headers["X-Tokenadmin-Event"] = str(event)
    return _post(url, body=body, headers=headers, what=f"webhook at {host_of(url)}")


def slack_body(message: Message, *, dashboard_url: str) -> dict[str, Any]:
    """A Slack incoming-webhook body: the message's text and a button to the dashboard."""
    text = f"*{_slack_escape(message.subject)}*\n{_slack_escape(message.text)}"
    if len(text) > SLACK_TEXT_LIMIT:
        text = text[: SLACK_TEXT_LIMIT - 1] + "…"
    return {
        "text": _slack_escape(message.subject),  # the notification and fallback text
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open the dashboard"},
                        "url": dashboard_url,
                    }
                ],
            },
        ],
    }


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats &, < and > as control characters (api.slack.com, "Escaping text").
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def post_slack(*, url: str, message: Message) -> int:
    """POST `message` to a Slack incoming webhook; returns the status code.

    The rendered Slack payload is sent as it is; a message rendered without one (it has no
    `text`, which Slack answers with 400 and we would take for a dead channel) gets its text and
    a dashboard button.
    """
    payload = message.payload
    if not payload.get("text"):
        dashboard_url = str(payload.get("dashboard_url") or settings.SITE_URL + "/")
        payload = slack_body(message, dashboard_url=dashboard_url)
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "tokenadmin-alerts"}
    return _post(url, body=body, headers=headers, what=f"Slack webhook at {host_of(url)}")


def _post(url: str, *, body: bytes, headers: dict[str, str], what: str) -> int:
    # requests' exception messages contain the full URL (a Slack URL is a secret): only the
    # exception's kind leaves this function. Redirects are not followed: a receiver that moved
    # is a configuration a person must fix, and a redirect could send the body elsewhere.
    try:
        response = requests.post(
            url,
            data=body,
            headers=headers,
            timeout=timeouts(settings.TOKENADMIN["HTTP_TIMEOUT"]),
            allow_redirects=False,
        )
    except requests.Timeout:
        raise TransportError(f"{what}: timed out") from None
    except requests.ConnectionError:
        raise TransportError(f"{what}: connection failed") from None
    except requests.RequestException as exc:
        # An invalid URL and the like: no retry will make it valid.
        raise TransportError(
            f"{what}: request not sent ({type(exc).__name__})", permanent=True
        ) from None
    code = response.status_code
    if 200 <= code < 300:
        return code
    if code in PERMANENT_CODES:
        raise TransportError(f"{what}: HTTP {code}", permanent=True, response_code=code)
    if code in TRANSIENT_CODES or code >= 500:
        raise TransportError(
            f"{what}: HTTP {code}",
            response_code=code,
            retry_after=retry_after_seconds(response),
        )
    # Anything else (3xx, other 4xx) will not change on a retry, but need not mean the
    # receiver is gone: this message fails, the channel stays in use.
    raise TransportError(
        f"{what}: HTTP {code}", permanent=True, breaks_channel=False, response_code=code
    )
