"""The one public shape of a connection (CLI `--json`, token API). Never a secret."""

from datetime import datetime
from typing import Any

from connections.models import Connection


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def connection_summary(connection: Connection) -> dict[str, Any]:
    reauthorize_by, reauthorize_by_source = connection.reauthorization_deadline
    return {
        "slug": connection.slug,
        "name": connection.name,
        "status": connection.status,
        "status_reason": connection.status_reason,
        "provider": connection.provider.slug,
        "account": connection.account_label or connection.account_id or None,
        "scopes": connection.granted_scopes
        or connection.scopes
        or connection.provider.default_scopes,
        "access_expires_at": iso(connection.access_expires_at),
        "access_expiry_source": connection.access_expiry_source,
        "refresh_expires_at": iso(connection.refresh_expires_at),
        "refresh_expiry_source": connection.refresh_expiry_source,
        # How the refresh token dies (absolute, sliding, none, unknown) and what the deadline
        # rests on, so a null `reauthorize_by` says "renewed automatically" or "unknown".
        "refresh_expiry_kind": connection.refresh_expiry_kind,
        "refresh_expiry_learned_from": connection.refresh_expiry_learned_from or None,
        "refresh_hard_expires_at": iso(connection.refresh_hard_expires_at),
        "reauthorize_by": iso(reauthorize_by),
        "reauthorize_by_source": reauthorize_by_source,
        "last_refreshed_at": iso(connection.last_refreshed_at),
        "backup": connection.backup.slug if connection.backup_id else None,
    }


# The columns `connection_summary` reads (through properties too: `reauthorize_by` reads
# `Connection.DEADLINE_FIELDS`), for
# `.only()` with `select_related("provider", "backup")`: a list reads no token or secret. A field
# added above belongs here too; the API list's query-count test fails otherwise.
SUMMARY_FIELDS = (
    "slug",
    "name",
    "status",
    "status_reason",
    "account_label",
    "account_id",
    "granted_scopes",
    "scopes",
    "access_expires_at",
    "access_expiry_source",
    "refresh_expiry_source",
    "refresh_expiry_learned_from",
    "last_refreshed_at",
    "provider",
    "provider__slug",
    "provider__default_scopes",
    "backup",
    "backup__slug",
    *Connection.DEADLINE_FIELDS,
)
