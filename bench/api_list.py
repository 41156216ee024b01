"""`GET /api/v1/connections` at scale: time, bytes and queries of one answer.

Run as `python bench/api_list.py [--connections 10000] [--repeat 5]`. It builds a throwaway SQLite
database with N authorized-looking connections (encrypted tokens and secrets, as real rows have),
then answers the list in-process with Django's test client and prints, measured in this run:

- the unpaginated list as the view answered it before pagination (every row, full columns: the
  former view's three lines, kept here as the reference);
- the first page at the default size and at the largest `limit`;
- every connection fetched by following `next` to the end.

Times are the median of `--repeat` runs; bytes are the body's length.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _median_seconds(action: Callable[[], object], repeat: int) -> tuple[float, object]:
    timings, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), result


def _seed(count: int) -> str:
    from django.utils import timezone

    from connections.models import ApiKey, Connection, Provider

    provider = Provider.objects.create(
        slug="bench",
        name="Bench provider",
        authorize_url="https://auth.example.com/authorize",
        token_url="https://auth.example.com/token",
        default_scopes="openid offline_access",
    )
    now = timezone.now()
    batch = []
    for n in range(count):
        batch.append(
            Connection(
                name=f"Connection {n:05d}",
                slug=f"connection-{n:05d}",
                provider=provider,
                client_id=f"client-{n}",
                client_secret="client-secret-value-" + "s" * 40,
                status=Connection.Status.ACTIVE,
                access_token="access-token-" + "a" * 900,  # a JWT-sized token
                refresh_token="refresh-token-" + "r" * 200,
                token_type="Bearer",
                access_expires_at=now + timedelta(hours=1),
                refresh_expires_at=now + timedelta(days=90),
                authorized_at=now,
                last_refreshed_at=now,
                refresh_issued_at=now,
            )
        )
        if len(batch) == 1000:
            Connection.objects.bulk_create(batch)
            batch = []
    Connection.objects.bulk_create(batch)
    _, raw_key = ApiKey.issue(name="bench", all_connections=True)
    return raw_key


def _former_unpaginated_view() -> bytes:
    """The list as `connection_list` answered it before pagination (the reference)."""
    from django.http import JsonResponse

    from connections.models import Connection
    from connections.serializers import connection_summary

    connections = Connection.objects.select_related("provider", "backup").order_by("slug")
    return JsonResponse({"connections": [connection_summary(c) for c in connections]}).content


def run(*, connections: int, repeat: int) -> None:
    from django.db import connection as db_connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    raw_key = _seed(connections)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    def get(url: str) -> bytes:
        response = client.get(url)
        assert response.status_code == 200, response.content[:500]
        return response.content

    def walk() -> tuple[int, int, int]:
        url: str | None = "/api/v1/connections?limit=500"
        pages = seen = size = 0
        while url:
            body = client.get(url).json()
            pages, seen = pages + 1, seen + len(body["connections"])
            size += len(str(body))
            url = body.get("next") and body["next"].removeprefix("http://testserver")
        return pages, seen, size

    rows: list[tuple[str, float, int, int]] = []
    cases: list[tuple[str, Callable[[], bytes]]] = [
        ("unpaginated (former view)", _former_unpaginated_view),
        ("first page, default size", lambda: get("/api/v1/connections")),
        ("first page, limit=500", lambda: get("/api/v1/connections?limit=500")),
    ]
    for label, action in cases:
        action()  # warm up
        with CaptureQueriesContext(db_connection) as queries:
            action()
        # Counted now: the next request through the test client empties the query log.
        query_count = len(queries)
        seconds, body = _median_seconds(action, repeat)
        rows.append((label, seconds, len(body), query_count))  # type: ignore[arg-type]

    walk_seconds, (pages, seen, _) = _median_seconds(walk, max(1, repeat // 2))  # type: ignore[misc]

    print(f"\nGET /api/v1/connections with {connections:,} connections (median of {repeat})")
    print(f"{'answer':<28} {'time':>9} {'bytes':>11} {'queries':>8} {'time vs former':>15}")
    reference = rows[0][1]
    for label, seconds, size, queries in rows:
        print(
            f"{label:<28} {seconds * 1000:>7.1f}ms {size:>11,} {queries:>8} "
            f"{seconds / reference:>14.3f}x"
        )
    print(
        f"{'all, following next':<28} {walk_seconds * 1000:>7.1f}ms "
        f"{pages:>6} pages, {seen:,} connections{'':>2} {walk_seconds / reference:>8.3f}x"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    workdir = Path(tempfile.mkdtemp(prefix="tokenadmin-bench-list-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        run(connections=args.connections, repeat=args.repeat)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
