"""The dashboard's list (`/`) at scale: server time, page bytes and SQL queries of page 1.

Run as `python bench/dashboard.py [--sizes 100,1000,10000] [--repeat 10]`. Builds a throwaway
SQLite database with N connections (encrypted tokens and secrets, as real rows have; 3 % broken),
then renders page 1 in-process with Django's test client, logged in as staff. Time is the median
of `--repeat` runs. Before this list (one static table of every row): 2.7 s and 7.3 MB at 10,000.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _seed(count: int) -> None:
    from django.utils import timezone

    from connections.models import Connection, Provider

    Connection.objects.all().delete()
    provider, _ = Provider.objects.get_or_create(
        slug="bench",
        defaults={
            "name": "Bench provider",
            "authorize_url": "https://auth.example.com/authorize",
            "token_url": "https://auth.example.com/token",
        },
    )
    now = timezone.now()
    batch = []
    for n in range(count):
        broken = n % 33 == 0
        batch.append(
            Connection(
                name=f"Connection {n:05d}",
                slug=f"connection-{n:05d}",
                provider=provider,
                client_id=f"client-{n}",
                client_secret="client-secret-value-" + "s" * 40,
                status=Connection.Status.NEEDS_REAUTH if broken else Connection.Status.ACTIVE,
                access_token="access-token-" + "a" * 900,
                refresh_token="refresh-token-" + "r" * 200,
                access_expires_at=now + timedelta(minutes=n % 60),
                refresh_expires_at=now + timedelta(days=n % 90),
                last_refreshed_at=now,
            )
        )
        if len(batch) == 1000:
            Connection.objects.bulk_create(batch)
            batch = []
    Connection.objects.bulk_create(batch)


def run(*, sizes: list[int], repeat: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection as db_connection
    from django.test import Client

    user = get_user_model().objects.create_user(username="bench", is_staff=True)
    client = Client()
    client.force_login(user)
    print(f"\nGET / (dashboard list, page 1; median of {repeat})")
    print(f"{'connections':>12} {'server time':>12} {'bytes':>10} {'queries':>8}")
    for size in sizes:
        _seed(size)
        client.get("/")  # warm up
        # Counted by an execute wrapper: request_started empties connection.queries mid-capture.
        queries: list[str] = []

        def count(execute, sql, *args, seen: list[str] = queries):
            seen.append(sql)
            return execute(sql, *args)

        with db_connection.execute_wrapper(count):
            body = client.get("/").content
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            assert client.get("/").status_code == 200
            timings.append(time.perf_counter() - started)
        median = statistics.median(timings) * 1000
        print(f"{size:>12,} {median:>10.1f}ms {len(body):>10,} {len(queries):>8}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    workdir = Path(tempfile.mkdtemp(prefix="tokenadmin-bench-dashboard-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        run(sizes=[int(size) for size in args.sizes.split(",")], repeat=args.repeat)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
