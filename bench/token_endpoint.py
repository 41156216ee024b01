"""A minimal local OAuth 2.0 token endpoint for the sweep benchmark (stdlib only).

It answers every `grant_type=refresh_token` POST (RFC 6749 §6) after a fixed latency with a fresh
token response and a rotated refresh token, so the bench measures tokenadmin's refresh path and
not an authorization server's. A refresh token presented twice gets `invalid_grant`, as a
rotating provider would answer, and is counted: a non-zero `reused` means a double refresh.

`TokenEndpoint` runs the server in its own process, so its work never competes with the code
under test for the GIL; `GET /stats` returns the call counts. The process exits when its stdin
closes, so it cannot outlive the bench.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote
from urllib.request import urlopen


@dataclass
class EndpointState:
    client_id: str
    client_secret: str
    latency: float
    expires_in: int = 3600
    calls: Counter[str] = field(default_factory=Counter)
    used_refresh_tokens: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client_ok(self, client_id: str, client_secret: str) -> bool:
        return secrets.compare_digest(client_id, self.client_id) and secrets.compare_digest(
            client_secret, self.client_secret
        )

    def count(self, outcome: str) -> None:
        with self.lock:
            self.calls[outcome] += 1


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """client_secret_basic (RFC 6749 §2.3.1): form-urlencoded id and secret, base64-joined."""
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip()).decode()
    except ValueError:
        return None
    client_id, _, client_secret = decoded.partition(":")
    return unquote(client_id), unquote(client_secret)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: the server closes each connection, so no handler thread waits on an idle socket
    # (tokenadmin opens a fresh session per refresh anyway).
    protocol_version = "HTTP/1.0"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        with self.server.state.lock:
            self._answer(200, dict(self.server.state.calls))

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        time.sleep(state.latency)
        credentials = _basic_credentials(self.headers.get("Authorization", "")) or (
            form.get("client_id", ""),
            form.get("client_secret", ""),
        )
        if not state.client_ok(*credentials):
            state.count("invalid_client")
            self._answer(401, {"error": "invalid_client"})
            return
        if form.get("grant_type") != "refresh_token" or not form.get("refresh_token"):
            state.count("unsupported")
            self._answer(400, {"error": "unsupported_grant_type"})
            return
        with state.lock:
            reused = form["refresh_token"] in state.used_refresh_tokens
            state.used_refresh_tokens.add(form["refresh_token"])
        if reused:
            state.count("reused")
            self._answer(400, {"error": "invalid_grant", "error_description": "token reused"})
            return
        state.count("ok")
        self._answer(
            200,
            {
                "access_token": f"bench-at-{secrets.token_urlsafe(24)}",
                "token_type": "Bearer",
                "expires_in": state.expires_in,
                "refresh_token": f"bench-rt-{secrets.token_urlsafe(24)}",
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Up to SWEEP_CONCURRENCY clients connect at once; a short backlog would refuse some.
    request_queue_size = 1024

    def __init__(self, state: EndpointState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


def _serve(args: argparse.Namespace) -> None:
    server = _Server(EndpointState(args.client_id, args.client_secret, args.latency))
    print(f"port {server.server_address[1]}", flush=True)

    def stop_when_parent_goes() -> None:
        sys.stdin.read()
        server.shutdown()

    threading.Thread(target=stop_when_parent_goes, daemon=True).start()
    server.serve_forever()
    server.server_close()


class TokenEndpoint:
    """`with TokenEndpoint(...) as endpoint:` serves on `endpoint.url` from a child process."""

    def __init__(self, *, client_id: str, client_secret: str, latency: float = 0.1) -> None:
        self._args = [
            sys.executable,
            str(Path(__file__).resolve()),
            f"--client-id={client_id}",
            f"--client-secret={client_secret}",
            f"--latency={latency}",
        ]
        self._process: subprocess.Popen[str] | None = None
        self._base = ""

    @property
    def url(self) -> str:
        return f"{self._base}/token"

    @property
    def calls(self) -> Counter[str]:
        with urlopen(f"{self._base}/stats", timeout=10) as response:
            return Counter(json.load(response))

    def __enter__(self) -> TokenEndpoint:
        self._process = subprocess.Popen(
            self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        first = self._process.stdout.readline().split()
        if first[:1] != ["port"]:
            self.__exit__()
            raise RuntimeError(f"token endpoint did not start (said {first!r})")
        self._base = f"http://127.0.0.1:{first[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is None:
            return
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--latency", type=float, default=0.1)
    _serve(parser.parse_args())
