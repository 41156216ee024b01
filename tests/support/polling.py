"""Waiting for what another thread or process does, on real clocks."""

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1) -> Any:
    """Poll `predicate` until it returns something truthy; return it, or None after `timeout`.

    For real processes on real clocks (the cluster's scheduler ticks every 30 s; a demo site runs
    its own jobs): time-machine cannot reach into another process, so waiting is the only way to
    observe them.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)
