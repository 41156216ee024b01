"""Knowing before the pipeline does: the daily expiry monitor and the health canaries.

The monitor moves connections between `active`, `expiring` and `needs_reauth` from what is known
of their refresh tokens and their consumers' next runs; every move is a StatusChange row, so the
alerts built on those rows fire once per incident. Health checks call a cheap endpoint with the
current access token and record a HealthCheck row; a rejected canary on a token we believe valid
(a revoked or descoped grant) is confirmed with a fresh token before it changes the status.
"""

import logging
import time
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Max, Prefetch
from django.utils import timezone

from connections import oauth
from connections.lifecycle import (
    TokenUnavailable,
    client_for,
    get_access_token,
    refresh_connection,
)
from connections.models import (
    AuthorizationRequest,
    Connection,
    ConsumerSchedule,
    HealthCheck,
    RefreshAttempt,
)
from connections.status import evaluate_expiry

logger = logging.getLogger(__name__)

Status = Connection.Status


def monitor_expiry(*, now: datetime | None = None) -> Counter[str]:
    """Recompute every live connection's expiry status; return the transitions made."""
    now = now or timezone.now()
    connections = (
        Connection.objects.filter(status__in=Connection.LIVE_STATUSES)
        .select_related("provider")
        .prefetch_related(Prefetch("consumer_schedules", queryset=ConsumerSchedule.objects.all()))
    )
    moves: Counter[str] = Counter()
    for connection in connections.iterator(chunk_size=500):
        target, reason = evaluate_expiry(connection, now=now)
        if target == connection.status:
            continue  # nothing to record; no transaction, no write lock
        if connection.status == Status.DEGRADED and target != Status.NEEDS_REAUTH:
            continue  # only a successful refresh clears `degraded`
        if connection.change_status(target, reason=reason, expected=(connection.status,)):
            moves[target] += 1
    return moves


def _canary(connection: Connection) -> tuple[str, str] | None:
    provider = connection.provider
    if connection.health_check_url:
        return HealthCheck.Method.URL, connection.health_check_url
    if provider.userinfo_url:
        return HealthCheck.Method.USERINFO, provider.userinfo_url
    if provider.introspect_url:
        return HealthCheck.Method.INTROSPECTION, provider.introspect_url
    return None


def _call_canary(connection: Connection, method: str, url: str) -> HealthCheck:
    check = HealthCheck(connection=connection, method=method, ok=False)
    clock = time.monotonic()
    try:
        if method == HealthCheck.Method.INTROSPECTION:
            answer = oauth.introspect(
                client_for(connection), url, token=connection.access_token, hint="access_token"
            )
            if answer.get("active") is not True:
                raise oauth.OAuthError(
                    "inactive",
                    "introspection says the token is not active",
                    permanent=True,
                    http_status=200,
                )
            check.http_status = 200
        else:
            check.http_status = oauth.probe(url, access_token=connection.access_token)
        check.ok = True
    except oauth.OAuthError as exc:
        check.http_status = exc.http_status
        check.error_code = exc.code[:64]
        check.message = str(exc)[:500]
    check.latency_ms = int((time.monotonic() - clock) * 1000)
    check.save()
    return check


def check_health(connection: Connection) -> HealthCheck | None:
    """Run the connection's canary; None when it has none or cannot get a token to test.

    A canary rejected as unauthorized is retried once with a freshly refreshed token; a provider
    that rejects a token it just issued has revoked or narrowed the grant.
    """
    canary = _canary(connection)
    if canary is None:
        return None
    try:
        connection = get_access_token(connection)
    except TokenUnavailable as exc:
        logger.info("health check of %s skipped: %s", connection.slug, exc.code)
        return None
    check = _call_canary(connection, *canary)
    if check.ok or check.error_code not in ("unauthorized", "inactive"):
        return check
    try:
        connection = refresh_connection(
            connection, trigger=RefreshAttempt.Trigger.FORCED, force=True
        )
    except TokenUnavailable:
        return check  # the refresh itself recorded why (e.g. invalid_grant → needs_reauth)
    check = _call_canary(connection, *canary)
    if not check.ok and check.error_code in ("unauthorized", "inactive"):
        connection.change_status(
            Status.NEEDS_REAUTH,
            expected=Connection.LIVE_STATUSES,
            reason=f"health check: the provider rejects a fresh token ({check.error_code}); "
            "the grant was revoked or its scopes narrowed",
        )
    return check


def check_all_health() -> Counter[str]:
    """Check live connections, least recently checked first, within the sweep's time budget
    (below the task timeout, so the cluster never kills a check mid-refresh); the rest are
    `deferred` to the next run. Returns ok/failed/skipped/deferred counts."""
    deadline = time.monotonic() + settings.TOKENADMIN["SWEEP_BUDGET_SECONDS"]
    outcomes: Counter[str] = Counter()
    live = (
        Connection.objects.filter(status__in=Connection.LIVE_STATUSES)
        .annotate(last_checked_at=Max("health_checks__checked_at"))
        .order_by(F("last_checked_at").asc(nulls_first=True), "pk")
        .select_related("provider")
    )
    for connection in live.iterator(chunk_size=200):
        if time.monotonic() > deadline:
            outcomes["deferred"] += 1
            continue
        check = check_health(connection)
        outcomes["skipped" if check is None else "ok" if check.ok else "failed"] += 1
    return outcomes


HISTORY_DAYS = {"health_checks": 30, "refresh_attempts": 90}


def purge_history(*, now: datetime | None = None) -> int:
    """Delete rows nothing reads any more, so daily work does not grow with age:
    consent trips older than a day (each link opening, mail scanners too, makes one, and after
    15 minutes they can only be refused), old health checks and refresh attempts. Status
    changes are kept: they are the connection's timeline."""
    now = now or timezone.now()
    deleted = 0
    for queryset in (
        AuthorizationRequest.objects.filter(created_at__lt=now - timedelta(days=1)),
        HealthCheck.objects.filter(
            checked_at__lt=now - timedelta(days=HISTORY_DAYS["health_checks"])
        ),
        RefreshAttempt.objects.filter(
            started_at__lt=now - timedelta(days=HISTORY_DAYS["refresh_attempts"])
        ),
    ):
        deleted += queryset.delete()[0]
    return deleted
