"""A local token endpoint that records each request as sent, for the token-request tests.

It is the outside world (a provider's token endpoint), served by the standard library in a
thread; nothing of ours is mocked. `fields(request)` reads a form or JSON body alike.
"""

import base64
import json
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl

from tests.support.http_server import LocalServer


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: str

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    @property
    def is_json(self) -> bool:
        return (self.header("Content-Type") or "").startswith("application/json")

    def fields(self) -> dict[str, Any]:
        """The body's fields: a JSON object, or the form's name/value pairs (each name once)."""
        if self.is_json:
            return json.loads(self.body)
        pairs = parse_qsl(self.body, keep_blank_values=True)
        names = [name for name, _ in pairs]
        assert len(names) == len(set(names)), f"a form field was sent twice: {names}"
        return dict(pairs)

    def basic_credentials(self) -> tuple[str, str] | None:
        value = self.header("Authorization") or ""
        if not value.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        return user, password


class TokenEndpoint(LocalServer):
    """Answers every POST with `reply` (JSON, HTTP 200); records what it was sent."""

    def __init__(self, reply: dict[str, Any] | None = None) -> None:
        self.reply: dict[str, Any] = reply or {}
        self.requests: list[Seen] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                endpoint.requests.append(
                    Seen(self.command, self.path, dict(self.headers.items()), body)
                )
                data = json.dumps(endpoint.reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(Handler)

    @property
    def last(self) -> Seen:
        assert self.requests, "the token endpoint was not called"
        return self.requests[-1]


def unsigned_jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.c2ln"
