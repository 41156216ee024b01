"""A refresh the provider refused: permanent errors need a person, transient ones a back-off.

DESIGN refresh rules 5 and 6: permanent errors (RFC 6749 §5.2) make the connection
`needs_reauth`, after a re-read shows no other caller refreshed meanwhile; transient errors keep
every token, back off exponentially with jitter (honouring Retry-After) and make the connection
`degraded` after repeated failures, or at once when no valid access token is left.
"""

import logging
import random
from datetime import timedelta

from django.db.models import F
from django.utils import timezone

from connections import oauth
from connections.lifecycle.errors import NeedsReauth
from connections.lifecycle.store import reload_connection
from connections.models import Connection, RefreshAttempt

logger = logging.getLogger(__name__)

Status = Connection.Status

BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600


def backoff_seconds(failures: int, retry_after: float | None = None) -> float:
    """Exponential back-off with jitter, capped; never sooner than the provider's Retry-After."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, failures - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0)


def record_permanent_failure(
    connection: Connection, exc: oauth.OAuthError, attempt: RefreshAttempt
) -> Connection:
    """Record the refusal; return the connection if another caller's tokens make it moot,
    else move it to `needs_reauth` and raise NeedsReauth."""
    attempt.outcome = RefreshAttempt.Outcome.PERMANENT_ERROR
    attempt.save()
    fresh = reload_connection(connection)
    if fresh.version != connection.version and fresh.access_token_valid_for(0):
        # Lost a race (rule 6): someone else refreshed and our refresh token was stale.
        return fresh
    Connection.objects.filter(pk=connection.pk).update(
        failure_count=F("failure_count") + 1, last_error_code=exc.code[:64]
    )
    if exc.code in ("invalid_client", "unauthorized_client"):
        reason = f"the provider rejected the client credentials ({exc.code}); check id and secret"
    else:
        reason = f"the provider rejected the refresh token ({exc.code})"
        if connection.last_error_code == "timeout":
            # The provider may have rotated the token during the refresh we gave up on.
            reason += "; the refresh before it timed out, so the provider probably rotated it then"
    fresh.change_status(Status.NEEDS_REAUTH, reason=reason, expected=Connection.LIVE_STATUSES)
    raise NeedsReauth(f"{connection.slug} needs reauthorization: {reason}")


def record_transient_failure(
    connection: Connection,
    exc: oauth.OAuthError,
    attempt: RefreshAttempt,
    *,
    degraded_after: int,
) -> float:
    """Record the failure and the back-off; return the seconds until the next attempt."""
    attempt.outcome = RefreshAttempt.Outcome.TRANSIENT_ERROR
    attempt.save()
    failures = connection.failure_count + 1
    now = timezone.now()
    delay = backoff_seconds(failures, exc.retry_after)
    Connection.objects.filter(pk=connection.pk).update(
        failure_count=failures,
        last_error_code=exc.code[:64],
        next_attempt_at=now + timedelta(seconds=delay),
    )
    logger.warning(
        "connection %s: transient refresh failure %d (%s)", connection.slug, failures, exc.code
    )
    if failures >= degraded_after or not connection.access_token_valid_for(0, now=now):
        connection.change_status(
            Status.DEGRADED,
            reason=f"{failures} refresh failures in a row; last: {exc.code}",
            expected=(Status.ACTIVE, Status.EXPIRING),
        )
    return delay
