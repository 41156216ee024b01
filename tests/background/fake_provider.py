"""An OAuth 2.0 provider in a thread whose clock is `time.time()`, for time-travel tests.

The DOT test server runs in another process, so time-machine cannot move its clock; this one
runs in ours, and time-machine patches `time.time()` for every thread, so `travel(tick=False)`
ages its tokens too. It fakes the outside world only: our code reaches it over real HTTP through
`connections.oauth`, exactly as it reaches a real provider.

Refresh-token policies:
- `sliding`: a refresh token dies `refresh_lifetime` after its last use; each use issues a new
  one (rotation) and revokes the old; sending a rotated-away token revokes the whole grant, as
  many real providers do.
- `absolute`: every refresh token of a grant dies `refresh_lifetime` after the original consent;
  a refresh does not extend it and returns no new refresh token (unless `rotate=True`: then it
  returns a new one with the same deadline, as the issue's provider did).
- `hard_cap`: no refresh token of a grant outlives this much after the consent, whatever the
  policy; responses say so in `x_refresh_token_hard_expires_in`.
- `introspects_refresh_tokens`: `/introspect` also answers for refresh tokens, with their `exp`
  (RFC 7662 §2.2); otherwise it knows access tokens only.

Endpoints: `/token` (authorization_code and refresh_token grants), `/userinfo`, `/introspect`
and `/canary` (a resource GET whose status a test sets).
"""

import base64
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from connections import oauth
from connections.authorize import callback_url, store_grant
from connections.lifecycle import client_for
from connections.models import Connection
from tests.factories import ConnectionFactory, ProviderFactory
from tests.support.http_server import LocalServer, Request, Response, handler_for

SLIDING = "sliding"
ABSOLUTE = "absolute"


@dataclass
class Grant:
    username: str
    consented_at: float
    revoked: bool = False
    # The token endpoint still issues tokens, but resource APIs reject them (scopes narrowed).
    rejected_by_apis: bool = False


@dataclass
class RefreshRecord:
    grant: Grant
    last_used_at: float
    revoked: bool = False


@dataclass
class AccessRecord:
    grant: Grant
    expires_at: float | None


@dataclass
class Reply:
    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)


class FakeProvider(LocalServer):
    client_id = "fake-client"
    client_secret = "fake-client-secret"

    def __init__(
        self,
        *,
        policy: str = SLIDING,
        refresh_lifetime: timedelta = timedelta(days=90),
        access_expires_in: int | None = 3600,
        rotate: bool | None = None,
        send_refresh_expiry: bool = False,
        hard_cap: timedelta | None = None,
        introspects_refresh_tokens: bool = False,
    ) -> None:
        self.policy = policy
        self.refresh_lifetime = refresh_lifetime
        self.access_expires_in = access_expires_in
        self.rotate = (policy == SLIDING) if rotate is None else rotate
        self.send_refresh_expiry = send_refresh_expiry
        self.hard_cap = hard_cap
        self.introspects_refresh_tokens = introspects_refresh_tokens
        # Set to e.g. 500 to make introspection fail (an enrichment failure for the engine).
        self.introspect_status = 200
        self.canary_status = 200
        self.canary_delay = 0.0
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._codes: dict[str, Grant] = {}
        self._refresh: dict[str, RefreshRecord] = {}
        self._access: dict[str, AccessRecord] = {}
        self._faults: list[Reply] = []
        super().__init__(handler_for(self._respond))

    # --- addresses ----------------------------------------------------------------------------
    @property
    def userinfo_url(self) -> str:
        return self.base_url + "/userinfo"

    @property
    def introspect_url(self) -> str:
        return self.base_url + "/introspect"

    @property
    def canary_url(self) -> str:
        return self.base_url + "/canary"

    # --- what tests steer and inspect -----------------------------------------------------------
    def authorize(self, username: str = "alice") -> str:
        """A person consents now; return the authorization code the callback would carry."""
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = Grant(username=username, consented_at=time.time())
        return code

    def fail_next(self, count: int, reply: Reply) -> None:
        """Answer the next `count` token requests with `reply` instead of doing any work."""
        with self._lock:
            self._faults.extend([reply] * count)

    def revoke_all(self) -> None:
        """The account owner removes the app: every grant is revoked."""
        with self._lock:
            for record in self._refresh.values():
                record.grant.revoked = True

    def reject_at_apis(self) -> None:
        """Resource APIs reject every grant's tokens; the token endpoint still issues them."""
        with self._lock:
            for record in self._refresh.values():
                record.grant.rejected_by_apis = True

    def refresh_token_alive(self, refresh_token: str) -> bool:
        with self._lock:
            record = self._refresh.get(refresh_token)
            return record is not None and self._refresh_error(record, time.time()) is None

    # --- token logic (under the lock) -----------------------------------------------------------
    def _deadline(self, record: RefreshRecord) -> float:
        lifetime = self.refresh_lifetime.total_seconds()
        if self.policy == ABSOLUTE:
            deadline = record.grant.consented_at + lifetime
        else:
            deadline = record.last_used_at + lifetime
        return min(deadline, self._cap(record.grant))

    def _cap(self, grant: Grant) -> float:
        if self.hard_cap is None:
            return float("inf")
        return grant.consented_at + self.hard_cap.total_seconds()

    def _refresh_error(self, record: RefreshRecord, now: float) -> str | None:
        if record.grant.revoked:
            return "grant revoked"
        if record.revoked:
            return "refresh token was rotated away"
        if now >= self._deadline(record):
            return "refresh token expired"
        return None

    def _issue(self, grant: Grant, now: float, refresh: RefreshRecord | None) -> dict[str, Any]:
        access_token = "fake-at-" + secrets.token_urlsafe(12)
        expires_at = None if self.access_expires_in is None else now + self.access_expires_in
        self._access[access_token] = AccessRecord(grant, expires_at)
        body: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "scope": "read offline_access",
        }
        if self.access_expires_in is not None:
            body["expires_in"] = self.access_expires_in
        if refresh is None:
            refresh_token = "fake-rt-" + secrets.token_urlsafe(12)
            refresh = RefreshRecord(grant, last_used_at=now)
            self._refresh[refresh_token] = refresh
            body["refresh_token"] = refresh_token
        if self.send_refresh_expiry:
            body["refresh_token_expires_in"] = int(self._deadline(refresh) - now)
        if self.hard_cap is not None:
            body["x_refresh_token_hard_expires_in"] = int(self._cap(grant) - now)
        return body

    def _grant_tokens(self, form: dict[str, str]) -> Reply:
        now = time.time()
        grant_type = form.get("grant_type")
        self.counts[f"grant:{grant_type}"] += 1
        if grant_type == "authorization_code":
            grant = self._codes.pop(form.get("code", ""), None)
            if grant is None:
                return Reply(400, {"error": "invalid_grant", "error_description": "bad code"})
            return Reply(200, self._issue(grant, now, None))
        if grant_type != "refresh_token":
            return Reply(400, {"error": "unsupported_grant_type"})
        record = self._refresh.get(form.get("refresh_token", ""))
        error = "unknown refresh token" if record is None else self._refresh_error(record, now)
        if record is not None and record.revoked and not record.grant.revoked:
            record.grant.revoked = True  # reuse of a rotated-away token: the grant is burnt
        if error is not None:
            self.counts["refused"] += 1
            return Reply(400, {"error": "invalid_grant", "error_description": error})
        assert record is not None
        self.counts["refreshed"] += 1
        if self.rotate:
            record.revoked = True
            return Reply(200, self._issue(record.grant, now, None))
        record.last_used_at = now
        return Reply(200, self._issue(record.grant, now, record))

    def _token_endpoint(self, form: dict[str, str], authorization: str) -> Reply:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, client_secret = decoded.partition(":")
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return Reply(401, {"error": "invalid_client"})
        with self._lock:
            self.counts["token_calls"] += 1
            if self._faults:
                self.counts["faulted"] += 1
                return self._faults.pop(0)
            return self._grant_tokens(form)

    def _access_record(self, token: str) -> AccessRecord | None:
        with self._lock:
            record = self._access.get(token)
            now = time.time()
            if record is None or record.grant.revoked:
                return None
            if record.expires_at is not None and now >= record.expires_at:
                return None
            return record

    def _introspect_refresh_token(self, token: str) -> Reply:
        with self._lock:
            self.counts["introspect_refresh"] += 1
            record = self._refresh[token]
            if self._refresh_error(record, time.time()) is not None:
                return Reply(200, {"active": False})
            return Reply(200, {"active": True, "exp": int(self._deadline(record))})

    def _bearer(self, authorization: str) -> AccessRecord | None:
        record = self._access_record(authorization.removeprefix("Bearer "))
        if record is None or record.grant.rejected_by_apis:
            return None
        return record

    def _answer(self, method: str, path: str, form: dict[str, str], headers: Any) -> Reply:
        authorization = headers.get("Authorization", "")
        if method == "POST" and path == "/token":
            return self._token_endpoint(form, authorization)
        if method == "GET" and path == "/userinfo":
            self.counts["userinfo"] += 1
            record = self._bearer(authorization)
            if record is None:
                return Reply(401, {"error": "invalid_token"})
            return Reply(200, {"sub": f"account-{record.grant.username}"})
        if method == "POST" and path == "/introspect":
            self.counts["introspect"] += 1
            if self.introspect_status != 200:
                return Reply(self.introspect_status, {"error": "server_error"})
            if self.introspects_refresh_tokens and form.get("token", "") in self._refresh:
                return self._introspect_refresh_token(form["token"])
            record = self._access_record(form.get("token", ""))
            active = record is not None and not record.grant.rejected_by_apis
            return Reply(200, {"active": active})
        if method == "GET" and path == "/canary":
            self.counts["canary"] += 1
            time.sleep(self.canary_delay)
            return Reply(self.canary_status, {"ok": self.canary_status == 200})
        return Reply(404, "not found")

    def _respond(self, request: Request) -> Response:
        reply = self._answer(request.method, request.path, request.form, request.headers)
        body, content_type = reply.body, "text/plain"
        if isinstance(body, dict):
            body, content_type = json.dumps(body), "application/json"
        return Response(reply.status, body.encode(), content_type, reply.headers)


@contextmanager
def running(**options: Any) -> Iterator[FakeProvider]:
    with FakeProvider(**options) as fake:
        yield fake


def connect(
    fake: FakeProvider,
    *,
    kind: str | None = None,
    lifetime: timedelta | None = None,
    provider: dict[str, Any] | None = None,
    **connection_fields: Any,
) -> Connection:
    """A Provider and Connection at `fake`, authorized now through the real code exchange.

    The provider's policy defaults to what `fake` really does; `kind`/`lifetime` say otherwise
    (e.g. "unknown" for a provider nobody described).
    """
    provider_fields = {
        "token_url": fake.token_url,
        "refresh_token_expiry": kind or fake.policy,
        "refresh_token_lifetime": fake.refresh_lifetime if lifetime is None else lifetime,
        "rotates_refresh_tokens": fake.rotate,
    } | (provider or {})
    connection = ConnectionFactory(
        provider=ProviderFactory(**provider_fields),
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        **connection_fields,
    )
    token = oauth.exchange_code(
        client_for(connection),
        code=fake.authorize(),
        redirect_uri=callback_url(),
        code_verifier=None,
    )
    store_grant(connection, token, identity=None)
    return Connection.objects.select_related("provider").get(pk=connection.pk)
