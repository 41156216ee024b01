"""The refresh path: a valid access token on demand, one provider call per expiry.

Rules (DESIGN.md, "Refresh rules"):
- Refresh when the access token expires within the connection's threshold (or the caller's
  `min_ttl`).
- Single flight: a caller claims a lease with a conditional UPDATE, calls the provider outside
  any transaction, writes the result with `WHERE version = <version it read under the lease>`
  and releases. Others poll and re-read. No database lock is held across an HTTP call, so this
  works the same across threads, processes and hosts, on SQLite and PostgreSQL.
- Save first, then enrich: the provider's answer is stored by the very next UPDATE (which also
  releases the lease), from the response alone; with no new refresh token the old one is kept.
  Learning rotation, introspection and the expiry's kind come after, in a second write that
  cannot lose the first (`connections.lifecycle.enrich`). The refresh token sent is always
  re-read under the lease, so one rotated away by an earlier refresh is never sent. (A refresh
  that timed out is retried once at once with the same token: the provider may never have seen
  it.)
- Permanent and transient errors: `connections.lifecycle.failures`.
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
from datetime import datetime

from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from connections import oauth
from connections.lifecycle.enrich import enrich_stored_tokens
from connections.lifecycle.errors import (
    ConnectionDisabled,
    NeedsReauth,
    NotAuthorized,
    ProviderUnavailable,
)
from connections.lifecycle.failures import record_permanent_failure, record_transient_failure
from connections.lifecycle.store import (
    client_for,
    refresh_expiry_note,
    reload_connection,
    token_fields,
    with_fields,
    write_tokens,
)
from connections.models import Connection, RefreshAttempt
from connections.status import evaluate_expiry

logger = logging.getLogger(__name__)

Status = Connection.Status
Trigger = RefreshAttempt.Trigger


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
    connection = reload_connection(connection)
    # A grant that needs reauthorization was most likely revoked, and revoking a grant kills its
    # access tokens too (RFC 7009 §2.1): refuse, so the caller fails over instead of failing later.
    _raise_if_unusable(connection)
    need = connection.refresh_margin(min_ttl)
    if connection.access_token_valid_for(need):
        return connection
    try:
        return refresh_connection(connection, trigger=Trigger.ON_DEMAND, min_ttl=min_ttl)
    except ProviderUnavailable:
        current = reload_connection(connection)
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
            current = reload_connection(connection)
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
            return reload_connection(connection)
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
    connection = reload_connection(leased)
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
            duration_ms=_elapsed_ms(clock),
            trigger=trigger,
            error_code=exc.code[:64],
            http_status=exc.http_status,
            message=str(exc)[:500],
        )
        if exc.permanent:
            return record_permanent_failure(connection, exc, attempt)
        delay = record_transient_failure(
            connection, exc, attempt, degraded_after=cfg.degraded_after
        )
        raise ProviderUnavailable(
            f"{connection.slug}: provider error ({exc.code})", retry_after=delay
        ) from exc
    # The provider's latency, not ours: what follows (storing, learning) is not in it.
    attempt = RefreshAttempt(
        connection=connection,
        started_at=started_at,
        duration_ms=_elapsed_ms(clock),
        trigger=trigger,
        outcome=RefreshAttempt.Outcome.SUCCESS,
        rotated=bool(token.refresh_token),
    )
    return _store_refresh(connection, token, lease, attempt, cfg)


def _elapsed_ms(clock: float) -> int:
    return int((time.monotonic() - clock) * 1000)


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
    """Renew the lease before more work under it, so it cannot run out mid-refresh.

    Best effort: a locked database must not stop the token write that follows (it has its own
    retries, and it is guarded by `version`, not by the lease).
    """
    try:
        kept = Connection.objects.extend_lease(
            connection.pk, owner=lease.owner, seconds=cfg.lease_seconds
        )
    except OperationalError:
        logger.warning("connection %s: could not extend the refresh lease", connection.slug)
        return
    if not kept:
        logger.warning("connection %s: refresh lease lost mid-refresh", connection.slug)


def _store_refresh(
    connection: Connection,
    token: oauth.TokenResponse,
    lease: _Lease,
    attempt: RefreshAttempt,
    cfg: _Config,
) -> Connection:
    """Store the provider's answer first, then learn from it, then settle the status."""
    _keep_lease(connection, lease, cfg)  # the write may retry on a locked database
    now = timezone.now()
    fields = token_fields(connection, token, now=now, new_grant=False)
    # The lease is released by the same UPDATE that stores the tokens.
    released = {"lease_owner": "", "lease_until": None}
    written = write_tokens(connection, fields | released)
    lease.released = bool(written)
    if not written:
        _record_success(attempt, with_fields(connection, fields))
        # A new consent (which writes without the lease) or a holder that took over a lost lease
        # wrote newer tokens; theirs win.
        logger.warning(
            "connection %s: tokens replaced during refresh; keeping the newer ones",
            connection.slug,
        )
        return reload_connection(connection)
    before = copy.copy(connection)
    stored = with_fields(connection, fields | released)
    stored.version = connection.version + 1
    stored = enrich_stored_tokens(stored, token, before=before, new_grant=False, now=now)
    _record_success(attempt, stored)
    if stored.status in (Status.DEGRADED, Status.ACTIVE, Status.EXPIRING):
        target, reason = evaluate_expiry(stored, now=now)
        if target != stored.status:
            stored.change_status(
                target, reason=f"refresh succeeded; {reason}", expected=Connection.LIVE_STATUSES
            )
    return stored


def _record_success(attempt: RefreshAttempt, connection: Connection) -> None:
    """Save the attempt with what the connection holds after it."""
    attempt.access_expires_at = connection.access_expires_at
    attempt.message = refresh_expiry_note(connection)
    attempt.save()


def settle_status(connection: Connection, *, now: datetime | None = None) -> str:
    """The status a healthy grant settles in: `expiring` inside the warning window, else
    `active` (see `connections.status.evaluate_expiry`)."""
    return evaluate_expiry(connection, now=now or timezone.now())[0]
