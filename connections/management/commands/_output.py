"""How `manage.py connection` shows connections and their consumers. Never a token or a secret.

The JSON shape is `connections.serializers.connection_summary`, shared with the token API, so
`--json` and `GET /api/v1/connections/<slug>` describe a connection the same way.
"""

import json
from collections.abc import Sequence
from typing import Any

from connections.models import Connection, ConsumerSchedule
from connections.serializers import connection_summary, iso

__all__ = [
    "connection_summary",
    "consumer_summary",
    "render_connection_table",
    "render_consumer_table",
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


def consumer_summary(schedule: ConsumerSchedule) -> dict[str, Any]:
    return {
        "label": schedule.label,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "lead_minutes": schedule.lead_minutes,
        "run_minutes": schedule.run_minutes,
        "next_run_at": iso(schedule.next_run_at),
    }


def render_consumer_table(schedules: Sequence[ConsumerSchedule]) -> str:
    headers = ["consumer", "cron", "time zone", "lead (min)", "run (min)", "next run"]
    keys = ["label", "cron", "timezone", "lead_minutes", "run_minutes", "next_run_at"]
    summaries = [consumer_summary(schedule) for schedule in schedules]
    return render_table(headers, [[summary[key] for key in keys] for summary in summaries])
