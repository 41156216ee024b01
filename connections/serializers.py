"""The one public shape of a connection (CLI `--json`, token API). Never a secret."""

from datetime import datetime
from typing import Any

from connections.models import Connection


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def connection_summary(connection: Connection) -> dict[str, Any]:
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
        "reauthorize_by": iso(connection.reauthorize_by),
        "last_refreshed_at": iso(connection.last_refreshed_at),
        "backup": connection.backup.slug if connection.backup_id else None,
    }
