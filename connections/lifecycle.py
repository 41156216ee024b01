"""The refresh engine: a valid access token on demand, one provider call per expiry.

Rules (DESIGN.md, "Refresh rules"):
- Refresh when the access token expires within the connection's threshold (or the caller's
  `min_ttl`).
- Single flight: a caller claims a lease with a conditional UPDATE, calls the provider outside
  any transaction, writes the result with `WHERE version = <version it read under the lease>`
  and releases. Others poll and re-read. No database lock is held across an HTTP call, so this
  works the same across threads, processes and hosts, on SQLite and PostgreSQL.
- A rotated refresh token is written in the same UPDATE as the new access token; with no new
  refresh token the old one is kept. The refresh token sent is always re-read under the lease,
  so one rotated away by an earlier refresh is never sent. (A refresh that timed out is retried
  once at once with the same token: the provider may never have seen it.)
- Permanent errors (RFC 6749 §5.2) → `needs_reauth`, after a re-read shows no other caller
  refreshed meanwhile. Transient errors keep every token, back off exponentially with jitter
  (honouring Retry-After) and make the connection `degraded` after repeated failures, or at
  once when no valid access token is left.
"""

import copy
import logging
import os
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import OperationalError
from django.db.models import F
from django.utils import timezone

from connections import oauth
from connections.expiry import access_expiry, refresh_expiry
from connections.models import Connection, ExpirySource, Provider, RefreshAttempt
from connections.status import evaluate_expiry

logger = logging.getLogger(__name__)

Status = Connection.Status
Trigger = RefreshAttempt.Trigger

BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600
WRITE_ATTEMPTS = 5


class TokenUnavailable(Exception):
    """No valid access token can be served; `code` names why (for APIs and the CLI)."""

    code = "unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NeedsReauth(TokenUnavailable):
    code = "needs_reauth"


class NotAuthorized(TokenUnavailable):
    code = "not_authorized"


class ConnectionDisabled(TokenUnavailable):
    code = "disabled"


class ProviderUnavailable(TokenUnavailable):
    code = "provider_unavailable"


@dataclass(frozen=True)
class _Config:
    lease_seconds: float
    wait_seconds: float
    degraded_after: int


def _config() -> _Config:
    cfg = settings.TOKENADMIN
    return _Config(
        lease_seconds=cfg["LEASE_SECONDS"],
        wait_seconds=cfg["WAIT_SECONDS"],
        degraded_after=cfg["DEGRADED_AFTER_FAILURES"],
    )


def _lease_owner() -> str:
    return (
        f"{socket.gethostname()[:60]}:{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"
    )


def client_for(connection: Connection) -> oauth.Client:
    provider = connection.provider
    return oauth.Client(
        client_id=connection.client_id,
        client_secret=connection.client_secret,
        token_url=provider.token_url,
        auth_method=provider.token_endpoint_auth_method,
    )


def _reload(connection: Connection) -> Connection:
    return Connection.objects.select_related("provider").get(pk=connection.pk)


def _raise_if_unusable(connection: Connection) -> None:
    if connection.status == Status.DISABLED:
        raise ConnectionDisabled(f"{connection.slug} is disabled.")
    if connection.status == Status.PENDING:
        raise NotAuthorized(f"{connection.slug} has not been authorized yet.")
    if connection.status == Status.NEEDS_REAUTH:
        raise NeedsReauth(
            f"{connection.slug} needs reauthorization: {connection.status_reason or 'grant lost'}"
        )


def get_access_token(connection: Connection, *, min_ttl: int | None = None) -> Connection:
    """Return the connection holding an access token valid for at least the threshold.

    Refreshes when needed (single flight). When the provider is down but the current token still
    covers `min_ttl` (or is simply unexpired), that token is served rather than an error.
    """
    connection = _reload(connection)
    # A grant that needs reauthorization was most likely revoked, and revoking a grant kills its
    # access tokens too (RFC 7009 §2.1): refuse, so the caller fails over instead of failing later.
    _raise_if_unusable(connection)
    need = connection.refresh_margin(min_ttl)
    if connection.access_token_valid_for(need):
        return connection
    try:
        return refresh_connection(connection, trigger=Trigger.ON_DEMAND, min_ttl=min_ttl)
    except ProviderUnavailable:
        current = _reload(connection)
        if current.access_token_valid_for(min_ttl or 0):
            return current
        raise


def refresh_connection(
    connection: Connection,
    *,
    trigger: str,
    force: bool = False,
    min_ttl: int | None = None,
    wait: bool = True,
) -> Connection:
    """Refresh the access token unless another caller already did; return the connection.

    `force` refreshes even a valid token (the admin's "refresh now", `POST …/refresh`, renewal)
    and ignores back-off, but still counts a refresh that another caller finished while we
    waited. `wait=False` (the sweeps) returns at once when another caller holds the lease.
    """
    cfg = _config()
    lease = _Lease(owner=_lease_owner())
    deadline = time.monotonic() + cfg.wait_seconds
    seen_version = connection.version
    first = True
    polls = 0
    while True:
        if not first:
            current = _reload(connection)
            need = current.refresh_margin(min_ttl)
            if current.version != seen_version and current.access_token_valid_for(0):
                # Another caller refreshed while we waited: single flight means we take theirs.
                return current
            if not force and current.access_token_valid_for(need):
                return current
            _raise_if_unusable(current)
        first = False
        # Claim first, read after: the read under the lease is the one that counts, and on the
        # happy path this saves a round trip.
        if Connection.objects.claim_lease(
            connection.pk, owner=lease.owner, seconds=cfg.lease_seconds
        ):
            try:
                return _refresh_under_lease(
                    connection,
                    lease,
                    trigger=trigger,
                    force=force,
                    seen_version=seen_version,
                    min_ttl=min_ttl,
                    cfg=cfg,
                )
            finally:
                if not lease.released:
                    Connection.objects.release_lease(connection.pk, owner=lease.owner)
        if not wait:
            return _reload(connection)
        if time.monotonic() > deadline:
            raise ProviderUnavailable(
                f"{connection.slug}: another refresh is still running", retry_after=5
            )
        # Poll quickly at first (a refresh takes a few hundred ms), then back off to spare the
        # database when a provider is slow.
        polls += 1
        time.sleep(random.uniform(0.5, 1.0) * min(0.5, 0.02 * 2**polls))


@dataclass
class _Lease:
    owner: str
    released: bool = False


def _refresh_under_lease(
    leased: Connection,
    lease: _Lease,
    *,
    trigger: str,
    force: bool,
    seen_version: int,
    min_ttl: int | None,
    cfg: _Config,
) -> Connection:
    # Read under the lease: the refresh token may have rotated since the caller looked.
    connection = _reload(leased)
    if connection.version != seen_version and connection.access_token_valid_for(0):
        return connection
    if not force and connection.access_token_valid_for(connection.refresh_margin(min_ttl)):
        return connection
    _raise_if_unusable(connection)
    now = timezone.now()
    if not force and connection.next_attempt_at and connection.next_attempt_at > now:
        raise ProviderUnavailable(
            f"{connection.slug}: provider failing; next attempt at "
            f"{connection.next_attempt_at:%H:%M:%S} UTC",
            retry_after=(connection.next_attempt_at - now).total_seconds(),
        )
    if not connection.refresh_token:
        connection.change_status(
            Status.NEEDS_REAUTH,
            reason="no refresh token was issued",
            expected=Connection.LIVE_STATUSES,
        )
        raise NeedsReauth(f"{connection.slug} has no refresh token; reauthorize it.")

    started_at = timezone.now()
    clock = time.monotonic()
    try:
        token = _refresh_at_provider(connection, lease, cfg)
    except oauth.OAuthError as exc:
        attempt = RefreshAttempt(
            connection=connection,
            started_at=started_at,
            duration_ms=int((time.monotonic() - clock) * 1000),
            trigger=trigger,
            error_code=exc.code[:64],
            http_status=exc.http_status,
            message=str(exc)[:500],
        )
        if exc.permanent:
            return _record_permanent_failure(connection, exc, attempt)
        delay = _record_transient_failure(connection, exc, attempt, cfg)
        raise ProviderUnavailable(
            f"{connection.slug}: provider error ({exc.code})", retry_after=delay
        ) from exc
    return _store_refresh(connection, token, lease, started_at, clock, trigger, cfg)


def _introspected_refresh_expiry(
    connection: Connection, token: oauth.TokenResponse, *, now: datetime, new_grant: bool
) -> datetime | None:
    """Ask the provider (RFC 7662) when the refresh token expires, if nothing else says."""
    url = connection.provider.introspect_url
    if not url:
        return None
    _, source = refresh_expiry(token, connection, now=now, new_grant=new_grant)
    if source != ExpirySource.UNKNOWN:
        return None
    refresh_token = token.refresh_token or connection.refresh_token
    try:
        answer = oauth.introspect(
            client_for(connection), url, token=refresh_token, hint="refresh_token"
        )
    except oauth.OAuthError as exc:
        logger.info("connection %s: introspection failed (%s)", connection.slug, exc.code)
        return None
    exp = answer.get("exp")
    if answer.get("active") is not True or not isinstance(exp, int | float):
        return None
    try:
        return datetime.fromtimestamp(exp, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _refresh_at_provider(
    connection: Connection, lease: "_Lease", cfg: _Config
) -> oauth.TokenResponse:
    """One refresh; after a read timeout, one immediate retry under the same lease.

    A timed-out refresh may have succeeded at the provider and rotated the token we hold. Any
    retry then sends a rotated-away token; sent at once, it still falls inside the reuse window
    some providers allow after rotation (Okta, Auth0, Xero), where a later one would not.
    """
    client = client_for(connection)
    try:
        return oauth.refresh(client, refresh_token=connection.refresh_token)
    except oauth.OAuthError as exc:
        if exc.code != "timeout":
            raise
        logger.warning("connection %s: refresh timed out; retrying once now", connection.slug)
        _keep_lease(connection, lease, cfg)
        return oauth.refresh(client, refresh_token=connection.refresh_token)


def _keep_lease(connection: Connection, lease: "_Lease", cfg: _Config) -> None:
    """Renew the lease before more work under it, so it cannot run out mid-refresh."""
    if not Connection.objects.extend_lease(
        connection.pk, owner=lease.owner, seconds=cfg.lease_seconds
    ):
        logger.warning("connection %s: refresh lease lost mid-refresh", connection.slug)


def token_fields(
    connection: Connection, token: oauth.TokenResponse, *, now: datetime, new_grant: bool
) -> dict[str, Any]:
    """The column values a token response writes, in one UPDATE with a version bump.

    Includes the rotated refresh token (or keeps the old one when none came back), both expiries
    with their sources, and the sweeps' due times derived from them. When nothing else says when
    the refresh token expires, this asks the provider's introspection endpoint (one HTTP call).
    """
    access_at, access_source = access_expiry(token, connection, now=now)
    refresh_at, refresh_source = refresh_expiry(
        token,
        connection,
        now=now,
        new_grant=new_grant,
        introspected=_introspected_refresh_expiry(connection, token, now=now, new_grant=new_grant),
    )
    fields: dict[str, Any] = {
        "access_token": token.access_token,
        "token_type": token.token_type,
        "access_expires_at": access_at,
        "access_expiry_source": access_source,
        "refresh_expires_at": refresh_at,
        "refresh_expiry_source": refresh_source,
        "last_refreshed_at": now,
        "failure_count": 0,
        "next_attempt_at": None,
        "last_error_code": "",
    }
    if token.refresh_token:
        fields |= {"refresh_token": token.refresh_token, "refresh_issued_at": now}
    if token.scope:
        fields["granted_scopes"] = token.scope[:1000]
    if new_grant:
        fields["authorized_at"] = now
    after = copy.copy(connection)
    for name, value in fields.items():
        setattr(after, name, value)
    return fields | after.due_times() | {"version": F("version") + 1}


def _store_refresh(
    connection: Connection,
    token: oauth.TokenResponse,
    lease: _Lease,
    started_at: datetime,
    clock: float,
    trigger: str,
    cfg: _Config,
) -> Connection:
    _keep_lease(connection, lease, cfg)  # token_fields may introspect; the write may retry
    now = timezone.now()
    if token.refresh_token and connection.provider.rotates_refresh_tokens is None:
        _learn_rotation(connection)
    fields = token_fields(connection, token, now=now, new_grant=False)
    # The lease is released by the same UPDATE that stores the tokens.
    written = _write_tokens(connection, fields | {"lease_owner": "", "lease_until": None})
    lease.released = bool(written)
    RefreshAttempt.objects.create(
        connection=connection,
        started_at=started_at,
        duration_ms=int((time.monotonic() - clock) * 1000),
        trigger=trigger,
        outcome=RefreshAttempt.Outcome.SUCCESS,
        rotated=bool(token.refresh_token),
        access_expires_at=fields["access_expires_at"],
        message=_refresh_expiry_note(fields),
    )
    if not written:
        # A new consent (which writes without the lease) or a holder that took over a lost lease
        # wrote newer tokens; theirs win.
        logger.warning(
            "connection %s: tokens replaced during refresh; keeping the newer ones",
            connection.slug,
        )
        return _reload(connection)
    for name, value in fields.items():
        if name != "version":
            setattr(connection, name, value)
    connection.version += 1
    if connection.status in (Status.DEGRADED, Status.ACTIVE, Status.EXPIRING):
        target, reason = evaluate_expiry(connection, now=now)
        if target != connection.status:
            connection.change_status(
                target, reason=f"refresh succeeded; {reason}", expected=Connection.LIVE_STATUSES
            )
    return connection


def _learn_rotation(connection: Connection) -> None:
    """Seen it rotate: record it on the provider, so renewal knows use renews the token, and
    reschedule the provider's other connections, whose due times assumed otherwise."""
    provider = connection.provider
    updated = Provider.objects.filter(pk=provider.pk, rotates_refresh_tokens__isnull=True).update(
        rotates_refresh_tokens=True
    )
    provider.rotates_refresh_tokens = True
    if updated:
        Connection.objects.filter(provider=provider).exclude(pk=connection.pk).recompute_due_times()


def _write_tokens(connection: Connection, fields: dict[str, Any]) -> int:
    """Store a refresh's result, retrying a locked database: the provider may already have
    rotated the refresh token, so giving up here would lose the grant."""
    query = Connection.objects.filter(pk=connection.pk, version=connection.version)
    attempt = 1
    while True:
        try:
            return query.update(**fields)
        except OperationalError:
            if attempt == WRITE_ATTEMPTS:
                logger.critical(
                    "connection %s: could not store refreshed tokens; the rotated "
                    "refresh token is lost",
                    connection.slug,
                )
                raise
            time.sleep(0.1 * attempt)
            attempt += 1


def _refresh_expiry_note(fields: dict[str, Any]) -> str:
    expires_at = fields["refresh_expires_at"]
    when = f"{expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "unknown"
    return f"refresh token expires {when} ({fields['refresh_expiry_source']})"


def settle_status(connection: Connection, *, now: datetime | None = None) -> str:
    """The status a healthy grant settles in: `expiring` inside the warning window, else
    `active` (see `connections.status.evaluate_expiry`)."""
    return evaluate_expiry(connection, now=now or timezone.now())[0]


def _record_permanent_failure(
    connection: Connection, exc: oauth.OAuthError, attempt: RefreshAttempt
) -> Connection:
    attempt.outcome = RefreshAttempt.Outcome.PERMANENT_ERROR
    attempt.save()
    fresh = _reload(connection)
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


def backoff_seconds(failures: int, retry_after: float | None = None) -> float:
    """Exponential back-off with jitter, capped; never sooner than the provider's Retry-After."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, failures - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0)


def _record_transient_failure(
    connection: Connection, exc: oauth.OAuthError, attempt: RefreshAttempt, cfg: _Config
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
    if failures >= cfg.degraded_after or not connection.access_token_valid_for(0, now=now):
        connection.change_status(
            Status.DEGRADED,
            reason=f"{failures} refresh failures in a row; last: {exc.code}",
            expected=(Status.ACTIVE, Status.EXPIRING),
        )
    return delay
