"""Serving a valid access token, with safe failover, and acting on a token a provider rejected.

Exposed through `connections.services` (`token_serve`, `token_refresh`, `token_rejected`); the
token API and `manage.py connection token` call those and nothing else.

Failover rules (issue 6):
- A primary that is `disabled` stops everything: an admin turned it off, so nothing is served
  in its place (`ConnectionDisabled`, 409 `disabled`).
- Otherwise, when the primary cannot serve, its backup chain is followed (A → B → C) and the
  first backup that can serve does. A backup the API key may not use is passed over; a loop
  (refused on save by `Connection.clean`, but rows can be edited behind its back) ends the
  walk. When no backup serves, the primary's own error is raised, never a backup's: the caller
  asked about the primary.
- The first failover of an incident writes one `FailoverEvent` (the alert source for
  `oauth.failover.activated`) and sets `failed_over_to/at`; serving the primary again writes one
  failback row and clears them. Both are claimed by a conditional UPDATE, so any number of
  concurrent requests during an incident write one row at its start and one at its end.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from connections.lifecycle import (
    ConnectionDisabled,
    TokenUnavailable,
    get_access_token,
    refresh_connection,
)
from connections.models import ApiKey, Connection, FailoverEvent, RefreshAttempt
from connections.signals import announce_alert_source
from tokenadmin.hashing import sha256_hex

logger = logging.getLogger(__name__)

Status = Connection.Status
# A chain longer than this is a misconfiguration, not a plan: stop walking it.
MAX_CHAIN = 10


@dataclass(frozen=True)
class ServedToken:
    """The primary that was asked for (`connection`), the one whose token is served (`served`),
    and, for a rejected-token report, whether the reported token was replaced (`refreshed`)."""

    connection: Connection
    served: Connection
    refreshed: bool | None = None

    @property
    def failed_over(self) -> bool:
        return self.served.pk != self.connection.pk


def can_serve_at_once(connection: Connection, *, min_ttl: int | None = None) -> bool:
    """True when `connection`'s stored token can be served as it is: a live status, valid for
    the refresh margin, and no failover incident to close. Reads only the token lookup's
    columns (`connections.token_lookup.CONNECTION_FIELDS`)."""
    return (
        connection.status in Connection.LIVE_STATUSES
        and connection.failed_over_to_id is None
        and connection.access_token_valid_for(connection.refresh_margin(min_ttl))
    )


def serve_token(
    *,
    connection: Connection,
    key: ApiKey | None = None,
    min_ttl: int | None = None,
    failover: bool = True,
) -> ServedToken:
    """A token valid for the refresh margin (or `min_ttl`): the primary's, else a backup's.

    `connection` may be the token lookup's partial row: when its token can be served as it is,
    nothing else is read. Raises the primary's `TokenUnavailable` when nothing can be served.
    """
    if can_serve_at_once(connection, min_ttl=min_ttl):
        return ServedToken(connection=connection, served=connection)
    try:
        served = get_access_token(connection, min_ttl=min_ttl)
    except TokenUnavailable as exc:
        if not failover:
            raise
        return _fail_over(connection, exc, key=key, min_ttl=min_ttl)
    _close_incident(served)
    return ServedToken(connection=served, served=served)


def refresh_token_now(*, connection: Connection) -> ServedToken:
    """Force a refresh of this connection (no failover: the caller asked for this one)."""
    served = refresh_connection(connection, trigger=RefreshAttempt.Trigger.FORCED, force=True)
    _close_incident(served)
    return ServedToken(connection=served, served=served)


def report_rejected_token(
    *,
    connection: Connection,
    token_sha256: str,
    key: ApiKey | None = None,
    failover: bool = True,
) -> ServedToken:
    """A provider answered 401 to the token whose SHA-256 is `token_sha256`.

    When it is still the current token of the primary (or of the backup serving in its place),
    that connection is refreshed once: single flight, and a report that arrives while another
    caller refreshes takes the other caller's token. When it is no longer current, it was
    already replaced: the current token is served. `refreshed` says which happened.
    """
    current = _reload(connection)
    target = _holder_of(current, token_sha256, key=key)
    if target is None:
        served = serve_token(connection=current, key=key, failover=failover)
        return ServedToken(connection=served.connection, served=served.served, refreshed=False)
    try:
        # `target` was read with the hash matching: if its version moved on by the time we hold
        # the lease, another caller already replaced the token and that one is served.
        fresh = refresh_connection(target, trigger=RefreshAttempt.Trigger.FORCED, force=True)
    except TokenUnavailable as exc:
        if not failover:
            raise
        if target.pk != current.pk:
            # The backup serving in the primary's place died too: look down the chain again.
            served = serve_token(connection=current, key=key, failover=True)
            return ServedToken(connection=served.connection, served=served.served, refreshed=True)
        served = _fail_over(current, exc, key=key, min_ttl=None)
        return ServedToken(connection=served.connection, served=served.served, refreshed=True)
    if fresh.pk == current.pk:
        _close_incident(fresh)
        return ServedToken(connection=fresh, served=fresh, refreshed=True)
    return ServedToken(connection=_reload(current), served=fresh, refreshed=True)


def _holder_of(
    connection: Connection, token_sha256: str, *, key: ApiKey | None
) -> Connection | None:
    """The connection whose current access token has this hash: the primary, or the backup it
    failed over to (the token a pipeline was last given). None: the token was replaced."""
    if _hash_matches(connection, token_sha256):
        return connection
    if connection.failed_over_to_id is None:
        return None
    backup = (
        Connection.objects.select_related("provider")
        .filter(pk=connection.failed_over_to_id)
        .first()
    )
    if backup is None or (key is not None and not key.allows(backup)):
        return None
    return backup if _hash_matches(backup, token_sha256) else None


def _hash_matches(connection: Connection, token_sha256: str) -> bool:
    if not connection.access_token:
        return False
    return hmac.compare_digest(sha256_hex(connection.access_token), token_sha256)


# --- failover and failback ----------------------------------------------------------------


def _fail_over(
    primary: Connection, error: TokenUnavailable, *, key: ApiKey | None, min_ttl: int | None
) -> ServedToken:
    if isinstance(error, ConnectionDisabled):
        raise error
    primary = _reload(primary)  # its status and backup as they are after the failure
    if primary.status == Status.DISABLED:
        raise ConnectionDisabled(f"{primary.slug} is disabled.")
    seen = {primary.pk}
    backup_id = primary.backup_id
    while backup_id is not None and backup_id not in seen and len(seen) <= MAX_CHAIN:
        seen.add(backup_id)
        backup = Connection.objects.select_related("provider").filter(pk=backup_id).first()
        if backup is None:
            break
        backup_id = backup.backup_id
        if key is not None and not key.allows(backup):
            continue
        try:
            served = get_access_token(backup, min_ttl=min_ttl)
        except TokenUnavailable as backup_error:
            logger.info(
                "connection %s: backup %s cannot serve either (%s)",
                primary.slug,
                backup.slug,
                backup_error.code,
            )
            continue
        _open_incident(primary, served, reason=f"[{error.code}] {error}")
        return ServedToken(connection=primary, served=served)
    raise error


def _open_incident(primary: Connection, backup: Connection, *, reason: str) -> None:
    """Record the first failover of an incident; later requests during it write nothing."""
    now = timezone.now()
    with transaction.atomic():
        claimed = Connection.objects.filter(pk=primary.pk, failed_over_to__isnull=True).update(
            failed_over_to=backup.pk, failed_over_at=now
        )
        if claimed:
            event = FailoverEvent.objects.create(
                connection_id=primary.pk,
                backup_id=backup.pk,
                kind=FailoverEvent.Kind.FAILOVER,
                reason=reason[:500],
                created_at=now,
            )
            announce_alert_source(kind="failover", pk=event.pk)
        elif primary.failed_over_to_id not in (None, backup.pk):
            # Still one incident, served further down the chain now: follow it, write no row.
            Connection.objects.filter(
                pk=primary.pk, failed_over_to=primary.failed_over_to_id
            ).update(failed_over_to=backup.pk)
    if claimed:
        logger.warning(
            "connection %s: failed over to %s (%s)", primary.slug, backup.slug, reason[:200]
        )
        primary.failed_over_to_id, primary.failed_over_at = backup.pk, now


def _close_incident(primary: Connection) -> None:
    """The primary served again: record the failback once, if an incident was open."""
    backup_id = primary.failed_over_to_id
    if backup_id is None:
        return
    with transaction.atomic():
        released = Connection.objects.filter(pk=primary.pk, failed_over_to=backup_id).update(
            failed_over_to=None, failed_over_at=None
        )
        if released:
            event = FailoverEvent.objects.create(
                connection_id=primary.pk,
                backup_id=backup_id,
                kind=FailoverEvent.Kind.FAILBACK,
                reason=f"{primary.slug} serves again",
            )
            announce_alert_source(kind="failover", pk=event.pk)
    if released:
        logger.info("connection %s: serving again after a failover", primary.slug)
    primary.failed_over_to_id = primary.failed_over_at = None


def _reload(connection: Connection) -> Connection:
    return Connection.objects.select_related("provider").get(pk=connection.pk)


# --- what a person must do next -----------------------------------------------------------


def dashboard_url(connection: Connection | None) -> str:
    """The connection's page on the dashboard, or the list without one (`SITE_URL` based)."""
    if connection is None:
        return settings.SITE_URL + reverse("dashboard")
    return settings.SITE_URL + reverse("connection-detail", args=[connection.slug])


def next_step(*, connection: Connection, error: TokenUnavailable) -> dict[str, Any]:
    """For a 409: the facts a person needs and where to act. Never a reauthorization link: the
    caller holds an API key, not the provider account, and a link would let it re-consent."""
    current = (
        Connection.objects.select_related("provider")
        .defer("access_token", "refresh_token", "client_secret")
        .get(pk=connection.pk)
    )
    deadline, source = current.reauthorization_deadline
    if isinstance(error, ConnectionDisabled):
        action = (
            f"An admin disabled {current.slug}; nothing is served in its place. Enable it on "
            "the dashboard or in the admin when it should serve again."
        )
    else:
        action = (
            f"A person must authorize {current.slug} again at {current.provider.name}: press "
            "Reauthorize on its dashboard page, or send its owner a reauthorization link "
            f"(`manage.py connection reauth-link {current.slug}`)."
        )
    return {
        "connection": current.slug,
        "status": current.status,
        "status_reason": current.status_reason,
        "reauthorize_by": deadline.isoformat().replace("+00:00", "Z") if deadline else None,
        "reauthorize_by_source": source,
        "next_step": action,
        "dashboard_url": dashboard_url(current),
    }
