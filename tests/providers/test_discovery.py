"""Discovery against a bad issuer URL fails clearly: the message names the issuer, each
well-known URL tried and why it gave nothing, and no provider is left behind.

Discovery that works against the test authorization server, and a 404 there, are covered in
tests/connections/test_presets.py (`provider_from_issuer`) and test_oauth.py (the seam); these
are the other ways a URL can be wrong: not JSON, not an object, nothing listening, too slow.
"""

import socket
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from connections import oauth
from connections.models import Provider
from connections.presets import PresetError, provider_from_issuer
from tests.support.http_server import LocalServer

pytestmark = pytest.mark.django_db

BODIES = {"/html": b"<html><body>Sign in</body></html>", "/array": b"[1, 2]"}
# Far below the 10 s default a forgotten timeout would wait per URL, far above a busy machine's
# overhead for two 0.3 s timeouts.
TIMEOUT_MARGIN_SECONDS = 5


class Handler(BaseHTTPRequestHandler):
    """Answers `/<kind>/.well-known/...` (and the RFC 8414 form) with a bad document."""

    def do_GET(self) -> None:
        kind = next((k for k in BODIES if k in self.path), "")
        body = BODIES.get(kind, b"")
        try:
            self.send_response(200 if kind else 404)
            content_type = "application/json" if kind == "/array" else "text/html"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer(Handler) as local:
        yield local


def discovery_failure(issuer: str) -> str:
    with pytest.raises(PresetError) as info:
        provider_from_issuer(issuer)
    assert info.value.field == "issuer"
    assert not Provider.objects.exists()
    message = str(info.value)
    assert message.startswith(f"Discovery failed for {issuer}: ")
    assert f"{issuer}/.well-known/openid-configuration" in message  # where it looked
    return message


@pytest.fixture
def refusing_url() -> Iterator[str]:
    """A port held by a socket that is bound but not listening: connections are refused, and no
    other process can take the port meanwhile (as it could after a bind-and-release)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that accepts connections (the kernel completes them into the backlog) and never
    answers: every request waits for its read timeout."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_page_that_is_not_json_fails_clearly(server):
    assert "body is not JSON" in discovery_failure(server.base_url + "/html")


def test_json_that_is_not_an_object_fails_clearly(server):
    assert "not a JSON object" in discovery_failure(server.base_url + "/array")


def test_a_url_with_no_document_names_the_status_of_both_places_tried(server):
    message = discovery_failure(server.base_url + "/missing")
    assert message.count("HTTP 404") == 2
    assert "/.well-known/oauth-authorization-server/missing" in message  # RFC 8414 §3


def test_nothing_listening_fails_clearly_and_at_once(refusing_url):
    started = time.monotonic()
    message = discovery_failure(refusing_url)
    assert "could not connect" in message
    assert time.monotonic() - started < oauth.CONNECT_TIMEOUT


def test_a_server_that_never_answers_fails_within_the_configured_timeout(silent_url, settings):
    settings.TOKENADMIN = settings.TOKENADMIN | {"HTTP_TIMEOUT": 0.3}
    started = time.monotonic()
    message = discovery_failure(silent_url)
    assert message.count("no answer in time") == 2  # both URLs tried, each given up on
    assert time.monotonic() - started < TIMEOUT_MARGIN_SECONDS


def test_the_seam_classifies_a_bad_url_as_transient(server):
    # Someone may fix the server (or start it): a later try can work.
    with pytest.raises(oauth.OAuthError) as info:
        oauth.discover(server.base_url + "/html")
    assert (info.value.code, info.value.permanent) == ("discovery_failed", False)
