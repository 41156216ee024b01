"""Waiting for a server the tests started in a subprocess."""

import subprocess
import time
from collections.abc import Callable

import requests


def wait_for_http(
    process: subprocess.Popen[bytes],
    url: str,
    *,
    timeout: float,
    what: str,
    read_log: Callable[[], str],
    error: type[Exception] = RuntimeError,
) -> None:
    """Poll `url` until it answers 200; raise `error` with the log if `process` dies or stalls.

    The caller stops the process after a stall.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise error(f"{what} exited with code {process.returncode}:\n{read_log()}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise error(f"{what} not ready after {timeout}s:\n{read_log()}")
