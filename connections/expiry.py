"""When tokens die: pure functions from a token response and what we know of the provider.

Access-token expiry: the response's `expires_in`, a JWT `exp` claim, the provider's documented
lifetime, else `TOKENADMIN_DEFAULT_ACCESS_LIFETIME` (source `assumed`): never "valid forever",
so a provider that states no lifetime (Salesforce) is still refreshed ahead of time.

Refresh-token expiry is taken, in order, from what the provider says of the token (the token
response's own fields, a JWT `exp` claim, token introspection — RFC 7662, asked only when nothing
else is known), the connection's override, the provider's policy; else it is unknown and shown as
such, never guessed. A hard cap (`x_refresh_token_hard_expires_in`) bounds it.

How it dies (its kind) is learned from what the provider shows: a known expiry that a rotation or
renewal left where it was is absolute; one that moved slides (`learn_expiry_kind`).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings

from connections.models import Connection, ExpirySource, RefreshExpiry
from connections.oauth import TokenResponse, jwt_claims

# The provider's own word about a token, as opposed to our configuration of it.
OBSERVED_SOURCES = frozenset({ExpirySource.RESPONSE, ExpirySource.JWT, ExpirySource.INTROSPECTION})
# Two reads of one expiry differ a little: responses count whole seconds from a moment we only
# know to within the request's latency.
SAME_EXPIRY_TOLERANCE = timedelta(minutes=1)
# A sliding expiry moves by the time between two uses; closer together than this, a moved one
# could not be told from a jittered absolute one.
LEARNING_MIN_GAP = timedelta(minutes=10)


def _from_timestamp(value: object) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def access_expiry(
    token: TokenResponse, connection: Connection, *, now: datetime
) -> tuple[datetime, str]:
    """When the new access token expires, and how we know (or that we assumed it)."""
    if token.expires_in is not None and token.expires_in > 0:
        return now + timedelta(seconds=token.expires_in), ExpirySource.RESPONSE
    jwt_exp = _from_timestamp(jwt_claims(token.access_token).get("exp"))
    if jwt_exp is not None:
        return jwt_exp, ExpirySource.JWT
    lifetime = connection.provider.access_token_lifetime
    if lifetime:
        return now + lifetime, ExpirySource.POLICY
    # Nothing says: assume a common lifetime rather than forever, so the token is refreshed
    # ahead of time like any other (a rejected-token report corrects a shorter one at once).
    assumed = timedelta(seconds=settings.TOKENADMIN["DEFAULT_ACCESS_LIFETIME"])
    return now + assumed, ExpirySource.ASSUMED


def observed_refresh_expiry(
    token: TokenResponse, *, now: datetime, introspected: datetime | None = None
) -> tuple[datetime | None, str]:
    """What the provider itself says about the refresh token now in force, hard cap aside:
    the response's lifetime field, the token's JWT `exp`, introspection; else unknown."""
    if token.refresh_expires_in is not None and token.refresh_expires_in > 0:
        return now + timedelta(seconds=token.refresh_expires_in), ExpirySource.RESPONSE
    if token.refresh_token:
        jwt_exp = _from_timestamp(jwt_claims(token.refresh_token).get("exp"))
        if jwt_exp is not None:
            return jwt_exp, ExpirySource.JWT
    if introspected is not None:
        return introspected, ExpirySource.INTROSPECTION
    return None, ExpirySource.UNKNOWN


def _same_as_before(read: datetime, before: datetime | None) -> datetime:
    """`before` when `read` is the same moment read again, else `read`.

    A lifetime in seconds counted from a moment we know only to within the request's latency
    gives the same deadline a second or so apart on every refresh. Keeping the one already
    stored keeps what people see still, and keeps the reminders keyed by it from starting over
    (a reminder per refresh).
    """
    if before is not None and abs(read - before) <= SAME_EXPIRY_TOLERANCE:
        return before
    return read


def hard_cap(
    token: TokenResponse, connection: Connection, *, now: datetime, new_grant: bool
) -> datetime | None:
    """The grant's hard cap, which no renewal extends: from this response, else the one an
    earlier response of the same grant gave (a new consent starts without one)."""
    before = None if new_grant else connection.refresh_hard_expires_at
    seconds = token.refresh_hard_expires_in
    if seconds is not None and seconds > 0:
        return _same_as_before(now + timedelta(seconds=seconds), before)
    return before


def uncapped_refresh_expiry(
    token: TokenResponse,
    connection: Connection,
    *,
    now: datetime,
    new_grant: bool,
    introspected: datetime | None = None,
) -> tuple[datetime | None, str]:
    """The refresh token's expiry before the hard cap is applied (see `refresh_expiry`)."""
    observed, observed_source = observed_refresh_expiry(token, now=now, introspected=introspected)
    if observed is not None:
        if not new_grant and connection.refresh_expiry_source in OBSERVED_SOURCES:
            observed = _same_as_before(observed, connection.refresh_expires_at)
        return observed, observed_source
    kind = connection.refresh_expiry_kind
    lifetime = connection.effective_refresh_lifetime
    configured = (
        ExpirySource.OVERRIDE if connection.refresh_lifetime_override else ExpirySource.POLICY
    )
    if kind == RefreshExpiry.NONE:
        return None, configured
    if kind == RefreshExpiry.SLIDING and lifetime:
        return now + lifetime, configured
    previous = None if new_grant else connection.refresh_expires_at
    if previous is not None and connection.refresh_expiry_source in OBSERVED_SOURCES:
        # The provider's own word outranks our configuration, and a rotation or a use does not
        # bring an expiry sooner: an absolute one stays, a sliding one moves later (until the
        # provider says where, the old one is the safe deadline to show).
        return previous, connection.refresh_expiry_source
    if kind == RefreshExpiry.ABSOLUTE and lifetime:
        # Fixed from the original consent; a refresh never moves it.
        anchor = now if new_grant else (connection.authorized_at or now)
        return anchor + lifetime, configured
    if previous is not None and not token.refresh_token:
        # The same refresh token stays in force and nothing new was said about it.
        return previous, connection.refresh_expiry_source
    return None, ExpirySource.UNKNOWN


def refresh_expiry(
    token: TokenResponse,
    connection: Connection,
    *,
    now: datetime,
    new_grant: bool,
    introspected: datetime | None = None,
) -> tuple[datetime | None, str]:
    """When the refresh token in force after `token` expires, and how we know.

    `new_grant` is True for a fresh consent, False for a refresh. After a refresh that returned
    no refresh token, the old one stays in force: a sliding one was just used, so its window
    restarts; an absolute one keeps its deadline. The hard cap, when sooner, wins.
    """
    at, source = uncapped_refresh_expiry(
        token, connection, now=now, new_grant=new_grant, introspected=introspected
    )
    cap = hard_cap(token, connection, now=now, new_grant=new_grant)
    if cap is not None and (at is None or cap < at):
        return cap, ExpirySource.RESPONSE
    return at, source


@dataclass(frozen=True)
class Learned:
    """What one refresh showed about how the provider's refresh tokens die."""

    kind: str
    learned_from: str


def learn_expiry_kind(
    before: Connection,
    *,
    expires_at: datetime | None,
    source: str,
    rotated: bool,
    now: datetime,
) -> Learned | None:
    """Absolute or sliding, if this refresh showed it; None when it showed nothing.

    `before` is the connection as read before the refresh; `expires_at`/`source` is what the
    provider said after it (uncapped). Both must be the provider's own word: comparing our policy
    with itself teaches nothing. Near a hard cap the cap, not the kind, decides, so nothing is
    learned there.
    """
    previous = before.refresh_expires_at
    if (
        expires_at is None
        or previous is None
        or source not in OBSERVED_SOURCES
        or before.refresh_expiry_source not in OBSERVED_SOURCES
    ):
        return None
    cap = before.refresh_hard_expires_at
    if cap is not None and min(previous, expires_at) >= cap - SAME_EXPIRY_TOLERANCE:
        return None
    what = "a rotation" if rotated else "a renewal"
    moved = expires_at - previous
    if moved > SAME_EXPIRY_TOLERANCE:
        return Learned(
            RefreshExpiry.SLIDING,
            f"{source}: {what} on {_when(now)} moved the expiry from {_when(previous)} to "
            f"{_when(expires_at)}",
        )
    since = now - (before.last_refreshed_at or before.authorized_at or now)
    if abs(moved) <= SAME_EXPIRY_TOLERANCE and since >= LEARNING_MIN_GAP:
        return Learned(
            RefreshExpiry.ABSOLUTE,
            f"{source}: {what} on {_when(now)} left the expiry at {_when(previous)}",
        )
    return None
