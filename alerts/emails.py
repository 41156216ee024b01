"""One function per email kind, each rendering three templates under templates/alerts/email/:
`<kind>-subject.txt`, `<kind>-body.txt` and `<kind>-body.html`.

A kind says whether a person must act (then the email carries a fresh one-click reauthorization
link, a new ReauthLink row per email, valid TOKENADMIN_REAUTH_LINK_DAYS) and its three runbook
lines. Opening a link does not consume it, so a mail scanner that follows links spends nothing;
only completing the provider's consent does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from connections.links import build_reauth_link
from connections.models import Connection

if TYPE_CHECKING:
    from alerts.messages import Description


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def _fresh_link(about: Description, connection: Connection | None) -> dict[str, str]:
    """A new link for this one email; none for a fire drill or a disabled connection (its
    consent flow refuses to start)."""
    if about.is_test or connection is None or connection.status == Connection.Status.DISABLED:
        return {}
    days = settings.TOKENADMIN["REAUTH_LINK_DAYS"]
    expires_at = timezone.now() + timedelta(days=days)
    return {
        "url": build_reauth_link(connection, created_for=f"email: {about.event}"),
        "days": str(days),
        "expires": f"{expires_at:%Y-%m-%d %H:%M} UTC",
    }


def _render(
    kind: str, about: Description, *, runbook: tuple[str, str, str], link: dict[str, str]
) -> RenderedEmail:
    context = {"about": about, "runbook": runbook, "link": link}
    subject = render_to_string(f"alerts/email/{kind}-subject.txt", context)
    return RenderedEmail(
        # One line, whatever a connection's name holds: a header cannot carry a newline.
        subject=" ".join(subject.split()),
        text=render_to_string(f"alerts/email/{kind}-body.txt", context),
        html=render_to_string(f"alerts/email/{kind}-body.html", context),
    )


def _reauthorize_elsewhere(about: Description) -> str:
    return (
        "No link, or it expired? Press Reauthorize on the dashboard, or run "
        f"`manage.py connection reauth-link {about.slug}`."
    )


def needs_reauth(about: Description, *, connection: Connection | None) -> RenderedEmail:
    account = f" as {about.account}" if about.account else ""
    return _render(
        "needs_reauth",
        about,
        link=_fresh_link(about, connection),
        runbook=(
            f"Open the link and consent at {about.provider}{account}; it works once.",
            _reauthorize_elsewhere(about),
            "Then rerun the pipeline runs that failed; a recovered notice confirms the fix.",
        ),
    )


def expiry_warning(about: Description, *, connection: Connection | None) -> RenderedEmail:
    account = f" as {about.account}" if about.account else ""
    return _render(
        "expiry_warning",
        about,
        link=_fresh_link(about, connection),
        runbook=(
            f"Open the link and consent at {about.provider}{account} before the date above: "
            "no refresh can extend this token.",
            _reauthorize_elsewhere(about),
            "The dashboard then shows the new reauthorize-by date; reminders for this one stop.",
        ),
    )


def refresh_failed(about: Description, *, connection: Connection | None) -> RenderedEmail:
    return _render(
        "refresh_failed",
        about,
        link={},
        runbook=(
            "Nothing is lost: every token is kept and the refresh is retried with back-off.",
            "Check the provider's status page and the error on the dashboard's timeline.",
            "If the provider rejects the client itself, set a new client secret in the admin.",
        ),
    )


def recovered(about: Description, *, connection: Connection | None) -> RenderedEmail:
    return _render(
        "recovered",
        about,
        link={},
        runbook=(
            "Nothing to do: the connection serves tokens again.",
            "Rerun the pipeline runs that failed while it was down.",
            "The dashboard's timeline shows what happened and when.",
        ),
    )


def health_failed(about: Description, *, connection: Connection | None) -> RenderedEmail:
    return _render(
        "health_failed",
        about,
        link={},
        runbook=(
            "The canary call failed; refreshes may still work, pipelines may not.",
            "Check the provider's status page and the grant's scopes in the provider's console.",
            "If the grant was revoked, a needs-reauthorization email with a link follows.",
        ),
    )


def failover(about: Description, *, connection: Connection | None) -> RenderedEmail:
    backup = about.backup or "the backup connection"
    return _render(
        "failover",
        about,
        link={},
        runbook=(
            f"Pipelines are served by {backup}: nothing breaks now.",
            "Find out on the dashboard why the primary cannot serve; fix or reauthorize it.",
            "tokenadmin serves from the primary again by itself once it can.",
        ),
    )


def account_mismatch(about: Description, *, connection: Connection | None) -> RenderedEmail:
    account = about.account or "the pinned account"
    return _render(
        "account_mismatch",
        about,
        link=_fresh_link(about, connection),
        runbook=(
            "Nothing was stored: the connection keeps the grant it had.",
            f"Use the link while signed in at {about.provider} as {account}.",
            "If the account really changed, an admin clears the pinned account first.",
        ),
    )


def secret_rotation_due(about: Description, *, connection: Connection | None) -> RenderedEmail:
    return _render(
        "secret_rotation_due",
        about,
        link={},
        runbook=(
            f"Create a new client secret in {about.provider}'s developer console.",
            "Enter it as the connection's client secret in the admin.",
            "Revoke the old secret at the provider once a refresh with the new one succeeded.",
        ),
    )


def fire_drill(about: Description, *, connection: Connection | None) -> RenderedEmail:
    return _render(
        "test",
        about,
        link={},
        runbook=(
            "This is a fire drill: nothing happened to any connection.",
            "You received it, so this channel works.",
            "Real alerts carry a one-click reauthorization link whenever a person must act.",
        ),
    )


KINDS: dict[str, Callable[..., RenderedEmail]] = {
    "needs_reauth": needs_reauth,
    "expiry_warning": expiry_warning,
    "refresh_failed": refresh_failed,
    "recovered": recovered,
    "health_failed": health_failed,
    "failover": failover,
    "account_mismatch": account_mismatch,
    "secret_rotation_due": secret_rotation_due,
    "test": fire_drill,
}


def render_email(about: Description, *, connection: Connection | None) -> RenderedEmail:
    return KINDS[about.kind](about, connection=connection)
