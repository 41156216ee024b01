"""A webhook receiver on loopback that checks tokenadmin's signature as the README tells
receivers to, written independently of `alerts.transports` so a signing bug fails the tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Self

from tests.support.http_server import LocalServer

MAX_AGE_SECONDS = 300
# The part of a receiver's URL that must stay secret (a Slack webhook's path is its credential).
SECRET_PATH = "/services/T0SECRET/B0SECRET/xoxSecretPathPart"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def signature_ok(received: Received, *, secret: str, now: float | None = None) -> bool:
    """The documented check: HMAC-SHA256 over "<timestamp>.<raw body>", constant-time compare,
    timestamp no older than five minutes."""
    timestamp = received.headers.get("X-Tokenadmin-Timestamp", "")
    signature = received.headers.get("X-Tokenadmin-Signature", "")
    if not timestamp.isdigit():
        return False
    if abs((now if now is not None else time.time()) - int(timestamp)) > MAX_AGE_SECONDS:
        return False
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + received.body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(signature, f"sha256={expected}")


class WebhookReceiver:
    """Answers POSTs with the given status codes in turn (the last one repeats) and records
    every request. `headers` are added to each answer (e.g. Retry-After); `delay` stalls it."""

    def __init__(
        self, *codes: int, headers: dict[str, str] | None = None, delay: float = 0.0
    ) -> None:
        self.codes = list(codes or (200,))
        self.answer_headers = headers or {}
        self.delay = delay
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server = LocalServer(self._handler())

    @property
    def url(self) -> str:
        return self._server.base_url + SECRET_PATH

    def __enter__(self) -> Self:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)

    def _next_code(self, request: Received) -> int:
        with self._lock:
            self.received.append(request)
            return self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = Received(self.path, dict(self.headers.items()), body)
                code = receiver._next_code(request)
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(code)
                for name, value in receiver.answer_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
