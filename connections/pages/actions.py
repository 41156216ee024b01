"""The connection page's buttons: POST with CSRF, each calling one service.

Sent by htmx, a button gets back its feedback and, out of band, the page's status card, action
bar and timeline (no page reload). Without JavaScript it is a plain form POST answered with a
redirect back to the page and a flash message; the copied link is the exception, rendered
straight into the page (a link never goes into the session's message store).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from alerts import drills
from connections import actions, services
from connections.actions import ActionDone
from connections.models import Connection
from connections.pages.detail import load_for_page, page_context
from connections.services import ServiceError

Perform = Callable[[HttpRequest, Connection], ActionDone]


def _actor(request: HttpRequest) -> str:
    return f"{request.user.get_username()} on the dashboard"


def _answer(request: HttpRequest, slug: str, done: ActionDone, *, link: str = "") -> HttpResponse:
    if request.htmx or link:
        context = page_context(request, load_for_page(slug)) | {"done": done, "link": link}
        template = "connections/partials/action_result.html"
        if not request.htmx:
            template = "connections/connection_detail.html"
        response = render(request, template, context)
        if link:
            # The link is a credential for one consent: keep it out of any Referer.
            response.headers["Referrer-Policy"] = "no-referrer"
        return response
    messages.add_message(request, messages.SUCCESS if done.ok else messages.ERROR, done.message)
    return redirect("connection-detail", slug=slug)


def action(perform: Perform) -> Callable[[HttpRequest, str], HttpResponse]:
    """A POST-only, staff-only view around `perform`; a ServiceError becomes the feedback."""

    @staff_member_required
    @require_POST
    @never_cache
    @wraps(perform)
    def view(request: HttpRequest, slug: str) -> HttpResponse:
        connection = Connection.objects.select_related("provider").filter(slug=slug).first()
        if connection is None:
            raise Http404("No such connection.")
        try:
            done = perform(request, connection)
        except ServiceError as exc:
            done = ActionDone(False, str(exc))
        return _answer(request, slug, done)

    return view


@action
def refresh_now(request: HttpRequest, connection: Connection) -> ActionDone:
    return actions.connection_refresh_now(connection=connection)


@action
def check_now(request: HttpRequest, connection: Connection) -> ActionDone:
    return actions.connection_check_now(connection=connection)


@action
def email_link(request: HttpRequest, connection: Connection) -> ActionDone:
    to = actions.connection_email_reauth_link(connection=connection, requested_by=_actor(request))
    return ActionDone(True, f"Emailed a fresh reauthorization link to {to}.")


@action
def test_alert(request: HttpRequest, connection: Connection) -> ActionDone:
    sent = drills.send_connection_test_alert(connection=connection, requested_by=_actor(request))
    if not sent:
        return ActionDone(
            False,
            f"No alert rule covers {connection.name}: nobody would be told. "
            "Add a rule and a channel in the admin.",
        )
    outcomes = [
        f"{row.channel.name}: {row.get_status_display().lower()}"
        + (f" ({row.error})" if row.error else "")
        for row in sent
    ]
    ok = all(row.status == row.Status.SENT for row in sent)
    return ActionDone(ok, "Test alert (needs reauthorization) — " + "; ".join(outcomes) + ".")


@action
def disable(request: HttpRequest, connection: Connection) -> ActionDone:
    reason = request.POST.get("reason", "").strip()[:200]
    if services.connection_disable(connection=connection, reason=reason, actor=_actor(request)):
        return ActionDone(True, f"Disabled {connection.name}: no tokens are served or refreshed.")
    return ActionDone(True, f"{connection.name} was already disabled.")


@action
def enable(request: HttpRequest, connection: Connection) -> ActionDone:
    if services.connection_enable(connection=connection, actor=_actor(request)):
        return ActionDone(
            True, f"Enabled {connection.name}: {connection.get_status_display().lower()}."
        )
    return ActionDone(True, f"{connection.name} was not disabled.")


@staff_member_required
@require_POST
@never_cache
def copy_link(request: HttpRequest, slug: str) -> HttpResponse:
    """A fresh link, shown once to this staff user (not stored in messages, not logged)."""
    connection = Connection.objects.select_related("provider").filter(slug=slug).first()
    if connection is None:
        raise Http404("No such connection.")
    try:
        link = actions.connection_reauth_link(connection=connection, requested_by=_actor(request))
    except ServiceError as exc:
        return _answer(request, slug, ActionDone(False, str(exc)))
    done = ActionDone(
        True, "A fresh reauthorization link: copy it now, it is not shown again. It works once."
    )
    return _answer(request, slug, done, link=link)
