"""After the tokens are stored: learn what the provider showed, in a second write.

DESIGN refresh rule 3 puts the UPDATE that stores tokens straight after the provider's answer
(`connections.lifecycle.store`). Everything else happens here, afterwards:
- rotation: the first rotated refresh token marks the provider as rotating and reschedules its
  other connections, whose renewal times assumed otherwise;
- introspection (RFC 7662) of the refresh token's expiry, when the response said nothing of it;
- the expiry's kind: a known expiry that this rotation or renewal left where it was is absolute,
  one that moved slides (`connections.expiry.learn_expiry_kind`).
The second write is conditional on the version the first one wrote and bumps nothing, so a newer
refresh always wins and is never refused because of us. A failure here (introspection down, a
database error, a bug) is logged without secrets and costs only what would have been learned:
the stored tokens stay stored and the caller is served.
"""

import logging
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from connections import oauth
from connections.expiry import (
    OBSERVED_SOURCES,
    learn_expiry_kind,
    observed_refresh_expiry,
    refresh_expiry,
    uncapped_refresh_expiry,
)
from connections.lifecycle.store import client_for, with_fields
from connections.models import Connection, ExpirySource, Provider, RefreshExpiry

logger = logging.getLogger(__name__)

# What the second write may change: the refresh token's expiry, the kind learned, due times.
ENRICHED_FIELDS = (
    "refresh_expires_at",
    "refresh_expiry_source",
    "refresh_expiry_learned",
    "refresh_expiry_learned_from",
    "refresh_due_at",
    "renew_due_at",
)


def enrich_stored_tokens(
    stored: Connection,
    token: oauth.TokenResponse,
    *,
    before: Connection,
    new_grant: bool,
    now: datetime,
) -> Connection:
    """Learn from a token response whose tokens are already stored; never raises.

    `stored` is the connection as written (its `version` the one written), `before` as it was
    read before the refresh or consent. Returns `stored` with what was learned applied. Each
    step stands alone: a failed rotation bookkeeping does not stop learning the expiry.
    """
    if token.refresh_token and not new_grant:
        _without_failing(stored, learn_rotation, stored)
    learned = _without_failing(
        stored, learn_refresh_expiry, stored, token, before=before, new_grant=new_grant, now=now
    )
    return stored if learned is None else learned


def _without_failing(
    stored: Connection, step: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    try:
        return step(*args, **kwargs)
    except Exception as exc:
        # Deliberately broad: the tokens are stored, and nothing learned here is worth failing
        # the caller or losing them. Logged by type and place only: a message could quote a value.
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" if frame else ""
        logger.error(
            "connection %s: tokens stored; learning from the response failed (%s%s)",
            stored.slug,
            type(exc).__name__,
            where,
        )
        return None


def learn_rotation(connection: Connection) -> None:
    """Seen it rotate: record it on the provider, so renewal knows use renews the token, and
    reschedule the provider's other connections, whose due times assumed otherwise."""
    provider = connection.provider
    if provider.rotates_refresh_tokens is not None:
        return
    updated = Provider.objects.filter(pk=provider.pk, rotates_refresh_tokens__isnull=True).update(
        rotates_refresh_tokens=True
    )
    provider.rotates_refresh_tokens = True
    if updated:
        Connection.objects.filter(provider=provider).exclude(pk=connection.pk).recompute_due_times()


def learn_refresh_expiry(
    stored: Connection,
    token: oauth.TokenResponse,
    *,
    before: Connection,
    new_grant: bool,
    now: datetime,
) -> Connection:
    """Introspect when the response said nothing, learn the kind, write what changed."""
    introspected = None
    if _wants_introspection(stored, token, before=before, new_grant=new_grant, now=now):
        introspected = introspect_refresh_expiry(stored)
    fields: dict[str, Any] = {}
    if introspected is not None:
        at, source = refresh_expiry(
            token, before, now=now, new_grant=new_grant, introspected=introspected
        )
        fields |= {"refresh_expires_at": at, "refresh_expiry_source": source}
    if not new_grant:
        seen_at, seen_source = observed_refresh_expiry(token, now=now, introspected=introspected)
        learned = learn_expiry_kind(
            before,
            expires_at=seen_at,
            source=seen_source,
            rotated=bool(token.refresh_token),
            now=now,
        )
        if learned is not None and learned.kind != stored.refresh_expiry_learned:
            fields |= {
                "refresh_expiry_learned": learned.kind,
                "refresh_expiry_learned_from": learned.learned_from[:200],
            }
            logger.info(
                "connection %s: refresh tokens expire %s (%s)",
                stored.slug,
                learned.kind,
                learned.learned_from,
            )
    if not fields:
        return stored
    enriched = with_fields(stored, fields)
    fields |= enriched.due_times()
    changed = {
        name: fields[name]
        for name in ENRICHED_FIELDS
        if name in fields and getattr(stored, name) != fields[name]
    }
    if not changed:
        return stored
    with transaction.atomic():
        # Guarded by the version just written: a newer write has its own, better knowledge.
        written = Connection.objects.filter(pk=stored.pk, version=stored.version).update(**changed)
    return with_fields(stored, fields) if written else stored


def _wants_introspection(
    stored: Connection,
    token: oauth.TokenResponse,
    *,
    before: Connection,
    new_grant: bool,
    now: datetime,
) -> bool:
    """Ask only when nothing else says: not when the response or the token's JWT did, nor when
    our configuration computed the expiry; and not for an absolute expiry already known, which
    no rotation or renewal moves."""
    if not stored.provider.introspect_url:
        return False
    if observed_refresh_expiry(token, now=now)[0] is not None:
        return False
    _, source = uncapped_refresh_expiry(token, before, now=now, new_grant=new_grant)
    if source in (ExpirySource.POLICY, ExpirySource.OVERRIDE):
        return False
    settled = stored.refresh_expiry_learned == RefreshExpiry.ABSOLUTE and source in (
        OBSERVED_SOURCES
    )
    return not settled


def introspect_refresh_expiry(connection: Connection) -> datetime | None:
    """Ask the provider (RFC 7662) when the stored refresh token expires; None if it won't say."""
    try:
        answer = oauth.introspect(
            client_for(connection),
            connection.provider.introspect_url,
            token=connection.refresh_token,
            hint="refresh_token",
        )
    except oauth.OAuthError as exc:
        logger.info("connection %s: introspection failed (%s)", connection.slug, exc.code)
        return None
    exp = answer.get("exp")
    if (
        answer.get("active") is not True
        or isinstance(exp, bool)
        or not isinstance(exp, int | float)
    ):
        return None
    try:
        return datetime.fromtimestamp(exp, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
