"""How `manage.py connection` shows connections. Never a token or a secret.

The JSON shape is `connections.serializers.connection_summary`, shared with the token API, so
`--json` and `GET /api/v1/connections/<slug>` describe a connection the same way.
"""

import json
from collections.abc import Sequence
from typing import Any

from connections.models import Connection
from connections.serializers import connection_summary

__all__ = [
    "connection_summary",
    "render_connection_table",
    "render_detail",
    "render_json",
    "render_table",
]


def render_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return str(value)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    lines = [[h.upper() for h in headers], *cells]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def render_connection_table(connections: Sequence[Connection]) -> str:
    headers = ["slug", "status", "provider", "access expires", "reauthorize by", "account"]
    keys = ["slug", "status", "provider", "access_expires_at", "reauthorize_by", "account"]
    summaries = [connection_summary(connection) for connection in connections]
    return render_table(headers, [[summary[key] for key in keys] for summary in summaries])


def render_detail(connection: Connection) -> str:
    summary = connection_summary(connection)
    provider = connection.provider
    lifetime = connection.effective_refresh_lifetime
    extra = {
        "refresh_expiry_kind": connection.effective_refresh_expiry,
        "refresh_lifetime": f"{lifetime.days}d" if lifetime else None,
        "refresh_threshold": f"{connection.refresh_threshold}s",
        "provider_name": provider.name,
        "preset": provider.preset or None,
        "token_url": provider.token_url,
    }
    items = {**summary, **extra}
    width = max(len(key) for key in items)
    return "\n".join(f"{key.ljust(width)}  {_cell(value)}" for key, value in items.items())
