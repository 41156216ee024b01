import secrets

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from connections import held_grants, site
from connections.authorize import (
    AuthorizationFailed,
    Authorized,
    complete_authorization,
    start_authorization,
)
from connections.confirmations import NOT_WAITING, confirm_held_grant, discard_held_grant
from connections.links import LinkError, build_reauth_link, resolve_reauth_link
from connections.models import AuthorizationRequest, Connection

BROWSER_KEY = "tokenadmin_browser_secret"


def _browser_secret(request: HttpRequest) -> str:
    """A per-browser secret in the session; binds a consent trip to the browser that began it."""
    secret = request.session.get(BROWSER_KEY)
    if not secret:
        secret = request.session[BROWSER_KEY] = secrets.token_urlsafe(32)
    return secret


def _no_referrer(response: HttpResponse) -> HttpResponse:
    # These pages' URLs carry a link token or an authorization code: keep them out of Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _same_origin_referrer(response: HttpResponse) -> HttpResponse:
    # Pages with a form: CSRF checks the Origin of the POST, which `no-referrer` turns into
    # "null"; `same-origin` still keeps the URL from every other site.
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _result_referrer(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    # A staff user gets a form (a fresh link in one click): its POST needs a same-origin Origin.
    return _same_origin_referrer(response) if request.user.is_staff else _no_referrer(response)


def _failure_page(request: HttpRequest, exc: AuthorizationFailed) -> HttpResponse:
    context = {"ok": False, "kind": exc.kind, "message": str(exc), "connection": exc.connection}
    page = render(request, "connections/flow_result.html", context, status=400)
    return _result_referrer(request, page)


def _connected_page(request: HttpRequest, connection: Connection) -> HttpResponse:
    account = connection.account_label or connection.account_id
    message = f"{connection.name} is connected" + (f" as {account}." if account else ".")
    context = {"ok": True, "connection": connection, "message": message}
    return _no_referrer(render(request, "connections/flow_result.html", context))


def _held_context(held: AuthorizationRequest) -> dict:
    return {
        "held": held,
        "connection": held.connection,
        "account": held.held_account_label or held.held_account_id,
        "reason": held.outcome.removeprefix(f"{held_grants.HELD}:").strip(),
        "confirm_url": held_grants.confirmation_url(held),
    }


def _held_page(request: HttpRequest, result: Authorized) -> HttpResponse:
    """The grant awaits a staff confirmation: a staff user in this browser confirms here."""
    assert result.held is not None
    context = _held_context(result.held) | {
        "ok": False,
        "kind": "held",
        "message": f"{result.connection.name} was authorized at the provider, but the grant "
        "waits for an administrator to confirm its account before it is used.",
    }
    page = render(request, "connections/flow_result.html", context, status=202)
    return _same_origin_referrer(page) if request.user.is_staff else _no_referrer(page)


@require_GET
@never_cache
@site.on_site_host  # before the session gets the browser secret: see connections/site.py
def reauth(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = resolve_reauth_link(token)
    except LinkError as exc:
        context = {"ok": False, "kind": exc.reason, "message": str(exc)}
        context["connection"] = exc.connection
        status = 410 if exc.reason in ("expired", "consumed") else 400
        page = render(request, "connections/flow_result.html", context, status=status)
        return _result_referrer(request, page)
    try:
        url = start_authorization(
            link.connection, browser_secret=_browser_secret(request), link=link
        )
    except AuthorizationFailed as exc:
        return _failure_page(request, exc)
    return redirect(url)


@require_GET
@never_cache
def oauth_callback(request: HttpRequest) -> HttpResponse:
    params = request.GET
    try:
        result = complete_authorization(
            state=params.get("state", ""),
            code=params.get("code", ""),
            error=params.get("error", ""),
            browser_secret=_browser_secret(request),
            issuer=params.get("iss", ""),
        )
    except AuthorizationFailed as exc:
        return _failure_page(request, site.explain_wrong_host(request, exc))
    if result.held is not None:
        return _held_page(request, result)
    return _connected_page(request, result.connection)


@staff_member_required
@require_http_methods(["GET", "POST"])
@never_cache
def confirm_grant(request: HttpRequest, token: str) -> HttpResponse:
    """A held grant: GET shows whose it is as far as known; POST confirms or discards it."""
    try:
        held = held_grants.find_held_request(token)
    except held_grants.HeldGrantNotFound as exc:
        context = {"ok": False, "kind": "invalid", "message": str(exc)}
        return render(request, "connections/flow_result.html", context, status=404)
    if request.method == "POST":
        return _decide(request, held, discard=request.POST.get("action") == "discard")
    if not held_grants.is_held(held, now=timezone.now()):
        exc = AuthorizationFailed("not_held", NOT_WAITING, connection=held.connection)
        context = {"ok": False, "kind": exc.kind, "message": str(exc), "connection": exc.connection}
        return render(request, "connections/flow_result.html", context, status=410)
    page = render(request, "connections/confirm_grant.html", _held_context(held))
    return _same_origin_referrer(page)


def _decide(request: HttpRequest, held: AuthorizationRequest, *, discard: bool) -> HttpResponse:
    by = f"staff user {request.user.get_username()}"
    try:
        if not discard:
            return _connected_page(request, confirm_held_grant(request=held, confirmed_by=by))
        discard_held_grant(request=held, discarded_by=by)
    except AuthorizationFailed as exc:
        return _failure_page(request, exc)
    message = "The grant was discarded and revoked at the provider. Nothing was stored."
    context = {"ok": False, "kind": "discarded", "message": message, "connection": held.connection}
    return render(request, "connections/flow_result.html", context)


@staff_member_required
@require_POST
def authorize(request: HttpRequest, slug: str) -> HttpResponse:
    """Start a consent trip for a connection from the dashboard, through a fresh link.

    The link is absolute on SITE_URL, so a dashboard opened on another host name hands the trip
    over to SITE_URL's host here, before any session there holds a part of it (connections/
    site.py); the link view then serves it on the right host. Nothing is lost: the staff user's
    click becomes the trip, not a message in a session the other host name cannot read."""
    connection = get_object_or_404(Connection, slug=slug)
    url = build_reauth_link(connection, created_for=f"dashboard: {request.user}")
    return redirect(url)
