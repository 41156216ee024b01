"""The provider seam (`connections.oauth`) against a stub HTTP server.

The stub is the outside world (a provider's token endpoint and discovery documents), served by
the standard library in a thread; nothing of ours is mocked.
"""

import base64
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs

import pytest
from django.utils import timezone

from connections import oauth
from tests.support.http_server import LocalServer

ACCESS = "PLAINTEXT-ACCESS-5b1f0c9e"
REFRESH = "PLAINTEXT-REFRESH-77aa01d4"
SECRET = "PLAINTEXT-SECRET-c0ffee42"


@dataclass
class Reply:
    status: int = 200
    body: str | bytes | dict | list = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class StubProvider(LocalServer):
    """A scripted HTTP server: `routes[path] = Reply(...)`; requests are recorded."""

    def __init__(self) -> None:
        self.routes: dict[str, Reply] = {}
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                stub.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "form": {k: v[0] for k, v in parse_qs(raw).items()},
                        "headers": dict(self.headers),
                    }
                )
                reply = stub.routes.get(self.path.split("?")[0], Reply(404, "not found"))
                if reply.delay:
                    time.sleep(reply.delay)
                body = reply.body
                content_type = "text/html"
                if isinstance(body, dict | list):
                    body, content_type = json.dumps(body), "application/json"
                data = body.encode() if isinstance(body, str) else body
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(Handler)

    def client(self, **kwargs: object) -> oauth.Client:
        return oauth.Client(
            client_id="client-1", client_secret=SECRET, token_url=self.token_url, **kwargs
        )


@pytest.fixture
def stub() -> Iterator[StubProvider]:
    with StubProvider() as server:
        yield server


def token_body(**extra: object) -> dict:
    return {"access_token": ACCESS, "token_type": "Bearer", "expires_in": 3600} | extra


def refresh_error(stub: StubProvider, reply: Reply) -> oauth.OAuthError:
    stub.routes["/token"] = reply
    with pytest.raises(oauth.OAuthError) as info:
        oauth.refresh(stub.client(), refresh_token=REFRESH)
    return info.value


def jwt(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.c2ln"


# --- successful responses ------------------------------------------------------------------


def test_it_parses_a_rotating_refresh_response(stub):
    stub.routes["/token"] = Reply(
        body=token_body(refresh_token="R2", scope=["read", "write"], refresh_expires_in="7200")
    )
    token = oauth.refresh(stub.client(), refresh_token=REFRESH)
    assert (token.access_token, token.refresh_token, token.expires_in) == (ACCESS, "R2", 3600)
    assert token.scope == "read write"
    assert token.refresh_expires_in == 7200
    sent = stub.requests[0]
    assert sent["form"]["grant_type"] == "refresh_token"
    assert sent["form"]["refresh_token"] == REFRESH
    assert "scope" not in sent["form"]
    assert sent["headers"]["Authorization"].startswith("Basic ")


def test_it_reports_no_refresh_token_when_the_response_has_none(stub):
    stub.routes["/token"] = Reply(body=token_body())
    token = oauth.refresh(stub.client(), refresh_token=REFRESH)
    assert token.refresh_token is None


def test_it_takes_the_hard_cap_from_the_response(stub):
    stub.routes["/token"] = Reply(
        body=token_body(x_refresh_token_expires_in=8_726_400, x_refresh_token_hard_expires_in=100)
    )
    token = oauth.refresh(stub.client(), refresh_token=REFRESH)
    assert (token.refresh_expires_in, token.refresh_hard_expires_in) == (8_726_400, 100)


def test_it_sends_the_secret_in_the_body_for_client_secret_post(stub):
    stub.routes["/token"] = Reply(body=token_body())
    oauth.refresh(stub.client(auth_method="client_secret_post"), refresh_token=REFRESH)
    sent = stub.requests[0]
    assert sent["form"]["client_secret"] == SECRET
    assert "Authorization" not in sent["headers"]


# --- permanent errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "invalid_grant",
        "invalid_client",
        "unauthorized_client",
        "invalid_scope",
        "unsupported_grant_type",
    ],
)
def test_it_classifies_rfc6749_grant_and_client_errors_as_permanent(stub, code):
    status = 401 if code == "invalid_client" else 400
    exc = refresh_error(stub, Reply(status, {"error": code, "error_description": "no"}))
    assert exc.code == code
    assert exc.permanent is True
    assert exc.http_status == status


def test_it_classifies_slacks_dead_grant_answered_as_http_200_as_permanent(stub):
    exc = refresh_error(stub, Reply(200, {"ok": False, "error": "invalid_refresh_token"}))
    assert (exc.code, exc.permanent, exc.http_status) == ("invalid_refresh_token", True, 200)


# --- transient errors ----------------------------------------------------------------------


def test_it_classifies_temporarily_unavailable_as_transient(stub):
    exc = refresh_error(stub, Reply(400, {"error": "temporarily_unavailable"}))
    assert (exc.code, exc.permanent) == ("temporarily_unavailable", False)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_it_classifies_5xx_as_transient(stub, status):
    exc = refresh_error(stub, Reply(status, "<html>down</html>"))
    assert (exc.code, exc.permanent, exc.http_status) == ("server_error", False, status)


def test_it_classifies_a_5xx_json_error_as_transient(stub):
    exc = refresh_error(stub, Reply(503, {"error": "invalid_grant"}))
    assert exc.permanent is False


def test_it_honours_retry_after_in_seconds(stub):
    exc = refresh_error(stub, Reply(429, "slow down", headers={"Retry-After": "12"}))
    assert exc.permanent is False
    assert exc.http_status == 429
    assert exc.retry_after == 12.0


def test_it_keeps_429_transient_even_with_a_permanent_looking_error_code(stub):
    exc = refresh_error(
        stub, Reply(429, {"error": "invalid_request"}, headers={"Retry-After": "3"})
    )
    assert (exc.permanent, exc.retry_after) == (False, 3.0)


def test_it_honours_retry_after_as_an_http_date(stub):
    at = timezone.now() + timedelta(seconds=120)
    header = format_datetime(at.astimezone(UTC), usegmt=True)
    exc = refresh_error(stub, Reply(503, "busy", headers={"Retry-After": header}))
    assert 110 <= exc.retry_after <= 120


def test_it_ignores_a_malformed_retry_after(stub):
    exc = refresh_error(stub, Reply(503, "busy", headers={"Retry-After": "soonish"}))
    assert exc.retry_after is None


def test_it_classifies_a_non_json_200_as_transient(stub):
    exc = refresh_error(stub, Reply(200, "<html>captive portal</html>"))
    assert (exc.code, exc.permanent, exc.http_status) == ("bad_response", False, 200)


def test_it_classifies_a_json_array_200_as_transient(stub):
    exc = refresh_error(stub, Reply(200, ["access_token"]))
    assert (exc.code, exc.permanent) == ("bad_response", False)


def test_it_classifies_an_html_400_as_transient(stub):
    exc = refresh_error(stub, Reply(400, "<h1>Bad Request</h1>"))
    assert (exc.code, exc.permanent, exc.http_status) == ("bad_response", False, 400)


def test_it_rejects_a_response_without_access_token(stub):
    exc = refresh_error(stub, Reply(200, {"token_type": "Bearer", "refresh_token": "R2"}))
    assert (exc.code, exc.permanent) == ("malformed_response", False)


def test_it_rejects_a_non_string_refresh_token(stub):
    exc = refresh_error(stub, Reply(200, token_body(refresh_token=12345)))
    assert (exc.code, exc.permanent) == ("malformed_response", False)


def test_it_rejects_a_non_numeric_refresh_expiry(stub):
    exc = refresh_error(stub, Reply(200, token_body(refresh_token_expires_in="90 days")))
    assert (exc.code, exc.permanent) == ("malformed_response", False)


def test_it_rejects_a_non_numeric_expires_in(stub):
    exc = refresh_error(stub, Reply(200, token_body(expires_in="an hour")))
    assert (exc.code, exc.permanent) == ("malformed_response", False)


def test_it_turns_a_slow_provider_into_a_transient_timeout(stub):
    stub.routes["/token"] = Reply(body=token_body(), delay=1.0)
    started = time.monotonic()
    with pytest.raises(oauth.OAuthError) as info:
        oauth.refresh(stub.client(timeout=0.2), refresh_token=REFRESH)
    assert (info.value.code, info.value.permanent) == ("timeout", False)
    assert time.monotonic() - started < 0.9


def test_it_uses_the_configured_timeout_by_default(stub, settings):
    settings.TOKENADMIN = settings.TOKENADMIN | {"HTTP_TIMEOUT": 0.2}
    stub.routes["/token"] = Reply(body=token_body(), delay=1.0)
    with pytest.raises(oauth.OAuthError) as info:
        oauth.refresh(stub.client(), refresh_token=REFRESH)
    assert info.value.code == "timeout"


def test_it_turns_a_refused_connection_into_a_transient_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = oauth.Client(
        client_id="c", client_secret=SECRET, token_url=f"http://127.0.0.1:{port}/token"
    )
    with pytest.raises(oauth.OAuthError) as info:
        oauth.refresh(client, refresh_token=REFRESH)
    assert (info.value.code, info.value.permanent) == ("connection_error", False)


# --- secrets never shown -------------------------------------------------------------------


def test_it_never_shows_tokens_in_the_repr_of_a_token_response(stub):
    stub.routes["/token"] = Reply(body=token_body(refresh_token="R-" + REFRESH, id_token=ACCESS))
    token = oauth.refresh(stub.client(), refresh_token=REFRESH)
    for text in (repr(token), str(token), f"{token}"):
        assert ACCESS not in text
        assert REFRESH not in text
    assert "has_refresh_token=True" in repr(token)


def test_it_never_shows_the_client_secret_in_the_repr_of_a_client(stub):
    assert SECRET not in repr(stub.client())
    assert SECRET not in str(stub.client())


def test_it_never_shows_tokens_in_errors(stub):
    exc = refresh_error(stub, Reply(400, {"error": "invalid_grant", "error_description": "gone"}))
    assert REFRESH not in str(exc) and SECRET not in str(exc) and REFRESH not in repr(exc)


def test_it_never_shows_a_token_the_provider_echoes_in_an_error(stub):
    exc = refresh_error(
        stub,
        Reply(
            400,
            {"error": "invalid_grant", "error_description": f"{REFRESH} expired for {SECRET}"},
        ),
    )
    assert exc.code == "invalid_grant"
    assert REFRESH not in str(exc) and SECRET not in str(exc)


# --- discovery -----------------------------------------------------------------------------


def metadata(issuer: str) -> dict:
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize/",
        "token_endpoint": issuer + "/token/",
        "revocation_endpoint": issuer + "/revoke/",
        "scopes_supported": ["openid", "offline_access"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    }


def test_it_discovers_through_openid_configuration(stub):
    issuer = stub.base_url + "/tenant"
    stub.routes["/tenant/.well-known/openid-configuration"] = Reply(body=metadata(issuer))
    found = oauth.discover(issuer)
    assert found.token_url == issuer + "/token/"
    assert found.revoke_url == issuer + "/revoke/"
    assert found.scopes_supported == ("openid", "offline_access")
    assert [r["path"] for r in stub.requests] == ["/tenant/.well-known/openid-configuration"]


def test_it_discovers_through_rfc8414_with_the_path_inserted(stub):
    issuer = stub.base_url + "/tenant"
    stub.routes["/.well-known/oauth-authorization-server/tenant"] = Reply(body=metadata(issuer))
    found = oauth.discover(issuer + "/")
    assert found.authorize_url == issuer + "/authorize/"
    assert [r["path"] for r in stub.requests] == [
        "/tenant/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/tenant",
    ]


def test_it_discovers_an_issuer_without_a_path_through_rfc8414(stub):
    issuer = stub.base_url
    stub.routes["/.well-known/oauth-authorization-server"] = Reply(body=metadata(issuer))
    assert oauth.discover(issuer).token_url == issuer + "/token/"


def test_it_rejects_a_document_naming_another_issuer(stub):
    issuer = stub.base_url + "/tenant"
    stub.routes["/tenant/.well-known/openid-configuration"] = Reply(
        body=metadata("https://evil.example.com/tenant")
    )
    with pytest.raises(oauth.OAuthError) as info:
        oauth.discover(issuer)
    assert (info.value.code, info.value.permanent) == ("issuer_mismatch", True)


def test_it_rejects_a_document_without_a_token_endpoint(stub):
    issuer = stub.base_url
    doc = metadata(issuer)
    del doc["token_endpoint"]
    stub.routes["/.well-known/openid-configuration"] = Reply(body=doc)
    with pytest.raises(oauth.OAuthError) as info:
        oauth.discover(issuer)
    assert info.value.code == "bad_response"


def test_it_reports_when_no_discovery_document_exists(stub):
    with pytest.raises(oauth.OAuthError) as info:
        oauth.discover(stub.base_url + "/nothing")
    assert info.value.code == "discovery_failed"
    assert info.value.http_status == 404
    assert len(stub.requests) == 2


def test_it_rejects_a_relative_issuer():
    with pytest.raises(oauth.OAuthError) as info:
        oauth.discover("auth.example.com")
    assert (info.value.code, info.value.permanent) == ("invalid_issuer", True)


# --- jwt_claims ----------------------------------------------------------------------------


def test_it_reads_the_claims_of_a_jwt():
    assert oauth.jwt_claims(jwt({"exp": 1_700_000_000, "sub": "42"})) == {
        "exp": 1_700_000_000,
        "sub": "42",
    }


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "opaque-token",
        "a.b",
        "a.b.c.d",
        "a.!!!.c",
        "a.é.c",
        "a." + base64.urlsafe_b64encode(b"\xff\xfe").decode() + ".c",
        "a." + base64.urlsafe_b64encode(b"not json").decode() + ".c",
        "a." + base64.urlsafe_b64encode(b"[1, 2]").decode() + ".c",
    ],
)
def test_it_returns_no_claims_for_garbage(token):
    assert oauth.jwt_claims(token) == {}
