import secrets

from django.contrib.admin.views.decorators import staff_member_required
from django.db import connection as db_connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from connections.authorize import AuthorizationFailed, complete_authorization, start_authorization
from connections.links import LinkError, build_reauth_link, resolve_reauth_link
from connections.models import Connection

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


def _failure_page(request: HttpRequest, exc: AuthorizationFailed) -> HttpResponse:
    context = {"ok": False, "kind": exc.kind, "message": str(exc), "connection": exc.connection}
    return _no_referrer(render(request, "connections/flow_result.html", context, status=400))


@require_GET
@never_cache
def reauth(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = resolve_reauth_link(token)
    except LinkError as exc:
        return _no_referrer(
            render(
                request,
                "connections/flow_result.html",
                {"ok": False, "kind": exc.reason, "message": str(exc)},
                status=410 if exc.reason in ("expired", "consumed") else 400,
            )
        )
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
        connection = complete_authorization(
            state=params.get("state", ""),
            code=params.get("code", ""),
            error=params.get("error", ""),
            browser_secret=_browser_secret(request),
            issuer=params.get("iss", ""),
        )
    except AuthorizationFailed as exc:
        return _failure_page(request, exc)
    account = connection.account_label or connection.account_id
    message = f"{connection.name} is connected" + (f" as {account}." if account else ".")
    return _no_referrer(
        render(
            request,
            "connections/flow_result.html",
            {"ok": True, "connection": connection, "message": message},
        )
    )


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    connections = Connection.objects.select_related("provider").order_by("name")
    return render(request, "connections/dashboard.html", {"connections": connections})


@staff_member_required
@require_POST
def authorize(request: HttpRequest, slug: str) -> HttpResponse:
    """Start a consent trip for a connection from the dashboard, through a fresh link."""
    connection = get_object_or_404(Connection, slug=slug)
    url = build_reauth_link(connection, created_for=f"dashboard: {request.user}")
    return redirect(url)


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    try:
        with db_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return JsonResponse({"status": "error", "database": type(exc).__name__}, status=503)
    return JsonResponse({"status": "ok"})
