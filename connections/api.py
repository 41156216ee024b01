"""The token API for pipelines: `/api/v1/connections[/<slug>[/token|/refresh]]`.

Auth is `Authorization: Bearer <api key>`. Errors are JSON `{"error": code, "message": …}` with
401 (no or bad key), 403 (key not allowed this connection), 404, 409 (a person must act: not
authorized, needs reauthorization, disabled) and 503 (provider down; Retry-After). A refresh
token or client secret is never returned.
"""

import logging
import math
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.db.models import Q
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from connections.lifecycle import (
    ProviderUnavailable,
    TokenUnavailable,
    get_access_token,
    refresh_connection,
)
from connections.listing import list_connections, parse_list_query
from connections.models import ApiKey, Connection, RefreshAttempt
from connections.serializers import connection_summary, iso
from connections.services import ServiceError

logger = logging.getLogger(__name__)


def _error(status: int, code: str, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": code, "message": message}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _authenticate(request: HttpRequest) -> ApiKey | None:
    scheme, _, raw_key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw_key.strip():
        return None
    key = ApiKey.objects.active().filter(key_hash=ApiKey.hash_key(raw_key.strip())).first()
    if key is not None:
        # At most one write a minute per key: the hot path must not queue behind the sweeps.
        now = timezone.now()
        ApiKey.objects.filter(pk=key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timedelta(minutes=1))
        ).update(last_used_at=now)
    return key


def api_view(view: Callable[..., JsonResponse]) -> Callable[..., JsonResponse]:
    """Authenticate the key and resolve `slug` to a connection the key may use."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, slug: str | None = None) -> JsonResponse:
        key = _authenticate(request)
        if key is None:
            return _error(
                401,
                "unauthorized",
                "Send a valid API key as 'Authorization: Bearer <key>'.",
                WWW_Authenticate='Bearer realm="tokenadmin"',
            )
        if slug is None:
            return view(request, key)
        connection = (
            Connection.objects.select_related("provider", "backup__provider")
            .filter(slug=slug)
            .first()
        )
        if connection is None:
            return _error(404, "not_found", f"No connection {slug!r}.")
        if not key.allows(connection):
            return _error(403, "forbidden", f"This API key may not use {slug!r}.")
        return view(request, key, connection)

    return wrapper


def _token_payload(primary: Connection, served: Connection) -> dict[str, Any]:
    if served.pk == primary.pk:
        primary = served  # the refreshed row: its status and dates are the current ones
    expires_in = (
        max(0, math.floor((served.access_expires_at - timezone.now()).total_seconds()))
        if served.access_expires_at
        else None
    )
    return {
        "access_token": served.access_token,
        "token_type": served.token_type or "Bearer",
        "expires_at": iso(served.access_expires_at),
        "expires_in": expires_in,
        "connection": primary.slug,
        "served_by": served.slug,
        "status": primary.status,
        "reauthorize_by": iso(primary.reauthorize_by),
    }


def _unavailable(exc: TokenUnavailable) -> JsonResponse:
    if isinstance(exc, ProviderUnavailable):
        retry_after = str(math.ceil(exc.retry_after)) if exc.retry_after else "30"
        return _error(503, exc.code, str(exc), Retry_After=retry_after)
    return _error(409, exc.code, str(exc))


def _parse_min_ttl(request: HttpRequest) -> int | None:
    raw = request.GET.get("min_ttl")
    if raw is None or raw == "":
        return None
    value = int(raw)
    if not 0 <= value <= 86400:
        raise ValueError(raw)
    return value


def _serve(connection: Connection, fetch: Callable[[Connection], Connection]) -> JsonResponse:
    """Serve the connection's token, or its backup's when the primary cannot (failover)."""
    try:
        served = fetch(connection)
    except TokenUnavailable as primary_error:
        backup = connection.backup
        if backup is None:
            return _unavailable(primary_error)
        try:
            served = get_access_token(backup)
        except TokenUnavailable:
            return _unavailable(primary_error)
        logger.warning(
            "connection %s: serving backup %s (%s)",
            connection.slug,
            backup.slug,
            primary_error.code,
        )
        connection.refresh_from_db(fields=["status", "status_reason"])
    return JsonResponse(_token_payload(connection, served))


@require_GET
@api_view
def token(request: HttpRequest, key: ApiKey, connection: Connection) -> JsonResponse:
    try:
        min_ttl = _parse_min_ttl(request)
    except ValueError:
        return _error(400, "bad_request", "min_ttl must be a whole number of seconds, 0 to 86400.")
    return _serve(connection, lambda c: get_access_token(c, min_ttl=min_ttl))


@require_POST
@api_view
def refresh(request: HttpRequest, key: ApiKey, connection: Connection) -> JsonResponse:
    return _serve(
        connection,
        lambda c: refresh_connection(c, trigger=RefreshAttempt.Trigger.FORCED, force=True),
    )


@require_GET
@api_view
def connection_detail(request: HttpRequest, key: ApiKey, connection: Connection) -> JsonResponse:
    return JsonResponse(connection_summary(connection))


@require_GET
@api_view
def connection_list(request: HttpRequest, key: ApiKey) -> JsonResponse:
    """`?status=active,expiring&limit=N` (default 100, at most 500); follow `next` for more."""
    try:
        query = parse_list_query(request.GET)
    except ServiceError as exc:
        return _error(400, "bad_request", str(exc))
    page = list_connections(key=key, query=query)
    next_url = None
    if page.next_cursor is not None:
        params = request.GET.copy()
        params["cursor"] = page.next_cursor
        next_url = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
    return JsonResponse(
        {"connections": [connection_summary(c) for c in page.connections], "next": next_url}
    )
