"""What a person does to one connection from the dashboard, and to many from the admin.

Each function is the one call its button makes (the connection page, the admin actions, the CLI
alike), and answers with a sentence for that person. Provider calls made for a person who is
waiting (refresh now, health check now) run in the request, through the engine's single flight,
bounded by its HTTP timeout: the answer is the point. Bulk actions over many rows are queued
for the workers instead, so one admin click never holds a request for N provider calls.

A reauthorization link is returned to the one caller who shows it, or mailed; it is never logged
and never part of a message.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string
from django.utils import timezone
from django_q.tasks import async_task

from connections import monitoring, serving
from connections.lifecycle import TokenUnavailable
from connections.links import build_reauth_link
from connections.models import Connection
from connections.oauth import OAuthError, ProviderMetadata, discover
from connections.presets import PresetError, validate_url
from connections.services import ServiceError


@dataclass(frozen=True)
class ActionDone:
    """What happened, for the person who pressed the button: `ok` False is a refusal or a
    failure the message explains (shown as an error, not raised: the page stays usable)."""

    ok: bool
    message: str


def _when(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "an unknown time"


# --- provider calls for a person waiting ---------------------------------------------------


def connection_refresh_now(*, connection: Connection) -> ActionDone:
    """Refresh the access token now (forced, single flight) and say how it went; the attempt
    is recorded on the timeline either way."""
    try:
        served = serving.refresh_token_now(connection=connection)
    except TokenUnavailable as exc:
        return ActionDone(False, f"Refresh of {connection.name} failed ({exc.code}): {exc}")
    expires = served.served.access_expires_at
    return ActionDone(
        True, f"Refreshed {connection.name}: the new access token is valid until {_when(expires)}."
    )


def connection_check_now(*, connection: Connection) -> ActionDone:
    """Run the connection's health check (its canary call) now."""
    check = monitoring.check_health(connection)
    if check is None:
        return ActionDone(
            False,
            f"No health check of {connection.name} ran: it has no canary (userinfo, "
            "introspection or a test URL) or no token to test with.",
        )
    if check.ok:
        return ActionDone(
            True, f"Health check of {connection.name} passed ({check.latency_ms} ms)."
        )
    detail = f": {check.message}" if check.message else ""
    return ActionDone(
        False, f"Health check of {connection.name} failed ({check.error_code}){detail}"
    )


# --- bulk, for the workers ------------------------------------------------------------------


def _queue(connection_ids: Iterable[int], task: str, what: str) -> int:
    # Provider calls happen in the cluster; results land in the connections' timelines.
    ids = list(connection_ids)
    for pk in ids:
        async_task(task, pk, task_name=f"{what} of connection {pk}")
    return len(ids)


def queue_refresh(*, connection_ids: Iterable[int]) -> int:
    """Queue a forced refresh of each connection; returns how many were queued."""
    return _queue(connection_ids, "connections.tasks.refresh", "refresh")


def queue_health_check(*, connection_ids: Iterable[int]) -> int:
    """Queue a health check of each connection; returns how many were queued."""
    return _queue(connection_ids, "connections.tasks.check_health", "health check")


# --- reauthorization links ------------------------------------------------------------------


def _refuse_if_disabled(connection: Connection) -> None:
    # The consent flow refuses a disabled connection: a link to it would be a dead end.
    if connection.status == Connection.Status.DISABLED:
        raise ServiceError(f"{connection.name} is disabled: enable it first, then reauthorize.")


def connection_reauth_link(*, connection: Connection, requested_by: str) -> str:
    """A fresh reauthorization link for the caller to show once (never log it)."""
    _refuse_if_disabled(connection)
    return build_reauth_link(connection, created_for=f"copied by {requested_by}")


def connection_email_reauth_link(*, connection: Connection, requested_by: str) -> str:
    """Mail a fresh link to the connection's contact; returns the address it went to."""
    if not connection.contact_email:
        raise ServiceError(
            f"{connection.name} has no contact email: add one on the edit page first.",
            field="contact_email",
        )
    _refuse_if_disabled(connection)
    days = settings.TOKENADMIN["REAUTH_LINK_DAYS"]
    context = {
        "connection": connection,
        "url": build_reauth_link(connection, created_for=f"emailed by {requested_by}"),
        "days": days,
        "expires": _when(timezone.now() + timedelta(days=days)),
        "requested_by": requested_by,
    }
    subject = render_to_string("connections/email/reauth_link-subject.txt", context)
    mail = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=render_to_string("connections/email/reauth_link-body.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[connection.contact_email],
        connection=get_connection(timeout=settings.TOKENADMIN["HTTP_TIMEOUT"]),
    )
    mail.attach_alternative(
        render_to_string("connections/email/reauth_link-body.html", context), "text/html"
    )
    try:
        mail.send(fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        # A server's message may echo credentials from EMAIL_URL: say only what kind it was.
        raise ServiceError(
            f"The email could not be sent ({type(exc).__name__}); try again or copy the link."
        ) from None
    return connection.contact_email


# --- discovery preview ----------------------------------------------------------------------


def provider_discover(*, issuer: str) -> ProviderMetadata:
    """The endpoints an issuer publishes (OIDC Discovery / RFC 8414), shown before saving;
    nothing is stored."""
    try:
        validate_url(issuer.strip(), what="The issuer", field="issuer")
        return discover(issuer.strip())
    except PresetError as exc:
        raise ServiceError(str(exc), field="issuer") from exc
    except OAuthError as exc:
        raise ServiceError(f"Discovery failed for {issuer.strip()}: {exc}", field="issuer") from exc
