"""Benchmark of the token API's hot path, served by gunicorn exactly as `make run` starts it.

Prints, measured in one run with one load generator (wrk):
1. requests/s, p50 and p99 of `GET /api/v1/connections/<slug>/token` with a valid key and a
   valid token (200), and of the same URLs without a key (Django's 401: the framework's floor),
   and their ratio (issue 6: at least 0.7, aim 0.9). Requests rotate over 16 connections.
2. The same two requests timed in-process (Django's test client, no HTTP server): median µs and
   SQL queries per request.
3. 100 concurrent API requests for one expired token: how many calls reached the provider's
   token endpoint (single flight: must be 1) and the wall time.

The gunicorn command line is read from scripts/run.sh (`make run`), so the two cannot drift; the
server runs on a throwaway SQLite database with the production settings (tokenadmin.settings)
and a local fake token endpoint (bench/token_endpoint.py). Machines here are noisy: each
measurement alternates the two requests over several rounds and reports medians; compare ratios
within one run, not absolute numbers across runs.

`run()` starts a child process, because Django is set up once per process and this bench uses
the production settings, not the tests' ones.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import secrets
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = 16
CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret"
WRK_CONNECTIONS = 8  # gunicorn's 2 workers x 4 threads, as `make run` starts it
ROUNDS = 5
HERD = 100
PROVIDER_LATENCY = 0.1
IN_PROCESS_REQUESTS = 400
CHILD_TIMEOUT_SECONDS = 600.0
MIN_RATIO = 0.7

# Prints one line the parent understands, from wrk's own statistics (microseconds).
WRK_SCRIPT = """
local paths = {%(paths)s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""


def run(*, seconds: int = 3) -> None:
    """Run the bench in a child process; raise if it fails or misses its targets."""
    if shutil.which("wrk") is None:
        raise RuntimeError(
            "the token API bench needs the wrk load generator: `apt-get install -y wrk` "
            "(Debian/Ubuntu, as root) or `brew install wrk`. A Python load generator would be "
            "the bottleneck on a small machine and measure itself, not tokenadmin."
        )
    # Other work on the machine skews the ratio (the token path suffers more from a busy CPU).
    print(
        f"token API bench: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs before "
        "it starts"
    )
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(seconds)],
        cwd=ROOT,
        timeout=CHILD_TIMEOUT_SECONDS,
    )
    if completed.returncode:
        raise RuntimeError("the token API bench failed (see above)")


# --- the child process ------------------------------------------------------------------------


def gunicorn_command(port: int) -> list[str]:
    """The gunicorn command line of scripts/run.sh, for `port`, with its default concurrency."""
    script = (ROOT / "scripts" / "run.sh").read_text()
    match = re.search(r'"\$VENV/bin/gunicorn"(.*?)&\n', script, re.DOTALL)
    concurrency = re.search(r'WEB_CONCURRENCY="\$\{WEB_CONCURRENCY:-(\d+)\}"', script)
    if match is None or concurrency is None:
        raise RuntimeError("cannot find the gunicorn command line in scripts/run.sh")
    args = shlex.split(match.group(1).replace("\\\n", " "))
    values = {"$PORT": str(port), "$WEB_CONCURRENCY": concurrency.group(1)}
    args = [re.sub(r"\$[A-Z_]+", lambda m: values[m.group(0)], arg) for arg in args]
    return [str(ROOT / ".venv" / "bin" / "gunicorn"), *args]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(workdir: Path) -> dict[str, str]:
    """Production settings on a throwaway database, with keys of their own."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DATABASE_URL=f"sqlite:///{workdir / 'bench.sqlite3'}",
        SECRET_KEY=secrets.token_urlsafe(50),
        ENCRYPTION_KEY=secrets.token_urlsafe(32),
        SITE_URL="http://localhost:8000",
        DEBUG="false",
        STATIC_ROOT=str(workdir / "static"),
    )
    return env


@dataclass
class Load:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    status_errors: int
    socket_errors: int


def _wrk(url: str, script: Path, seconds: float, headers: list[str]) -> Load:
    command = ["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{round(seconds)}s", "-s", str(script)]
    for header in headers:
        command += ["-H", header]
    # No check=True: the error would show the command line, API key included.
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 30)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    count, duration_us, p50, p99, status, sockets = (int(v) for v in line.split()[1:])
    return Load(count / (duration_us / 1e6), p50 / 1000, p99 / 1000, status, sockets)


def _median_load(loads: list[Load]) -> Load:
    return Load(
        statistics.median(x.requests_per_second for x in loads),
        statistics.median(x.p50_ms for x in loads),
        statistics.median(x.p99_ms for x in loads),
        sum(x.status_errors for x in loads),
        sum(x.socket_errors for x in loads),
    )


def _create_data(token_url: str) -> tuple[list[Any], str]:
    """16 authorized connections whose tokens stay valid an hour, and a key scoped to them."""
    from django.utils import timezone

    from connections.models import ApiKey, Connection, Provider

    provider = Provider.objects.create(
        slug="bench", name="bench", authorize_url=token_url, token_url=token_url
    )
    now = timezone.now()
    connections = []
    for i in range(CONNECTIONS):
        connection = Connection(
            name=f"bench {i}",
            slug=f"bench-{i}",
            provider=provider,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            access_token=f"bench-at-{i}-{secrets.token_urlsafe(24)}",
            refresh_token=f"bench-rt-{i}-{secrets.token_urlsafe(24)}",
            token_type="Bearer",
            access_expires_at=now + timedelta(hours=1),
            last_refreshed_at=now,
            authorized_at=now,
            refresh_issued_at=now,
            status=Connection.Status.ACTIVE,
        )
        for name, value in connection.due_times().items():
            setattr(connection, name, value)
        connections.append(connection)
    Connection.objects.bulk_create(connections)
    connections = list(Connection.objects.order_by("slug"))
    _, raw_key = ApiKey.issue(name="bench pipeline", connections=connections)
    return connections, raw_key


def _measure_throughput(base: str, slugs: list[str], raw_key: str, workdir: Path, seconds: float):
    """Alternating rounds of the two requests; the ratio is the median of each round's pair,
    so a burst of other work on the machine skews one pair, not the result."""
    script = workdir / "rotate.lua"
    paths = ", ".join(f'"/api/v1/connections/{slug}/token"' for slug in slugs)
    script.write_text(WRK_SCRIPT % {"paths": paths})
    _wrk(base, script, 2, [f"Authorization: Bearer {raw_key}"])  # warm-up: imports, connections
    _wrk(base, script, 1, [])
    served, floor = [], []
    for round_ in range(ROUNDS):
        # Alternate which goes first, so neither always follows the other's after-effects.
        pair = [
            lambda: served.append(
                _wrk(base, script, seconds, [f"Authorization: Bearer {raw_key}"])
            ),
            lambda: floor.append(_wrk(base, script, seconds, [])),
        ]
        for measure in pair if round_ % 2 == 0 else pair[::-1]:
            measure()
    pairs = [
        f"{s.requests_per_second:.0f}/{f.requests_per_second:.0f}"
        for s, f in zip(served, floor, strict=True)
    ]
    print(f"rounds, token/401 req/s (a busy machine shows as uneven pairs): {' '.join(pairs)}")
    ratio = statistics.median(
        s.requests_per_second / f.requests_per_second for s, f in zip(served, floor, strict=True)
    )
    return _median_load(served), _median_load(floor), ratio


def _measure_in_process(slug: str, raw_key: str) -> dict[str, tuple[float, int]]:
    """Median µs and SQL queries per request through Django itself, with and without the key."""
    from django.db import connection as db_connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    url = f"/api/v1/connections/{slug}/token"
    clients = {
        "200": Client(SERVER_NAME="localhost", HTTP_AUTHORIZATION=f"Bearer {raw_key}"),
        "401": Client(SERVER_NAME="localhost"),
    }
    timings: dict[str, list[float]] = {name: [] for name in clients}
    # Django logs every 401 as a warning: 400 of them here would bury the report.
    logging.getLogger("django.request").setLevel(logging.ERROR)
    for _ in range(IN_PROCESS_REQUESTS):
        for name, client in clients.items():
            started = time.perf_counter()
            response = client.get(url)
            timings[name].append((time.perf_counter() - started) * 1e6)
            assert response.status_code == int(name), response.content
    result = {}
    for name, client in clients.items():
        with CaptureQueriesContext(db_connection) as queries:
            client.get(url)
        result[name] = (statistics.median(timings[name]), len(queries))
    return result


def _herd(base: str, path: str, raw_key: str) -> tuple[Counter[int], float]:
    """HERD requests released together, each on its own HTTP connection."""
    host, port = base.removeprefix("http://").split(":")
    barrier = threading.Barrier(HERD + 1)
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def one() -> None:
        barrier.wait(timeout=30)
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {raw_key}"})
            status = conn.getresponse().status
        except OSError:
            status = 0
        finally:
            conn.close()
        with lock:
            statuses[status] += 1

    threads = [threading.Thread(target=one) for _ in range(HERD)]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=30)
    started = time.monotonic()
    for thread in threads:
        thread.join(90)
    return statuses, time.monotonic() - started


def _measure_single_flight(base: str, endpoint: Any, connection: Any, raw_key: str):
    from django.utils import timezone

    from connections.models import Connection

    now = timezone.now()
    Connection.objects.filter(pk=connection.pk).update(
        access_expires_at=now - timedelta(seconds=1), last_refreshed_at=now - timedelta(hours=1)
    )
    before = endpoint.calls
    statuses, wall = _herd(base, f"/api/v1/connections/{connection.slug}/token", raw_key)
    calls = endpoint.calls - before
    return sum(calls.values()), statuses, wall


def _child(seconds: float) -> int:
    sys.path.insert(0, str(ROOT))
    workdir = Path(tempfile.mkdtemp(prefix="tokenadmin-bench-api-"))
    gunicorn = None
    try:
        env = _environment(workdir)
        os.environ.clear()
        os.environ.update(env, DJANGO_SETTINGS_MODULE="tokenadmin.settings")
        import django

        django.setup()
        from django.core.management import call_command

        from bench.token_endpoint import TokenEndpoint
        from tests.processes import wait_for_http

        call_command("migrate", verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        with TokenEndpoint(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, latency=PROVIDER_LATENCY
        ) as endpoint:
            connections, raw_key = _create_data(endpoint.url)
            port = _free_port()
            base = f"http://127.0.0.1:{port}"
            log_path = workdir / "gunicorn.log"
            with log_path.open("wb") as log:
                gunicorn = subprocess.Popen(
                    gunicorn_command(port),
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            wait_for_http(
                gunicorn,
                # /healthz is 503 here (no qcluster, no scheduler); a static file is served
                # (whitenoise) as soon as a worker is up.
                base + "/static/admin/css/base.css",
                timeout=60,
                what="gunicorn",
                read_log=lambda: log_path.read_text(errors="replace")[-3000:],
            )
            slugs = [c.slug for c in connections]
            served, floor, ratio = _measure_throughput(base, slugs, raw_key, workdir, seconds)
            in_process = _measure_in_process(slugs[0], raw_key)
            calls, statuses, wall = _measure_single_flight(base, endpoint, connections[-1], raw_key)
        return _report(served, floor, ratio, in_process, calls, statuses, wall, seconds)
    finally:
        if gunicorn is not None:
            gunicorn.terminate()
            try:
                gunicorn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(gunicorn.pid, 9)
                gunicorn.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def _report(served, floor, ratio, in_process, calls, statuses, wall, seconds) -> int:
    print(
        f"\ntoken API under gunicorn (scripts/run.sh's command line), {CONNECTIONS} connections, "
        f"wrk -c{WRK_CONNECTIONS}, medians of {ROUNDS} alternating {seconds:g} s rounds"
    )
    print(f"{'request':>26}  {'req/s':>8}  {'p50 ms':>7}  {'p99 ms':>7}  errors")
    for name, load in (("GET …/token, valid key", served), ("same URL, no key (401)", floor)):
        errors = load.socket_errors + (load.status_errors if load is served else 0)
        print(
            f"{name:>26}  {load.requests_per_second:>8.0f}  {load.p50_ms:>7.2f}  "
            f"{load.p99_ms:>7.2f}  {errors}"
        )
    print(
        f"ratio token/401 req/s: {ratio:.2f} (median of the {ROUNDS} rounds' pairs; target >= "
        f"{MIN_RATIO}, aim 0.9)"
    )
    (served_us, served_q), (floor_us, floor_q) = in_process["200"], in_process["401"]
    print(
        f"in-process (Django test client, median of {IN_PROCESS_REQUESTS}): token "
        f"{served_us / 1000:.2f} ms, {served_q} queries; 401 {floor_us / 1000:.2f} ms, "
        f"{floor_q} queries"
    )
    answered = ", ".join(f"{status or 'no answer'} x{n}" for status, n in sorted(statuses.items()))
    print(
        f"single flight: {HERD} concurrent requests, one expired token, provider latency "
        f"{PROVIDER_LATENCY:.1f} s: {calls} token-endpoint call(s), wall {wall:.2f} s ({answered})"
    )
    failures = []
    if served.status_errors or served.socket_errors:
        failures.append("the token requests had errors")
    if ratio < MIN_RATIO:
        failures.append(f"ratio {ratio:.2f} < {MIN_RATIO}")
    if calls != 1 or statuses != Counter({200: HERD}):
        failures.append("single flight broke")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.exit(_child(float(sys.argv[2])))
    run()
