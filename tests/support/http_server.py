"""A throwaway HTTP server on 127.0.0.1 for faking an outside service inside a test, and the
skeleton the fakes share: read the request, ask the fake for an answer, write it."""

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs


class LocalServer:
    """Serves `handler` on a free loopback port in a daemon thread while used as a context."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def token_url(self) -> str:
        return self.base_url + "/token"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    headers: Message
    body: str

    @property
    def form(self) -> dict[str, str]:
        """The body as a form, first value of each field."""
        return {key: values[0] for key, values in parse_qs(self.body).items()}


@dataclass(frozen=True)
class Response:
    status: int
    data: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


def handler_for(respond: Callable[[Request], Response]) -> type[BaseHTTPRequestHandler]:
    """A handler answering GET and POST with `respond(request)`, never cached (token responses
    must not be: RFC 6749 §5.1). A client that gave up before the answer is no error."""

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            response = respond(Request(self.command, self.path.split("?")[0], self.headers, body))
            try:
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.data)))
                self.send_header("Cache-Control", "no-store")
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(response.data)
            except OSError:
                pass  # the client gave up waiting

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
