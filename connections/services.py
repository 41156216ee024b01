"""The one place the front doors call: the API, the CLI, the admin and the dashboard parse their
input, call one function here, and render. Each rule lives here once.

Functions take keyword-only, typed arguments and raise `ServiceError` (a bad value, with the
field it belongs to) or the engine's `TokenUnavailable` family; they never name a CLI flag or a
form field in a message, so every front door can show the message as it is.

Sections:
- connections: create, update, enable / disable (validation through the model, due times always
  recomputed, backup chains without cycles, scope rules such as `offline_access`);
- tokens: serve a valid token with safe failover, report a token a provider rejected.
"""

from __future__ import annotations


class ServiceError(ValueError):
    """Input a service refuses; `field` names the value at fault (None: the request as a whole)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# --- connections: create, update, enable / disable --------------------------------------------


# --- tokens: serve with failover, rejected-token reports --------------------------------------
