"""Fault, latency and counter state shared by every request thread of the server process."""

import threading
from dataclasses import dataclass, field

FAULT_MODES = frozenset(
    {
        "500",
        "503_retry_after",
        "429",
        "timeout",
        "stall",
        "garbage",
        "html_400",
        "no_refresh_token",
        "none",
    }
)


@dataclass
class ServerState:
    fault_mode: str = "none"
    fault_remaining: int = 0
    fault_delay: float = 3.0
    latency: float = 0.0
    counters: dict[str, int] = field(default_factory=dict)


_lock = threading.Lock()
_state = ServerState()


def _zero_counters() -> dict[str, int]:
    return {"token_calls": 0, "refresh_calls": 0, "code_calls": 0, "faulted": 0}


_state.counters = _zero_counters()


def set_fault(*, mode: str, count: int, delay: float) -> None:
    if mode not in FAULT_MODES:
        raise ValueError(f"unknown fault mode {mode!r}; expected one of {sorted(FAULT_MODES)}")
    with _lock:
        _state.fault_mode = mode
        _state.fault_remaining = 0 if mode == "none" else count
        _state.fault_delay = delay


def set_latency(*, seconds: float) -> None:
    with _lock:
        _state.latency = seconds


def record_token_call(*, grant_type: str) -> tuple[str | None, float, float]:
    """Count one token-endpoint request and claim a fault for it, if any remain.

    Returns (fault mode or None, fault delay, latency). Claiming under the lock means that with
    ``count=N`` exactly N concurrent requests are faulted, never more.
    """
    with _lock:
        _state.counters["token_calls"] += 1
        if grant_type == "refresh_token":
            _state.counters["refresh_calls"] += 1
        elif grant_type == "authorization_code":
            _state.counters["code_calls"] += 1
        fault: str | None = None
        if _state.fault_remaining > 0:
            _state.fault_remaining -= 1
            _state.counters["faulted"] += 1
            fault = _state.fault_mode
        return fault, _state.fault_delay, _state.latency


def get_stats() -> dict[str, int]:
    with _lock:
        return dict(_state.counters)


def reset() -> None:
    with _lock:
        _state.fault_mode = "none"
        _state.fault_remaining = 0
        _state.fault_delay = 3.0
        _state.latency = 0.0
        _state.counters = _zero_counters()
