"""The token API for pipelines: `/api/v1/connections[/<slug>[/token|/token/rejected|/refresh]]`.

Auth is `Authorization: Bearer <api key>`. Errors are JSON `{"error": code, "message": …}` with
401 (no or bad key), 403 (key not allowed this connection), 404, 409 (a person must act: not
authorized, needs reauthorization, disabled; the body adds the reauthorize-by facts, the next
step and the connection's dashboard URL) and 503 (provider down; Retry-After). A refresh token or
client secret is never returned. Views parse, call one service (`connections.services`), render.
"""

import json
import math
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from django.views.defaults import page_not_found

from connections import services
from connections.lifecycle import ProviderUnavailable, TokenUnavailable
from connections.listing import list_connections, parse_list_query
from connections.models import ApiKey, Connection
from connections.serializers import connection_summary, iso
from connections.services import ServiceError
from connections.serving import ServedToken, next_step
from connections.token_lookup import lookup_token


def _error(status: int, code: str, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": code, "message": message}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _bearer_key(request: HttpRequest) -> str | None:
    scheme, _, raw_key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw_key.strip():
        return None
    return raw_key.strip()


def _unauthorized() -> JsonResponse:
    return _error(
        401,
        "unauthorized",
        "Send a valid API key as 'Authorization: Bearer <key>'.",
        WWW_Authenticate='Bearer realm="tokenadmin"',
    )


def _note_use(key: ApiKey) -> None:
    # At most one write a minute per key: the hot path must not queue behind the sweeps. The
    # key row read says whether one is due, so a key in steady use costs no write at all.
    now = timezone.now()
    recently = now - timedelta(minutes=1)
    if key.last_used_at is not None and key.last_used_at >= recently:
        return
    ApiKey.objects.filter(pk=key.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=recently)
    ).update(last_used_at=now)


def _authenticate(request: HttpRequest) -> ApiKey | None:
    raw_key = _bearer_key(request)
    if raw_key is None:
        return None
    key = ApiKey.objects.active().filter(key_hash=ApiKey.hash_key(raw_key)).first()
    if key is not None:
        _note_use(key)
    return key


def api_view(view: Callable[..., JsonResponse]) -> Callable[..., JsonResponse]:
    """Authenticate the key and resolve `slug` to a connection the key may use."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, slug: str | None = None) -> JsonResponse:
        key = _authenticate(request)
        if key is None:
            return _unauthorized()
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


def _token_payload(served: ServedToken) -> dict[str, Any]:
    primary, token = served.connection, served.served
    expires_in = (
        max(0, math.floor((token.access_expires_at - timezone.now()).total_seconds()))
        if token.access_expires_at
        else None
    )
    payload = {
        "access_token": token.access_token,
        "token_type": token.token_type or "Bearer",
        "expires_at": iso(token.access_expires_at),
        "expires_in": expires_in,
        "connection": primary.slug,
        "served_by": token.slug,
        "status": primary.status,
        "reauthorize_by": iso(primary.reauthorize_by),
    }
    if served.refreshed is not None:
        payload["refreshed"] = served.refreshed
    return payload


def _unavailable(exc: TokenUnavailable, connection: Connection) -> JsonResponse:
    if isinstance(exc, ProviderUnavailable):
        retry_after = str(math.ceil(exc.retry_after)) if exc.retry_after else "30"
        return _error(503, exc.code, str(exc), Retry_After=retry_after)
    # 409: a person must act; say who, by when and where (never a reauthorization link).
    body = {"error": exc.code, "message": str(exc)} | next_step(connection=connection, error=exc)
    return JsonResponse(body, status=409)


def _serve(connection: Connection, serve: Callable[[], ServedToken]) -> JsonResponse:
    try:
        return JsonResponse(_token_payload(serve()))
    except TokenUnavailable as exc:
        return _unavailable(exc, connection)


def _parse_min_ttl(request: HttpRequest) -> int | None:
    """Absent: None. Present, it is what the OpenAPI document says: whole seconds, no sign, no
    blank (`int()` alone would take "", " 5", "+5" and non-ASCII digits)."""
    raw = request.GET.get("min_ttl")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise ValueError(raw)
    value = int(raw)
    if not 0 <= value <= 86400:
        raise ValueError(raw)
    return value


@require_GET
@csrf_exempt
def token(request: HttpRequest, slug: str) -> JsonResponse:
    """The hot path: one statement authenticates the key, checks its scope and reads the
    serving columns (`connections.token_lookup`); the full row is read only when a refresh or
    a failover is needed. Nothing is cached, so revocations and status changes apply at once."""
    raw_key = _bearer_key(request)
    if raw_key is None:
        return _unauthorized()
    found = lookup_token(slug=slug, key_hash=ApiKey.hash_key(raw_key))
    if found is None:
        # No such connection; whether the key is good decides between 401 and 404.
        if _authenticate(request) is None:
            return _unauthorized()
        return _error(404, "not_found", f"No connection {slug!r}.")
    if found.key is None:
        return _unauthorized()
    _note_use(found.key)
    if not found.key_allowed:
        return _error(403, "forbidden", f"This API key may not use {slug!r}.")
    try:
        min_ttl = _parse_min_ttl(request)
    except ValueError:
        return _error(400, "bad_request", "min_ttl must be a whole number of seconds, 0 to 86400.")
    connection = found.connection
    return _serve(
        connection,
        lambda: services.token_serve(connection=connection, key=found.key, min_ttl=min_ttl),
    )


@require_POST
@api_view
def token_rejected(request: HttpRequest, key: ApiKey, connection: Connection) -> JsonResponse:
    """`{"token_sha256": "<64 lowercase hex>"}`: a provider answered 401 to that token."""
    try:
        body = json.loads(request.body or b"null")
    except ValueError:
        body = None
    token_sha256 = body.get("token_sha256") if isinstance(body, dict) else None
    if not isinstance(token_sha256, str):
        return _error(
            400,
            "bad_request",
            'Send JSON {"token_sha256": "<the rejected token\'s SHA-256, 64 lowercase hex>"}.',
        )
    try:
        return _serve(
            connection,
            lambda: services.token_rejected(
                connection=connection, token_sha256=token_sha256, key=key
            ),
        )
    except ServiceError as exc:
        return _error(400, "bad_request", str(exc))


@require_POST
@api_view
def refresh(request: HttpRequest, key: ApiKey, connection: Connection) -> JsonResponse:
    return _serve(connection, lambda: services.token_refresh(connection=connection))


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


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """`handler404`: a URL under /api/ that names nothing (say a slug with a character no slug
    has) answers JSON like every other API error; elsewhere Django's own page."""
    if request.path.startswith("/api/"):
        return _error(404, "not_found", "No such API URL; see /api/v1/openapi.json.")
    return page_not_found(request, exception)
