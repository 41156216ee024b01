"""Benchmark of the access-token sweep (`connections.sweeps`).

Prints, per database:
1. Selection: for 100, 1,000 and 10,000 connections (5 % due), the median time of
   `select_due_refreshes` and of the sweep's whole selection phase, and their SQL query counts.
2. Throughput: 1,000 due connections refreshed by `sweep_access_tokens()` against a local token
   endpoint that answers after 100 ms (bench/token_endpoint.py), at SWEEP_CONCURRENCY 8, 16, 32.

`run()` starts one child process per database (a fresh temp SQLite file always; a dedicated,
dropped-afterwards PostgreSQL database too when DATABASE_URL is postgres), because Django is set
up once per process and this bench must not share settings with the other benches.
Machines here are noisy: compare ratios within one run, not absolute numbers across runs.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
SIZES = (100, 1_000, 10_000)
SELECTION_RUNS = 7
THROUGHPUT_COUNT = 1_000
CONCURRENCIES = (8, 16, 32)
# SQLite only, far above the default: shows what write-lock timeouts (busy_timeout) do to a sweep.
STRESS_CONCURRENCY = 128
LATENCY_SECONDS = 0.1
TARGET_SECONDS = 60.0
RUN_CAP_SECONDS = 90.0  # a throughput run stops sweeping after this, target met or not
CHILD_TIMEOUT_SECONDS = 240.0
CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret"
POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql")


def run() -> None:
    """Run the bench on SQLite (and PostgreSQL when DATABASE_URL is postgres); print its tables."""
    backends = ["sqlite"]
    if urlsplit(_postgres_url()).scheme in POSTGRES_SCHEMES:
        backends.append("postgres")
    failed = [
        backend
        for backend in backends
        if subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", backend],
            cwd=ROOT,
            timeout=CHILD_TIMEOUT_SECONDS,
        ).returncode
    ]
    if failed:
        raise RuntimeError(f"the sweep bench failed on {', '.join(failed)} (traceback above)")


# --- the child process: database, Django, the two parts ---------------------------------------


def _postgres_url() -> str:
    """BENCH_DATABASE_URL (what bench/run.py reads) or DATABASE_URL; used only if postgres."""
    return os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL", "")


@contextmanager
def _sqlite_database() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="tokenadmin-bench-")
    try:
        yield f"sqlite:///{directory}/bench.sqlite3"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def _postgres_database(url: str) -> Iterator[str]:
    import psycopg

    parts = urlsplit(url)
    name = f"tokenadmin_bench_{os.getpid()}"
    admin = parts._replace(scheme="postgresql", path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield parts._replace(path=f"/{name}").geturl()
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _child(backend: str) -> None:
    sys.path.insert(0, str(ROOT))
    database = _postgres_database(_postgres_url()) if backend == "postgres" else _sqlite_database()
    with database as url:
        os.environ["DATABASE_URL"] = url
        os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        meter = _install_meter()
        print(f"\n== sweep bench on {backend} ==", flush=True)
        for part in (_bench_selection, lambda: _bench_throughput(meter)):
            started = time.monotonic()
            part()
            print(f"(part took {time.monotonic() - started:.0f} s)", flush=True)


class _Meter(Counter[str]):
    """Counts SQL statements and new database connections in every thread, and swallowed logs."""

    lock = threading.Lock()

    def add(self, what: str) -> None:
        with self.lock:
            self[what] += 1

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return Counter(self)


def _install_meter() -> _Meter:
    import logging

    from django.db.backends.signals import connection_created

    meter = _Meter()

    def count_query(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        meter.add("queries")
        return execute(sql, params, many, context)

    def on_connect(sender: object, connection: Any, **kwargs: object) -> None:
        meter.add("db_connections")
        # A thread's DatabaseWrapper reconnects in place: wrap it once, not once per connect.
        if count_query not in connection.execute_wrappers:
            connection.execute_wrappers.append(count_query)

    connection_created.connect(on_connect, weak=False)

    class CountingHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            meter.add(f"log_{record.levelname.lower()}")
            if record.levelno >= logging.ERROR:
                print(f"   [log] {record.name}: {record.getMessage()}", file=sys.stderr)

    # One INFO line per sweep and a WARNING per failure would bury the tables; count them.
    logger = logging.getLogger("connections")
    logger.handlers, logger.propagate = [CountingHandler()], False
    return meter


# --- data ---------------------------------------------------------------------------------------


def _provider(token_url: str) -> Any:
    from connections.models import Provider

    slug = f"bench-{time.monotonic_ns()}"
    # The bench endpoint rotates refresh tokens; say so, as tokenadmin records after one refresh.
    return Provider.objects.create(
        slug=slug,
        name=slug,
        authorize_url=token_url,
        token_url=token_url,
        rotates_refresh_tokens=True,
    )


def _kind(i: int) -> str:
    """5 % due, 2 % dead (needs_reauth for weeks), 1 % degraded and backing off, 92 % later."""
    slot = i % 100
    return "due" if slot < 5 else "dead" if slot < 7 else "backing_off" if slot == 7 else "later"


def _connection(provider: Any, i: int, *, now: datetime, kind: str) -> Any:
    """An authorized connection with 1-hour access tokens, its due times set as on a refresh."""
    from connections.models import Connection

    Status = Connection.Status
    # refresh_margin() = min(threshold 300 s, lifetime / 2) = 300 s: due 300 s before expiry.
    seconds = {"due": 60, "backing_off": 30, "dead": -86400 * (7 + i % 30)}.get(
        kind, 600 + (i * 37) % 3000
    )
    expires_at = now + timedelta(seconds=seconds)
    issued_at = expires_at - timedelta(hours=1)
    connection = Connection(
        name=f"bench {i}",
        slug=f"bench-{provider.pk}-{i}",
        provider=provider,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        access_token=f"bench-at-{i}",
        refresh_token=f"bench-rt-{provider.pk}-{i}",
        token_type="Bearer",
        access_expires_at=expires_at,
        last_refreshed_at=issued_at,
        authorized_at=issued_at,
        refresh_issued_at=issued_at,
        status={"dead": Status.NEEDS_REAUTH, "backing_off": Status.DEGRADED}.get(
            kind, Status.ACTIVE
        ),
        next_attempt_at=now + timedelta(minutes=10) if kind == "backing_off" else None,
    )
    for name, value in connection.due_times().items():  # what lifecycle.token_fields writes
        setattr(connection, name, value)
    return connection


def _create_connections(provider: Any, start: int, stop: int, *, now: datetime) -> None:
    from connections.models import Connection

    rows = [_connection(provider, i, now=now, kind=_kind(i)) for i in range(start, stop)]
    Connection.objects.bulk_create(rows, batch_size=500)


# --- part 1: selection --------------------------------------------------------------------------


def _time_queries(call: Any) -> tuple[float, int, list[str]]:
    """Median milliseconds of `call()` over SELECTION_RUNS (after a warm-up), and its queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    call()
    timings = []
    for _ in range(SELECTION_RUNS):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as captured:
        call()
    return statistics.median(timings), len(captured), [q["sql"] for q in captured]


def _plan(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            return "; ".join(row[-1] for row in cursor.fetchall())
        cursor.execute(f"EXPLAIN {sql}")
        nodes = [row[0].strip(" ->") for row in cursor.fetchall()]
        return "; ".join(node.split("  (")[0] for node in nodes if "Scan" in node or "Sort" in node)


def _bench_selection() -> None:
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from connections import sweeps

    cfg = settings.TOKENADMIN
    horizon = timedelta(seconds=cfg["SWEEP_INTERVAL_SECONDS"])
    provider = _provider("http://127.0.0.1:9/unused")
    print(
        f"\nselection (median of {SELECTION_RUNS}): 'select' = select_due_refreshes; 'idle' = the "
        "same when nothing is due;\n  'sweep' = the sweep's whole selection phase "
        "(advance_consumer_schedules + select_due_refreshes + select_pipeline_refreshes);\n"
        "  5 % due, 2 % needs_reauth (due times in the past), 1 % backing off, "
        "no consumer schedules"
        + (
            "; ANALYZE after each insert, as autovacuum would"
            if connection.vendor != "sqlite"
            else "; no ANALYZE (nothing in tokenadmin runs one on SQLite)"
        )
    )
    print(
        f"{'N':>7} {'due':>5} {'select ms':>10} {'queries':>8} {'idle ms':>8} "
        f"{'pipeline ms':>11} {'sweep ms':>9} {'sweep q':>8}"
    )
    select_ms: dict[int, float] = {}
    sweep_ms: dict[int, float] = {}
    idle_ms: dict[int, float] = {}
    query_counts: set[tuple[int, int]] = set()
    made, sql = 0, ""
    for size in SIZES:
        now = timezone.now()
        _create_connections(provider, made, size, now=now)
        made = size
        if connection.vendor != "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")

        def select(at: datetime = now) -> list[int]:
            return sweeps.select_due_refreshes(now=at, horizon=horizon, limit=cfg["SWEEP_BATCH"])

        def pipeline(now: datetime = now) -> None:
            sweeps.select_pipeline_refreshes(now=now, limit=cfg["SWEEP_BATCH"])

        def selection_phase(now: datetime = now) -> None:
            sweeps.advance_consumer_schedules(now=now)
            select()
            pipeline()

        due = len(select())
        select_ms[size], queries, captured = _time_queries(select)
        idle_ms[size], _, _ = _time_queries(lambda at=now - timedelta(hours=2): select(at))
        pipeline_ms, _, _ = _time_queries(pipeline)
        sweep_ms[size], sweep_queries, _ = _time_queries(selection_phase)
        sql = captured[0]
        query_counts.add((queries, sweep_queries))
        print(
            f"{size:>7,} {due:>5,} {select_ms[size]:>10.2f} {queries:>8} {idle_ms[size]:>8.2f} "
            f"{pipeline_ms:>11.2f} {sweep_ms[size]:>9.2f} {sweep_queries:>8}"
        )
    first, last = SIZES[0], SIZES[-1]
    print(
        f"at {last:,} vs {first:,} connections (due rows also grow {last // first}x): "
        f"select {select_ms[last] / select_ms[first]:.1f}x, "
        f"idle {idle_ms[last] / idle_ms[first]:.1f}x, "
        f"sweep selection {sweep_ms[last] / sweep_ms[first]:.1f}x the time; query counts "
        + ("the same at every N" if len(query_counts) == 1 else "GREW with N")
    )
    print(f"select plan at {last:,}: {_plan(sql)}")
    _delete_all()


def _delete_all() -> None:
    from connections.models import Connection, Provider, RefreshAttempt, StatusChange

    for model in (RefreshAttempt, StatusChange, Connection, Provider):
        model.objects.all()._raw_delete(model.objects.db)


# --- part 2: throughput -------------------------------------------------------------------------


def _query_label(sql: str) -> str:
    """`SELECT connection` for a statement: its verb and first table, app prefix dropped."""
    verb = sql.split(None, 1)[0].upper()
    table = re.search(r'(?:FROM|UPDATE|INTO)\s+"?(\w+)"?', sql)
    return f"{verb} {table[1].removeprefix('connections_')}" if table else verb


def _queries_per_refresh(provider: Any) -> list[str]:
    """The SQL of one sweep job (`sweeps._refresh_one`) refreshing one due connection."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from connections import sweeps
    from connections.models import Connection, RefreshAttempt

    probe = _connection(provider, 10**6, now=timezone.now(), kind="due")
    Connection.objects.bulk_create([probe])
    pk = Connection.objects.get(slug=probe.slug).pk
    with CaptureQueriesContext(connection) as captured:
        outcome = sweeps._refresh_one(
            sweeps.Job(pk),
            trigger=RefreshAttempt.Trigger.SWEEP,
            force=False,
            deadline=time.monotonic() + 30,
        )
    assert outcome == "refreshed", outcome
    Connection.objects.filter(pk=pk).delete()
    return [_query_label(q["sql"]) for q in captured]


def _sweep_until_done(meter: _Meter) -> dict[str, Any]:
    from django.conf import settings
    from django.db import Error as DatabaseError
    from django.utils import timezone

    from connections import sweeps

    cfg = settings.TOKENADMIN
    horizon = timedelta(seconds=cfg["SWEEP_INTERVAL_SECONDS"])
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    before = meter.snapshot()
    started, cpu_started = time.monotonic(), time.process_time()
    sweep_calls = 0
    while time.monotonic() - started < RUN_CAP_SECONDS:
        if not sweeps.select_due_refreshes(now=timezone.now(), horizon=horizon, limit=1):
            break
        sweep_calls += 1
        try:
            outcomes += sweeps.sweep_access_tokens()
        except DatabaseError as exc:  # e.g. SQLite "database is locked": a product finding
            errors[f"{type(exc).__name__}: {exc}"[:80]] += 1
    wall, cpu = time.monotonic() - started, time.process_time() - cpu_started
    return {
        "wall": wall,
        "cpu": cpu,
        "sweeps": sweep_calls,
        "outcomes": outcomes,
        "errors": errors,
        "meter": meter.snapshot() - before,
    }


def _throughput_run(meter: _Meter, concurrency: int) -> dict[str, Any]:
    from django.conf import settings
    from django.test.utils import override_settings
    from django.utils import timezone

    from bench.token_endpoint import TokenEndpoint
    from connections.models import Connection

    with TokenEndpoint(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, latency=LATENCY_SECONDS
    ) as endpoint:
        provider = _provider(endpoint.url)
        now = timezone.now()
        Connection.objects.bulk_create(
            [_connection(provider, i, now=now, kind="due") for i in range(THROUGHPUT_COUNT)],
            batch_size=500,
        )
        per_refresh = _queries_per_refresh(provider) if concurrency == CONCURRENCIES[0] else None
        calls_before = endpoint.calls
        tokenadmin = {**settings.TOKENADMIN, "SWEEP_CONCURRENCY": concurrency}
        with override_settings(TOKENADMIN=tokenadmin):
            result = _sweep_until_done(meter)
        result["calls"] = endpoint.calls - calls_before
    result["refreshed"] = Connection.objects.filter(provider=provider, version__gt=0).count()
    result["needs_reauth"] = Connection.objects.filter(
        provider=provider, status=Connection.Status.NEEDS_REAUTH
    ).count()
    result["per_refresh"] = per_refresh
    _delete_all()
    return result


def _print_throughput_row(concurrency: str, r: dict[str, Any]) -> None:
    refreshed, wall, m = r["refreshed"], r["wall"], r["meter"]
    met = refreshed == THROUGHPUT_COUNT and wall <= TARGET_SECONDS
    per = max(refreshed, 1)
    print(
        f"{concurrency:>11} {refreshed:>9,} {sum(r['calls'].values()):>6,} {r['sweeps']:>6} "
        f"{wall:>7.1f} {refreshed / wall:>9.1f} {r['cpu'] * 1000 / per:>8.1f} "
        f"{m['queries'] / per:>9.1f} {m['db_connections']:>7,} {sum(r['errors'].values()):>6} "
        f"{'met' if met else 'MISSED':>6}",
        flush=True,
    )
    for message, count in r["errors"].items():
        print(f"{'':>11}   sweep raised {count}x {message}")
    odd_calls = {k: v for k, v in r["calls"].items() if k != "ok"}
    if odd_calls or r["needs_reauth"] or r["errors"] or m["log_warning"]:
        extras = {
            "sweep outcomes": dict(r["outcomes"]),
            "endpoint non-ok": odd_calls,
            "needs_reauth": r["needs_reauth"],
            "logged warnings": m["log_warning"],
        }
        print(f"{'':>11}   {extras}")


def _bench_throughput(meter: _Meter) -> None:
    from django.conf import settings
    from django.db import connection

    cfg = settings.TOKENADMIN
    print(
        f"\nthroughput: {THROUGHPUT_COUNT:,} due connections, token endpoint answers after "
        f"{LATENCY_SECONDS * 1000:.0f} ms; sweep_access_tokens() repeated until none is due\n"
        f"  (settings: SWEEP_CONCURRENCY={cfg['SWEEP_CONCURRENCY']}, "
        f"SWEEP_BUDGET_SECONDS={cfg['SWEEP_BUDGET_SECONDS']:g}, SWEEP_BATCH={cfg['SWEEP_BATCH']}; "
        f"target: all within {TARGET_SECONDS:.0f} s)"
    )
    print(
        f"{'concurrency':>11} {'refreshed':>9} {'calls':>6} {'sweeps':>6} {'wall s':>7} "
        f"{'refresh/s':>9} {'cpu ms/r':>8} {'q/refresh':>9} {'db conn':>7} {'errors':>6} "
        f"{'target':>6}"
    )
    traced = None
    stress = (STRESS_CONCURRENCY,) if connection.vendor == "sqlite" else ()
    for concurrency in CONCURRENCIES + stress:
        result = _throughput_run(meter, concurrency)
        traced = traced or result["per_refresh"]
        _print_throughput_row(f"{concurrency}{'*' if concurrency in stress else ''}", result)
    print(
        "  calls = token endpoint calls; cpu ms/r = this process's CPU (all threads) per refresh;"
        "\n  q/refresh = SQL statements per refresh, all threads; db conn = database connections "
        "opened" + ("\n  * stress level, not a recommended setting" if stress else "")
    )
    if traced:
        print(f"queries of one sweep job (sweeps._refresh_one), in order: {len(traced)}")
        print("  " + ", ".join(traced))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2])
    else:
        run()
