"""When tokens die: pure functions from a token response and what we know of the provider.

Refresh-token expiry is taken, in order, from the token response's own fields, a JWT `exp`
claim, token introspection (RFC 7662, asked only when nothing else is known), the connection's
override, the provider's policy; else it is unknown and shown as such, never guessed.
"""

from datetime import UTC, datetime, timedelta

from connections.models import Connection, ExpirySource, RefreshExpiry
from connections.oauth import TokenResponse, jwt_claims


def _from_timestamp(value: object) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def access_expiry(
    token: TokenResponse, connection: Connection, *, now: datetime
) -> tuple[datetime | None, str]:
    """When the new access token expires, and how we know."""
    if token.expires_in is not None and token.expires_in > 0:
        return now + timedelta(seconds=token.expires_in), ExpirySource.RESPONSE
    jwt_exp = _from_timestamp(jwt_claims(token.access_token).get("exp"))
    if jwt_exp is not None:
        return jwt_exp, ExpirySource.JWT
    lifetime = connection.provider.access_token_lifetime
    if lifetime:
        return now + lifetime, ExpirySource.POLICY
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
    restarts; an absolute one keeps its deadline.
    """
    candidates = [
        now + timedelta(seconds=seconds)
        for seconds in (token.refresh_expires_in, token.refresh_hard_expires_in)
        if seconds is not None and seconds > 0
    ]
    if candidates:
        return min(candidates), ExpirySource.RESPONSE
    if token.refresh_token:
        jwt_exp = _from_timestamp(jwt_claims(token.refresh_token).get("exp"))
        if jwt_exp is not None:
            return jwt_exp, ExpirySource.JWT
    if introspected is not None:
        return introspected, ExpirySource.INTROSPECTION

    kind = connection.effective_refresh_expiry
    lifetime = connection.effective_refresh_lifetime
    source = ExpirySource.OVERRIDE if connection.refresh_lifetime_override else ExpirySource.POLICY
    if kind == RefreshExpiry.NONE:
        return None, source
    if lifetime is None or kind == RefreshExpiry.UNKNOWN:
        if not new_grant and connection.refresh_expires_at and not token.refresh_token:
            # The provider said nothing new; what we knew about the old token still holds.
            return connection.refresh_expires_at, connection.refresh_expiry_source
        return None, ExpirySource.UNKNOWN
    if kind == RefreshExpiry.SLIDING:
        return now + lifetime, source
    # Absolute: fixed from the original consent; a refresh never moves it.
    anchor = now if new_grant else (connection.authorized_at or now)
    return anchor + lifetime, source
