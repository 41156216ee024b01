"""Run `manage.py qcluster` against pytest-django's test database, as operators run it.

Each `QCluster` is the real command in its own process group (so a finalizer can always take
down the sentinel, workers, monitor and pusher together), configured only through the
environment the product reads: `DATABASE_URL` names the test database itself (the child never
creates one), `REDIS_URL` (inherited) switches the broker, `Q_WORKERS` and `TOKENADMIN_*` tune it.
Output goes to a log file, not a pipe (a pipe nobody drains blocks the child).

Follows `tests/authserver/harness.py`: readiness by watching the log while checking for an early
exit; `tail()` for failure reports.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django_q.brokers import get_broker
from django_q.status import Stat

from connections.models import Connection, Provider
from tests.authserver.harness import AuthServer
from tests.databases import test_database_url
from tests.support.polling import wait_for

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# django-q2 logs "Q Cluster <name> running." once its guard loop starts; `[...]` is the broker's
# queue name: "tokenadmin" for the ORM broker, "django_q:tokenadmin:q" for Redis.
RUNNING = re.compile(r"Q Cluster (?P<name>[\w-]+) \[(?P<queue>[^\]]+)\] running\.")


class ClusterError(RuntimeError):
    pass


def uses_redis() -> bool:
    return bool(settings.REDIS_URL)


def process_group_members(pgid: int) -> list[int]:
    """Pids in process group `pgid` (Linux /proc), so a test can check whom it signals."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the ")" closing the command name: state ppid pgrp ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


class QCluster:
    def __init__(self, *, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self.name = ""
        self.queue = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def launch(cls, log_path: Path, *, env: dict[str, str]) -> QCluster:
        """Start the process; `wait_until_running` before relying on it."""
        child_env = {**os.environ, **env}
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=PROJECT_ROOT,
                env=child_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(process=process, log_path=log_path)

    def wait_until_running(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = RUNNING.search(self.read_log())
            if match:
                self.name, self.queue = match["name"], match["queue"]
                return
            if self.process.poll() is not None:
                raise ClusterError(
                    f"qcluster exited with {self.process.returncode}:\n{self.tail()}"
                )
            time.sleep(0.1)
        self.kill()
        raise ClusterError(f"qcluster not running after {timeout}s:\n{self.tail()}")

    def read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, limit: int = 6000) -> str:
        return self.read_log()[-limit:] or "(no output)"

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def owns(self, pid: int) -> bool:
        """Whether `pid` is one of this cluster's processes (its own process group)."""
        return pid in process_group_members(self.pid)

    def kill_member(self, pid: int) -> None:
        """SIGKILL one process of this cluster (a worker), never anything else."""
        if not self.owns(pid):
            raise ClusterError(f"pid {pid} is not a process of qcluster {self.pid}")
        os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM to the leader (django-q2 finishes running tasks), then SIGKILL the group.

        As `scripts/run.sh` does: SIGTERM to every process of the group at once leaves
        django-q2's sentinel waiting on its dead children (it took 15 s and more here).
        """
        if self.is_alive():
            os.kill(self.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT)
        self.kill()

    def kill(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT)


class Background:
    """The processes one test starts: authorization servers and clusters, torn down together."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.clusters: list[QCluster] = []
        self.servers: list[AuthServer] = []

    def auth_server(self, **ttls: int) -> AuthServer:
        server = AuthServer.start(self.tmp_path / f"authserver-{len(self.servers)}", **ttls)
        self.servers.append(server)
        return server

    def qcluster(self, *, workers: int = 2, **tokenadmin: Any) -> QCluster:
        """Start `manage.py qcluster`; `tokenadmin` keys become TOKENADMIN_<KEY> variables."""
        env = {
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": test_database_url(),
            "Q_WORKERS": str(workers),
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
        }
        env |= {f"TOKENADMIN_{key.upper()}": str(value) for key, value in tokenadmin.items()}
        cluster = QCluster.launch(self.tmp_path / f"qcluster-{len(self.clusters)}.log", env=env)
        # Registered before it is ready, so a cluster that fails to start is still reported.
        self.clusters.append(cluster)
        cluster.wait_until_running()
        return cluster

    def close(self) -> None:
        for cluster in self.clusters:
            cluster.stop()
        for server in self.servers:
            server.stop()

    def report(self) -> str:
        """Log tails of every process, printed at teardown (pytest shows them on failure)."""
        parts = [f"--- qcluster {c.pid} ({c.log_path}) ---\n{c.tail()}" for c in self.clusters]
        parts += [f"--- authserver ({s.log_path}) ---\n{s.read_log()}" for s in self.servers]
        return "\n".join(parts)


@contextmanager
def background(tmp_path: Path) -> Iterator[Background]:
    processes = Background(tmp_path)
    try:
        yield processes
    finally:
        processes.close()
        print(processes.report())


def authorized_connection(
    provider: Provider, server: AuthServer, slug: str, **fields: Any
) -> Connection:
    """A connection with its own client at `server`, consented to through a reauth link."""
    from tests.conftest import authorize_through_link

    client_id, client_secret = server.register_client(settings.SITE_URL + "/oauth/callback/")
    connection = Connection.objects.create(
        name=slug,
        slug=slug,
        provider=provider,
        client_id=client_id,
        client_secret=client_secret,
        **fields,
    )
    response = authorize_through_link(connection, server)
    assert response.status_code == 200, response.content.decode()
    connection.refresh_from_db()
    assert connection.status == Connection.Status.ACTIVE, connection.status_reason
    return connection


def declare_schedules() -> None:
    """`setup_schedules` as a deploy runs it; new schedules are due at once."""
    call_command("setup_schedules", stdout=io.StringIO())


def assert_uses_configured_broker(cluster: QCluster) -> None:
    if uses_redis():
        assert cluster.queue == "django_q:tokenadmin:q"
        # The cluster publishes its status through the broker: finding it in Redis under the
        # cluster's own pid shows the child really talks to Redis.
        broker = get_broker()
        assert type(broker).__name__ == "Redis"
        stats = wait_for(
            lambda: [s for s in Stat.get_all(broker=broker) if s.pid == cluster.pid], timeout=10
        )
        assert stats, "the cluster published no status to Redis"
    else:
        assert cluster.queue == "tokenadmin", "expected the ORM broker's queue"
