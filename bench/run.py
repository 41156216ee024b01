"""Run the benchmarks, each on a throwaway database; print a table per benchmark.

`make bench` runs this (`python bench/run.py [--callers N] [--latency S] [--only NAME]`):
1. token API (bench/token_api.py): the token endpoint under gunicorn as `make run` starts it,
   against the same URL answering 401, and 100 concurrent requests on one expired token;
   needs the wrk load generator;
2. sweep (bench/sweep.py): selection and throughput of the access-token sweep;
   API list (bench/api_list.py): `GET /api/v1/connections` at 10,000 connections, paginated
   against the former unpaginated answer;
   dashboard (bench/dashboard.py): the list page's server time, bytes and queries at 100,
   1,000 and 10,000 connections;
3. single flight (bench/single_flight.py): the engine against naive callers, in-process, at the
   test authorization server (django-oauth-toolkit, a subprocess), with the test settings on a
   temporary SQLite file (or BENCH_DATABASE_URL).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--callers", type=int, default=50, help="concurrent callers (50)")
    parser.add_argument("--latency", type=float, default=0.1, help="token endpoint latency (s)")
    parser.add_argument(
        "--only",
        choices=("token-api", "sweep", "api-list", "dashboard", "single-flight"),
        help="run just this one",
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    # The token API and sweep benches run in child processes of their own, before this process
    # configures Django for the single-flight bench.
    from bench import sweep, token_api

    if args.only in (None, "token-api"):
        token_api.run()
    if args.only in (None, "sweep"):
        sweep.run()
    # In child processes: each configures Django on a database of its own.
    if args.only in (None, "api-list"):
        subprocess.run([sys.executable, str(ROOT / "bench" / "api_list.py")], check=True)
    if args.only in (None, "dashboard"):
        subprocess.run([sys.executable, str(ROOT / "bench" / "dashboard.py")], check=True)
    if args.only not in (None, "single-flight"):
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="tokenadmin-bench-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["DATABASE_URL"] = os.environ.get(
        "BENCH_DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}"
    )

    import django

    django.setup()

    from django.core.management import call_command

    from bench import single_flight
    from tests.authserver.harness import AuthServer

    try:
        call_command("migrate", verbosity=0, interactive=False)
        server = AuthServer.start(workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    try:
        single_flight.run(server, callers=args.callers, latency=args.latency)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
