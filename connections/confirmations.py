"""What a staff user (or the clock) does with a held grant: confirm, discard, or let it expire.

Confirming stores the grant through the same `store_grant` as a normal consent, pins the account
when the provider named one, and consumes the reauthorization link. Discarded and expired
grants are revoked at the provider (RFC 7009) like every grant we refuse to store. Each ends
with the request's outcome recorded and its held token response erased; a conditional UPDATE
on the outcome decides who acts on a held grant, so two clicks never store it twice.
"""

import logging
from datetime import datetime

from django.utils import timezone

from connections import held_grants
from connections.authorize import (
    AuthorizationFailed,
    Identity,
    _discard_grant,
    _refuse_if_disabled,
    store_grant,
)
from connections.links import consume_reauth_link
from connections.models import AuthorizationRequest, Connection

logger = logging.getLogger(__name__)

NOT_WAITING = (
    "This grant is no longer waiting for a confirmation: it was confirmed, discarded or it "
    "expired. Open a new reauthorization link to try again."
)


def _claim(request: AuthorizationRequest, *, outcome: str, now: datetime) -> AuthorizationRequest:
    """Take the held grant for one action; AuthorizationFailed("not_held") if someone else did,
    or it expired. Returns the row as re-read after the claim (with its held token)."""
    claimed = (
        held_grants.held_requests()
        .filter(pk=request.pk, expires_at__gt=now)
        .update(outcome=outcome[:200])
    )
    if not claimed:
        raise AuthorizationFailed("not_held", NOT_WAITING, connection=request.connection)
    return AuthorizationRequest.objects.select_related("connection__provider", "reauth_link").get(
        pk=request.pk
    )


def _close(request: AuthorizationRequest, *, outcome: str) -> None:
    AuthorizationRequest.objects.filter(pk=request.pk).update(outcome=outcome[:200], held_grant="")


def _held_identity(request: AuthorizationRequest) -> Identity | None:
    if not request.held_account_id:
        return None
    return Identity(request.held_account_id, request.held_account_label)


def _check_still_acceptable(
    request: AuthorizationRequest, connection: Connection, identity: Identity | None
) -> None:
    """What may have changed while the grant waited: the connection disabled, another grant
    stored and pinned, or the reauthorization link used (that last check consumes it)."""
    _refuse_if_disabled(connection)
    if connection.account_id and (identity is None or identity.account_id != connection.account_id):
        raise AuthorizationFailed(
            "account_changed",
            "While this grant waited, the connection was authorized as "
            f"{connection.account_label or connection.account_id}. This grant was discarded.",
            connection=connection,
        )
    if request.reauth_link and not consume_reauth_link(request.reauth_link):
        raise AuthorizationFailed(
            "link_used",
            "The reauthorization link was used meanwhile. This grant was discarded.",
            connection=connection,
        )


def confirm_held_grant(*, request: AuthorizationRequest, confirmed_by: str) -> Connection:
    """Store a held grant as its connection's grant; raise AuthorizationFailed (and revoke it)
    when it can no longer be stored."""
    now = timezone.now()
    held_outcome = request.outcome
    request = _claim(request, outcome=f"confirming (by {confirmed_by})", now=now)
    connection = request.connection
    token = held_grants.held_token(request, now=now)
    identity = _held_identity(request)
    try:
        _check_still_acceptable(request, connection, identity)
    except AuthorizationFailed as exc:
        _discard_grant(connection, token)
        _close(request, outcome=f"{exc.kind}: {exc}")
        raise
    try:
        store_grant(connection, token, identity)
    except BaseException:
        # Back to waiting, so the grant is still revoked when the hold expires.
        AuthorizationRequest.objects.filter(pk=request.pk).update(outcome=held_outcome)
        raise
    _close(request, outcome=f"authorized (confirmed by {confirmed_by})")
    logger.info("connection %s: held grant confirmed by %s", connection.slug, confirmed_by)
    return Connection.objects.select_related("provider").get(pk=connection.pk)


def discard_held_grant(*, request: AuthorizationRequest, discarded_by: str) -> None:
    """Refuse a held grant: revoke it at the provider and erase it."""
    now = timezone.now()
    request = _claim(request, outcome=f"discarding (by {discarded_by})", now=now)
    _discard_grant(request.connection, held_grants.held_token(request, now=now))
    _close(request, outcome=f"discarded: by {discarded_by}")
    logger.info("connection %s: held grant discarded by %s", request.connection.slug, discarded_by)


def expire_held_grants(*, now: datetime | None = None) -> int:
    """Revoke and erase grants nobody confirmed in time; returns how many."""
    now = now or timezone.now()
    expired = 0
    for pk in held_grants.held_requests().filter(expires_at__lte=now).values_list("pk", flat=True):
        claimed = (
            held_grants.held_requests()
            .filter(pk=pk, expires_at__lte=now)
            .update(outcome="held_expired: nobody confirmed the account in time")
        )
        if not claimed:
            continue
        request = AuthorizationRequest.objects.select_related("connection__provider").get(pk=pk)
        _discard_grant(request.connection, held_grants.held_token(request, now=now))
        AuthorizationRequest.objects.filter(pk=pk).update(held_grant="")
        logger.info("connection %s: held grant expired and revoked", request.connection.slug)
        expired += 1
    return expired
