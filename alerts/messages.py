"""What an alert says, per channel kind. Never a token; a reauthorization link only in email.

Contract (the transports call `render_message`): `Message.subject` and `Message.text` always,
`Message.html` for email, `Message.payload` (JSON-safe dict) for webhooks and Slack.
"""

from dataclasses import dataclass, field
from typing import Any

from django.utils.html import escape

from alerts.events import Alert
from alerts.models import Channel, Event


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str = ""
    payload: dict[str, Any] = field(default_factory=dict)


def render_message(alert: Alert, *, channel_kind: str) -> Message:
    """The message for `alert` on a channel of `channel_kind` (a `Channel.Kind` value)."""
    name = alert.connection.name if alert.connection else "tokenadmin"
    label = Event(alert.event).label
    subject = f"[tokenadmin] {name}: {label}"
    text = f"{label}\n\n" + "\n".join(f"{k}: {v}" for k, v in sorted(alert.facts.items()))
    payload = {
        "event": alert.event,
        "connection": alert.connection.slug if alert.connection else None,
        "facts": alert.facts,
        "test": alert.is_test,
    }
    html = f"<pre>{escape(text)}</pre>" if channel_kind == Channel.Kind.EMAIL else ""
    return Message(subject=subject, text=text, html=html, payload=payload)
