"""`make demo` as a newcomer runs it, in a throwaway copy of the checkout.

`DemoSite.start` copies the working tree (tracked and untracked files, as `git ls-files` lists
them: no .env, no database) into a temporary folder, links the project's `.venv` into it, and
runs `scripts/run.sh` there with TOKENADMIN_DEMO=1, which is all `make demo` does. So the copy
writes its own `.env` and `demo.sqlite3`, and nothing of the real checkout is touched. The
dashboard password is read from the console, as a person would.

Follows tests/e2e/harness.py: a free port, output to a log file (a pipe nobody drains blocks the
child), readiness by polling an HTTP endpoint while watching for an early exit.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from tests.authserver.harness import find_free_port
from tests.processes import wait_for_http
from tests.support.polling import wait_for

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENV = PROJECT_ROOT / ".venv"
START_TIMEOUT = 120.0  # migrate + collectstatic + setup on a fresh SQLite file, on a busy box
COMMAND_TIMEOUT = 60.0
PASSWORD = re.compile(r"password: (\S+)")
# Never inherited from the test run: the demo picks its own database, broker and settings.
DROPPED_ENV = ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "PYTEST_ADDOPTS", "PORT")


class DemoError(RuntimeError):
    pass


def skip_reason() -> str | None:
    """Why the demo cannot be started from these tests, or None."""
    if shutil.which("git") is None:
        return "needs git (the demo runs in a copy of the checkout's files)"
    # As run.sh names its stamps: without one for this pyproject.toml, run.sh would
    # `pip install -e` from the copy, repointing the shared .venv at a folder soon deleted.
    digest = hashlib.sha256((PROJECT_ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    if not any((VENV / f".installed-{kind}{digest}").exists() for kind in ("dev-", "demo-")):
        return "needs .venv installed for this pyproject.toml: run `make venv` (or `make test`)"
    return None


def copy_checkout(target: Path) -> Path:
    """The files a fresh clone (plus work in progress) has, under `target`, with .venv linked."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        relative = raw.decode()
        source = PROJECT_ROOT / relative
        if not source.is_file():
            continue  # deleted in the working tree but not yet in the index
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    (target / ".venv").symlink_to(VENV)
    return target


class DemoSite:
    """`make demo` running in `root` (a copy of the checkout) on `port`."""

    def __init__(self, *, root: Path, port: int, env: dict[str, str]) -> None:
        self.root = root
        self.port = port
        self.site_url = f"http://127.0.0.1:{port}"
        self.env = env
        self.log_path = root / "make-demo.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.admin_password = ""

    @classmethod
    def start(cls, tmp_dir: Path, **settings: str) -> DemoSite:
        """Start the demo; `settings` are extra environment variables (shorter lifetimes)."""
        root = copy_checkout(tmp_dir / "checkout")
        port = find_free_port()
        env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        env = {k: v for k, v in env.items() if not k.startswith("TOKENADMIN_")}
        env.update(
            TOKENADMIN_DEMO="1",
            SITE_URL=f"http://127.0.0.1:{port}",
            PYTHON=sys.executable,
            PYTHONUNBUFFERED="1",
            STOP_TIMEOUT="15",
            **settings,
        )
        site = cls(root=root, port=port, env=env)
        site._run()
        return site

    def _run(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                ["bash", "scripts/run.sh"],
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a stuck run is killed with its children
            )
        try:
            wait_for_http(
                self.process,
                self.site_url + "/healthz?ready",
                timeout=START_TIMEOUT,
                what="make demo",
                read_log=self.read_log,
                error=DemoError,
            )
        except DemoError:
            self.stop()
            raise
        found = PASSWORD.search(self.read_log(limit=None))
        if found is None:
            self.stop()
            raise DemoError(f"make demo printed no admin password:\n{self.read_log()}")
        self.admin_password = found.group(1)

    def read_log(self, limit: int | None = 8000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text if limit is None else text[-limit:]

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`manage.py ARGS` in the demo's checkout and environment, as a person would run it."""
        result = subprocess.run(
            [str(self.root / ".venv" / "bin" / "python"), "manage.py", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        if check and result.returncode != 0:
            raise DemoError(
                f"manage.py {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
            )
        return result

    def shell(self, code: str) -> str:
        """Run Python `code` in the demo's Django (`manage.py shell -c`); its stdout."""
        return self.manage("shell", "--no-imports", "-c", code).stdout

    def show(self, slug: str = "demo") -> dict[str, Any]:
        return json.loads(self.manage("connection", "show", slug, "--json").stdout)

    def wait_for(self, predicate, *, timeout: float, what: str, every: float = 2.0) -> Any:
        """Poll `predicate()` until it returns something truthy; DemoError with the log if not."""
        value = wait_for(predicate, timeout=timeout, interval=every)
        if not value:
            raise DemoError(f"no {what} within {timeout:.0f} s:\n{self.read_log()}")
        return value

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.site_url + path, timeout=10, **kwargs)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # run.sh stops gunicorn and qcluster itself
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
