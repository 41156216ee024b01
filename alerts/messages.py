"""What an alert says, per channel kind. Never a token; a reauthorization link only in email.

Contract (the transports call `render_message`): `Message.subject` and `Message.text` always,
`Message.html` for email, `Message.payload` (JSON-safe dict) for webhooks and Slack.

Every channel says the same facts, gathered once by `describe`: the connection, its provider and
account, what happened and when (UTC and relative), the reauthorize-by date, the pipelines that
stop at which run if nobody acts, and the dashboard URL. Email adds the one-click link and a
runbook (`alerts.emails`); webhook and Slack payloads never carry a link.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from alerts import emails
from alerts.events import Alert
from alerts.models import Channel, Event
from connections.models import Connection
from connections.serving import dashboard_url

EMAIL_KINDS = {
    Event.EXPIRY_WARNING: "expiry_warning",
    Event.REFRESH_FAILED: "refresh_failed",
    Event.NEEDS_REAUTH: "needs_reauth",
    Event.RECOVERED: "recovered",
    Event.HEALTH_FAILED: "health_failed",
    Event.FAILOVER: "failover",
    Event.ACCOUNT_MISMATCH: "account_mismatch",
    Event.SECRET_ROTATION_DUE: "secret_rotation_due",
}
# Facts that name a credential are never passed on, whatever an alert source put in them.
_UNSAFE_FACT_WORDS = ("token", "secret", "link", "password", "code")


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str = ""
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Moment:
    """A point in time as every message shows it: UTC, relative to the message, ISO 8601."""

    value: datetime
    utc: str
    relative: str
    iso: str

    @classmethod
    def of(cls, value: datetime, *, now: datetime) -> Moment:
        value = value.astimezone(UTC)
        return cls(
            value=value,
            utc=f"{value:%Y-%m-%d %H:%M} UTC",
            relative=relative(value, now=now),
            iso=value.isoformat().replace("+00:00", "Z"),
        )


@dataclass(frozen=True)
class ConsumerRun:
    """The first run of a pipeline that will fail if nobody acts."""

    label: str
    run_at: Moment
    local_time: str  # on the pipeline's own wall clock: "02:00"
    local_date: str  # "Sun 2025-04-06"
    timezone: str

    @property
    def sentence(self) -> str:
        """'the 02:00 nightly export run on Sun 2025-04-06 will fail'."""
        zone = "" if self.timezone == "UTC" else f" ({self.timezone}; {self.run_at.utc})"
        return f"the {self.local_time} {self.label} run on {self.local_date}{zone} will fail"


@dataclass(frozen=True)
class Description:
    """Everything an alert says, on every channel."""

    event: str
    event_label: str
    kind: str
    is_test: bool
    name: str
    slug: str
    provider: str
    account: str
    status: str
    status_label: str
    reason: str
    occurred_at: Moment
    reauthorize_by: Moment | None
    refresh_expires_at: Moment | None
    days_until_expiry: int | None
    lead: str
    dashboard_url: str
    consumers: tuple[ConsumerRun, ...]
    facts: dict[str, Any]
    secret_set_at: Moment | None = None
    secret_max_age_days: int = 0
    backup: str = ""


def relative(moment: datetime, *, now: datetime) -> str:
    """'in 6 days, 23 hours', '3 hours ago', 'now': two units at most."""
    seconds = (moment - now).total_seconds()
    days, rest = divmod(int(abs(seconds)), 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    units = [(days, "day"), (hours, "hour"), (0 if days else minutes, "minute")]
    parts = [f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in units if n][:2]
    if not parts:
        return "now"
    return f"in {', '.join(parts)}" if seconds > 0 else f"{', '.join(parts)} ago"


def days_until(moment: datetime, *, now: datetime) -> int:
    """Whole days left, rounded up: exactly 10 days before is 10, and `days_until_expiry <= 10`
    becomes true at that moment, not a day earlier."""
    return max(0, math.ceil((moment - now) / timedelta(days=1)))


def consumers_failing_after(
    connection: Connection, moment: datetime, *, now: datetime
) -> tuple[ConsumerRun, ...]:
    """Each pipeline's first run at or after `moment`: the one that fails without a person."""
    runs = []
    for schedule in connection.consumer_schedules.all():
        # croniter is minute-grained and strictly after: a run at `moment` itself fails too.
        run_at = schedule.next_run_after(moment - timedelta(seconds=1))
        local = run_at.astimezone(ZoneInfo(schedule.timezone))
        runs.append(
            ConsumerRun(
                label=schedule.label,
                run_at=Moment.of(run_at, now=now),
                local_time=f"{local:%H:%M}",
                local_date=f"{local:%a %Y-%m-%d}",
                timezone=schedule.timezone,
            )
        )
    return tuple(sorted(runs, key=lambda run: run.run_at.value))


def _occurred_at(alert: Alert, now: datetime) -> datetime:
    for row in (alert.status_change, alert.failover_event, alert.authorization):
        if row is not None:
            return row.created_at
    return now


def _reason(alert: Alert) -> str:
    if alert.facts.get("reason"):
        return str(alert.facts["reason"])
    for row in (alert.status_change, alert.failover_event):
        if row is not None and row.reason:
            return row.reason
    return alert.connection.status_reason if alert.connection else ""


def _safe_facts(facts: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in facts.items()
        if not any(word in key.lower() for word in _UNSAFE_FACT_WORDS)
    }


def _at_risk_from(alert: Alert, connection: Connection, now: datetime) -> datetime | None:
    """From when on the pipelines fail if nobody acts; None when they do not."""
    if alert.event == Event.EXPIRY_WARNING:
        return connection.reauthorize_by
    if alert.event == Event.NEEDS_REAUTH and connection.status == Connection.Status.NEEDS_REAUTH:
        return now
    return None


def describe(alert: Alert, *, now: datetime | None = None) -> Description:
    """Gather what `alert` says from the alert and the connection as it is now."""
    now = now or timezone.now()
    connection = alert.connection
    kind = "test" if alert.is_test else EMAIL_KINDS[Event(alert.event)]
    deadline = connection.reauthorize_by if connection else None
    refresh_expires_at = connection.refresh_expires_at if connection else None
    at_risk_from = _at_risk_from(alert, connection, now) if connection else None
    days = alert.facts.get("days_until_expiry")
    if days is None and deadline is not None:
        days = days_until(deadline, now=now)
    backup = ""
    if alert.failover_event is not None and alert.failover_event.backup is not None:
        backup = alert.failover_event.backup.name
    secret_set_at = connection.client_secret_set_at if connection else None
    return Description(
        event=alert.event,
        event_label=Event(alert.event).label,
        kind=kind,
        is_test=alert.is_test,
        name=connection.name if connection else "",
        slug=connection.slug if connection else "",
        provider=connection.provider.name if connection else "",
        account=(connection.account_label or connection.account_id) if connection else "",
        status=connection.status if connection else "",
        status_label=connection.get_status_display() if connection else "",
        reason=_reason(alert),
        occurred_at=Moment.of(_occurred_at(alert, now), now=now),
        reauthorize_by=Moment.of(deadline, now=now) if deadline else None,
        refresh_expires_at=Moment.of(refresh_expires_at, now=now) if refresh_expires_at else None,
        days_until_expiry=days,
        lead=str(alert.facts.get("lead", "")),
        dashboard_url=dashboard_url(connection),
        consumers=(
            consumers_failing_after(connection, at_risk_from, now=now) if at_risk_from else ()
        ),
        facts=_safe_facts(alert.facts),
        secret_set_at=Moment.of(secret_set_at, now=now) if secret_set_at else None,
        secret_max_age_days=settings.TOKENADMIN["CLIENT_SECRET_MAX_AGE_DAYS"],
        backup=backup or str(alert.facts.get("served_by") or ""),
    )


def _iso(moment: Moment | None) -> str | None:
    return moment.iso if moment else None


def webhook_payload(about: Description) -> dict[str, Any]:
    """The signed webhook's JSON body: the facts, never a token or a link."""
    return {
        "event": about.event,
        "event_label": about.event_label,
        "test": about.is_test,
        "connection": about.slug or None,
        "connection_name": about.name or None,
        "provider": about.provider or None,
        "account": about.account or None,
        "status": about.status or None,
        "reason": about.reason,
        "occurred_at": about.occurred_at.iso,
        "reauthorize_by": _iso(about.reauthorize_by),
        "refresh_expires_at": _iso(about.refresh_expires_at),
        "days_until_expiry": about.days_until_expiry,
        "lead": about.lead or None,
        "consumers": [{"label": c.label, "fails_at": c.run_at.iso} for c in about.consumers],
        "dashboard_url": about.dashboard_url,
        "facts": about.facts,
    }


def _slack_escape(text: str) -> str:
    # Slack mrkdwn: only these three are control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _summary_line(about: Description) -> str:
    subject = f"{about.name}: {about.event_label}" if about.name else about.event_label
    return f"[test] {subject}" if about.is_test else subject


def slack_payload(about: Description) -> dict[str, Any]:
    """A Slack incoming-webhook message: the same facts, a button to the dashboard."""
    fields = [("Connection", about.name), ("Provider", about.provider)]
    fields += [("Account", about.account), ("Status", about.status_label)]
    fields.append(("When", f"{about.occurred_at.utc} ({about.occurred_at.relative})"))
    if about.reauthorize_by:
        deadline = about.reauthorize_by
        fields.append(("Reauthorize by", f"{deadline.utc} ({deadline.relative})"))
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"*{_slack_escape(_summary_line(about))}*"},
        }
    ]
    if about.reason:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(about.reason)}}
        )
    blocks.append(
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{label}*\n{_slack_escape(value)}"}
                for label, value in fields
                if value
            ],
        }
    )
    if about.consumers:
        lines = [f"If nobody acts, {c.sentence}." for c in about.consumers]
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": _slack_escape(" ".join(lines))}],
            }
        )
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open in tokenadmin"},
                    "url": about.dashboard_url,
                }
            ],
        }
    )
    # `dashboard_url` rides along for the transport (Slack ignores keys it does not know).
    return {"text": _summary_line(about), "blocks": blocks, "dashboard_url": about.dashboard_url}


def _plain_text(about: Description) -> str:
    lines = [_summary_line(about), ""]
    if about.reason:
        lines.append(about.reason)
    lines.append(f"When: {about.occurred_at.utc} ({about.occurred_at.relative})")
    if deadline := about.reauthorize_by:
        lines.append(f"Reauthorize by: {deadline.utc} ({deadline.relative})")
    lines += [f"If nobody acts, {c.sentence}." for c in about.consumers]
    lines.append(f"Dashboard: {about.dashboard_url}")
    return "\n".join(lines)


def render_message(alert: Alert, *, channel_kind: str) -> Message:
    """The message for `alert` on a channel of `channel_kind` (a `Channel.Kind` value).

    Email is rendered from templates and, for events a person must act on, carries a fresh
    reauthorization link (a new ReauthLink row per call).
    """
    about = describe(alert)
    if channel_kind == Channel.Kind.EMAIL:
        email = emails.render_email(about, connection=alert.connection)
        return Message(subject=email.subject, text=email.text, html=email.html)
    subject = f"[tokenadmin] {_summary_line(about)}"
    payload = slack_payload(about) if channel_kind == Channel.Kind.SLACK else webhook_payload(about)
    return Message(subject=subject, text=_plain_text(about), payload=payload)
