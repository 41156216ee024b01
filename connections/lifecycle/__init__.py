"""The refresh engine: a valid access token on demand, one provider call per expiry.

- `refresh`: the refresh path (`get_access_token`, `refresh_connection`), single flight.
- `store`: the columns a token response writes, from the response alone (save first).
- `enrich`: what is learned afterwards: rotation, introspection, the expiry's kind.
- `failures`: permanent errors need a person, transient ones a back-off.
- `errors`: why no token can be served.

Callers import from here; the modules are the engine's own layout.
"""

from connections.lifecycle.enrich import enrich_stored_tokens
from connections.lifecycle.errors import (
    ConnectionDisabled,
    NeedsReauth,
    NotAuthorized,
    ProviderUnavailable,
    TokenUnavailable,
)
from connections.lifecycle.failures import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP_SECONDS,
    backoff_seconds,
)
from connections.lifecycle.refresh import get_access_token, refresh_connection, settle_status
from connections.lifecycle.store import client_for, token_fields

__all__ = [
    "BACKOFF_BASE_SECONDS",
    "BACKOFF_CAP_SECONDS",
    "ConnectionDisabled",
    "NeedsReauth",
    "NotAuthorized",
    "ProviderUnavailable",
    "TokenUnavailable",
    "backoff_seconds",
    "client_for",
    "enrich_stored_tokens",
    "get_access_token",
    "refresh_connection",
    "settle_status",
    "token_fields",
]
