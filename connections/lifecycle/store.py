"""Storing a token response: the columns it writes, from the response alone.

DESIGN refresh rule 3: the UPDATE that stores a rotated refresh token comes straight after the
provider's answer, before any other work, because until it is written the only copy of the grant
is in one process's memory. So `token_fields` does no I/O: no introspection, no learning, no
other rows. What more there is to know is learned afterwards (`connections.lifecycle.enrich`).
"""

import copy
import logging
import time
from datetime import datetime
from typing import Any

from django.db import OperationalError
from django.db.models import F

from connections import oauth
from connections.expiry import access_expiry, hard_cap, refresh_expiry
from connections.models import Connection

logger = logging.getLogger(__name__)

WRITE_ATTEMPTS = 5


def client_for(connection: Connection) -> oauth.Client:
    provider = connection.provider
    return oauth.Client(
        client_id=connection.client_id,
        client_secret=connection.client_secret,
        token_url=provider.token_url,
        auth_method=provider.token_endpoint_auth_method,
        token_params=provider.token_request_params,
        token_headers=provider.token_request_headers,
        token_encoding=provider.token_request_encoding,
    )


def token_fields(
    connection: Connection, token: oauth.TokenResponse, *, now: datetime, new_grant: bool
) -> dict[str, Any]:
    """The column values a token response writes, in one UPDATE with a version bump.

    Includes the rotated refresh token (or keeps the old one when none came back), both expiries
    with their sources, the hard cap, and the sweeps' due times derived from them. No I/O: what
    introspection or learning adds comes in a second write (`enrich_stored_tokens`).
    """
    access_at, access_source = access_expiry(token, connection, now=now)
    refresh_at, refresh_source = refresh_expiry(token, connection, now=now, new_grant=new_grant)
    fields: dict[str, Any] = {
        "access_token": token.access_token,
        "token_type": token.token_type,
        "access_expires_at": access_at,
        "access_expiry_source": access_source,
        "refresh_expires_at": refresh_at,
        "refresh_expiry_source": refresh_source,
        "refresh_hard_expires_at": hard_cap(token, connection, now=now, new_grant=new_grant),
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
    return fields | with_fields(connection, fields).due_times() | {"version": F("version") + 1}


def with_fields(connection: Connection, fields: dict[str, Any]) -> Connection:
    """A copy of `connection` as it reads once `fields` are written (the version aside)."""
    after = copy.copy(connection)
    for name, value in fields.items():
        if name != "version":
            setattr(after, name, value)
    return after


def write_tokens(connection: Connection, fields: dict[str, Any]) -> int:
    """Store a refresh's result if nobody wrote since `connection` was read, retrying a locked
    database: the provider may already have rotated the refresh token, so giving up here would
    lose the grant."""
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


def refresh_expiry_note(connection: Connection) -> str:
    """What a RefreshAttempt row says about the refresh token's expiry afterwards."""
    expires_at = connection.refresh_expires_at
    when = f"{expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "unknown"
    note = f"refresh token expires {when} ({connection.refresh_expiry_source})"
    if connection.refresh_expiry_learned:
        note += f"; {connection.refresh_expiry_learned} expiry"
    return note


def reload_connection(connection: Connection) -> Connection:
    return Connection.objects.select_related("provider").get(pk=connection.pk)
