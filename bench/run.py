"""Run the benchmarks against a throwaway database and the test authorization server.

`make bench` runs this (`python bench/run.py [--callers N] [--latency S]`). It uses the test
settings with a temporary SQLite file (or DATABASE_URL when BENCH_DATABASE_URL is given), starts
django-oauth-toolkit as a subprocess, and prints a table per benchmark.
"""

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--callers", type=int, default=50, help="concurrent callers (50)")
    parser.add_argument("--latency", type=float, default=0.1, help="token endpoint latency (s)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    # The sweep bench runs each database in a child process of its own, before this process
    # configures Django for the single-flight bench.
    from bench import sweep

    sweep.run()

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
