"""Real processes for the end-to-end walkthrough: panva's oidc-provider and tokenadmin itself.

`OidcServer` runs `tests/e2e/oidc_server/server.js` under Node (needs `npm ci` in that folder
first); `TokenAdmin` migrates a throwaway SQLite database, collects static files and serves
`tokenadmin.wsgi:application` with gunicorn, and runs `manage.py` commands against the same
environment. Nothing here uses pytest-django's test database: this is tokenadmin as a user runs it.

Follows `tests/authserver/harness.py`: free ports, output to a log file (a pipe nobody drains
blocks the child), readiness by polling an HTTP endpoint while watching for an early exit.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from tests.authserver.harness import find_free_port
from tests.processes import wait_for_http

PROJECT_ROOT = Path(__file__).resolve().parents[2]
OIDC_SERVER_DIR = Path(__file__).resolve().parent / "oidc_server"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0
COMMAND_TIMEOUT = 120.0


class ProcessError(RuntimeError):
    pass


def skip_reason() -> str | None:
    """Why the walkthrough cannot run here, or None when everything it needs is installed."""
    if shutil.which("node") is None:
        return "needs Node.js >= 20.19 (`node` not on PATH) for the oidc-provider server"
    if not (OIDC_SERVER_DIR / "node_modules" / "oidc-provider").is_dir():
        return f"needs oidc-provider installed: run `npm ci` in {OIDC_SERVER_DIR}"
    if not os.path.exists(CHROMIUM):
        return "needs Chromium: apt-get install chromium (expected at /usr/bin/chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs the playwright Python package (pip install -e '.[dev]')"
    return None


def _read_tail(path: Path, limit: int = 5000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_for_http(
    process: subprocess.Popen[bytes], url: str, *, log_path: Path, what: str
) -> None:
    try:
        wait_for_http(
            process,
            url,
            timeout=START_TIMEOUT,
            what=what,
            read_log=lambda: _read_tail(log_path),
            error=ProcessError,
        )
    except ProcessError:
        _stop(process)
        raise


class OidcServer:
    """oidc-provider with one confidential client whose redirect URI is tokenadmin's callback."""

    def __init__(
        self,
        *,
        process: subprocess.Popen[bytes],
        port: int,
        log_path: Path,
        client_id: str,
        client_secret: str,
    ) -> None:
        self.process = process
        self.issuer = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.client_id = client_id
        self.client_secret = client_secret

    @classmethod
    def start(cls, tmp_dir: Path, *, redirect_uri: str, access_ttl: int = 60) -> OidcServer:
        port = find_free_port()
        log_path = tmp_dir / f"oidc-provider-{port}.log"
        client_id = "tokenadmin-e2e"
        client_secret = secrets.token_urlsafe(32)
        env = dict(
            os.environ,
            PORT=str(port),
            REDIRECT_URI=redirect_uri,
            CLIENT_ID=client_id,
            CLIENT_SECRET=client_secret,
            ACCESS_TTL=str(access_ttl),
        )
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                ["node", "server.js"],
                cwd=OIDC_SERVER_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = cls(
            process=process,
            port=port,
            log_path=log_path,
            client_id=client_id,
            client_secret=client_secret,
        )
        _wait_for_http(
            process,
            server.issuer + "/.well-known/openid-configuration",
            log_path=log_path,
            what="oidc-provider",
        )
        return server

    def stats(self) -> dict[str, Any]:
        """Counters kept by server.js (token requests by grant type, revoked grants)."""
        response = requests.get(self.issuer + "/_stats", timeout=REQUEST_TIMEOUT)
        response.raise_for_status()
        return response.json()

    def read_log(self) -> str:
        return _read_tail(self.log_path)

    def stop(self) -> None:
        _stop(self.process)


class TokenAdmin:
    """tokenadmin served by gunicorn on a free port, on its own SQLite file."""

    def __init__(self, *, port: int, tmp_dir: Path) -> None:
        self.port = port
        self.site_url = f"http://127.0.0.1:{port}"
        self.tmp_dir = tmp_dir
        self.log_path = tmp_dir / f"gunicorn-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        env = {
            k: v
            for k, v in os.environ.items()
            # Never inherit another database, broker or settings module from the test run.
            if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "PYTEST_ADDOPTS")
        }
        env.update(
            DJANGO_SETTINGS_MODULE="tokenadmin.settings",
            DATABASE_URL=f"sqlite:///{tmp_dir / 'tokenadmin.sqlite3'}",
            SITE_URL=self.site_url,
            SECRET_KEY=secrets.token_urlsafe(50),
            ENCRYPTION_KEY=secrets.token_urlsafe(50),
            # Read by tokenadmin/settings.py only once it supports it; see the e2e report.
            STATIC_ROOT=str(tmp_dir / "staticfiles"),
            EMAIL_URL="consolemail://",
            PYTHONUNBUFFERED="1",
        )
        self.env = env

    @property
    def callback_url(self) -> str:
        return self.site_url + "/oauth/callback/"

    @classmethod
    def prepare(cls, tmp_dir: Path) -> TokenAdmin:
        """Pick the port (the provider must know the callback URL first), migrate, collect."""
        admin = cls(port=find_free_port(), tmp_dir=tmp_dir)
        admin.manage("migrate", "--noinput")
        admin.manage("collectstatic", "--noinput", "--verbosity", "0")
        return admin

    def serve(self) -> None:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(gunicorn),
                    "tokenadmin.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    "2",
                    "--logger-class",
                    "tokenadmin.logsafety.RedactingGunicornLogger",
                    "--access-logfile",
                    "-",
                ],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_for_http(
            # `?ready`: the web process only; no cluster runs here, so the full check says 503.
            self.process,
            self.site_url + "/healthz?ready",
            log_path=self.log_path,
            what="gunicorn",
        )

    def manage(
        self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run `manage.py ARGS` as a user would; raise with its output when `check` fails."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            shown = [
                "***" if prev == "--client-secret" else a
                for prev, a in zip(("", *args), args, strict=False)
            ]
            raise ProcessError(
                f"manage.py {' '.join(shown)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
            )
        return result

    def spawn_manage(self, *args: str) -> subprocess.Popen[str]:
        """Start `manage.py ARGS` without waiting (for concurrent bursts)."""
        return subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def read_log(self) -> str:
        return _read_tail(self.log_path)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)

    def expire_access_token(self, slug: str) -> None:
        """Make `slug`'s access token expired a second ago, as time would."""
        self.manage(
            "shell",
            "-c",
            "from datetime import timedelta; from django.utils import timezone; "
            "from connections.models import Connection; "
            f"Connection.objects.filter(slug={slug!r})"
            ".update(access_expires_at=timezone.now() - timedelta(seconds=1))",
        )
