"""A local fake of one provider that enforces its `Contract` on the wire.

It plays the provider's consent page (`consent(url)` reads the authorization URL tokenadmin built
and returns the code the callback would carry; nothing is fetched) and serves, over real HTTP in
a thread, the token endpoint at the documented path, the identity endpoint when the provider has
one, and a revocation/introspection path that answers without doing anything. Every request is
checked against the contract: client authentication, body encoding, required headers, PKCE,
redirect URI; a mismatch is recorded in `violations` (in words, never with a secret) and
answered as the provider would (401 invalid_client, 400 invalid_request). Refresh tokens live,
rotate and die as documented, and a dead grant is answered in the provider's own shape.

Time is `time.time()`, which time-machine moves for every thread, so a test can age tokens.
"""

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from tests.providers.contracts import CLIENT_ID, CLIENT_SECRET, DAY, Contract
from tests.support.http_server import LocalServer, Request, Response, handler_for


@dataclass
class Grant:
    consented_at: float
    scope: str
    with_refresh: bool
    revoked: bool = False


@dataclass
class Code:
    grant: Grant
    redirect_uri: str
    challenge: str


@dataclass
class RefreshRecord:
    grant: Grant
    issued_at: float
    last_used_at: float
    superseded_at: float | None = None


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class ContractServer(LocalServer):
    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.token_path = urlsplit(contract.token_url).path
        self.violations: list[str] = []
        self.counts: Counter[str] = Counter()
        self.issued_access: list[str] = []
        self.live_refresh: str | None = None  # the newest refresh token of the grant
        self.lose_next_refresh_reply_for = 0.0  # seconds to hold a refresh reply back
        self._lock = threading.Lock()
        self._codes: dict[str, Code] = {}
        self._refresh: dict[str, RefreshRecord] = {}
        super().__init__(handler_for(self._respond))

    def url_for(self, real_url: str) -> str:
        """Where this fake serves the endpoint documented at `real_url` (same path)."""
        return self.base_url + urlsplit(real_url).path

    # --- the consent page -------------------------------------------------------------------
    def consent(self, url: str) -> tuple[str, str]:
        """A person consents at the authorization URL; return (code, state) for the callback."""
        c = self.contract
        parts = urlsplit(url)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        base = f"{parts.scheme}://{parts.netloc}{parts.path}"
        self._expect(base == c.authorize_url, f"consent page is {c.authorize_url}, got {base}")
        self._expect(query.get("response_type") == "code", "response_type=code missing")
        self._expect(query.get("client_id") == CLIENT_ID, "client_id missing on the consent URL")
        self._expect(bool(query.get("state")), "state missing on the consent URL")
        self._expect(bool(query.get("redirect_uri")), "redirect_uri missing on the consent URL")
        for key, value in c.authorize_params.items():
            got = query.get(key)
            self._expect(got == value, f"consent URL needs {key}={value}, got {got!r}")
        challenge = query.get("code_challenge", "")
        if c.pkce is True:
            self._expect(bool(challenge), "PKCE code_challenge missing")
        if c.pkce is False:
            self._expect(not challenge, "the provider takes no PKCE challenge")
        if challenge:
            method = query.get("code_challenge_method")
            self._expect(method == "S256", f"code_challenge_method S256, got {method!r}")
        scopes = query.get("scope", "").replace(",", " ").split()
        for scope in c.scope_needs:
            self._expect(scope in scopes, f"scope {scope} not asked for")
        with_refresh = all(
            self._need_met(need, scopes=scopes, query=query)
            for need in c.refresh_needs
            if need[0] != "token"
        )
        code = "code-" + secrets.token_urlsafe(12)
        grant = Grant(time.time(), " ".join(scopes), with_refresh)
        with self._lock:
            self._codes[code] = Code(grant, query.get("redirect_uri", ""), challenge)
        return code, query.get("state", "")

    @staticmethod
    def _need_met(need: tuple, *, scopes: list[str], query: dict[str, str]) -> bool:
        if need[0] == "scope":
            return any(scope in scopes for scope in need[1])
        return query.get(need[1]) == need[2]

    # --- what tests steer ---------------------------------------------------------------------
    def revoke_grant(self) -> None:
        """The account owner removes the app: the grant and all its tokens die."""
        with self._lock:
            for record in self._refresh.values():
                record.grant.revoked = True

    def _expect(self, ok: bool, problem: str) -> bool:
        if not ok:
            self.violations.append(problem)
        return ok

    # --- the token endpoint -------------------------------------------------------------------
    def _token_request(self, headers: Any, raw: str) -> Reply:
        c = self.contract
        self.counts["token_requests"] += 1
        content_type = headers.get("Content-Type", "")
        wanted_type = "application/json" if c.encoding == "json" else "application/x-www-form-"
        if not self._expect(
            content_type.startswith(wanted_type),
            f"token request body must be {c.encoding}, got Content-Type {content_type!r}",
        ):
            return Reply(400, {"error": "invalid_request", "error_description": "bad body"})
        try:
            fields = json.loads(raw) if c.encoding == "json" else dict(parse_qsl(raw))
        except ValueError:
            fields = None
        if not isinstance(fields, dict):
            self._expect(False, "token request body does not parse")
            return Reply(400, {"error": "invalid_request"})
        fields = {key: str(value) for key, value in fields.items()}
        if not self._client_authenticated(headers, fields):
            return Reply(401, {"error": "invalid_client"})
        for name, value in c.token_headers.items():
            got = headers.get(name, "")
            if not self._expect(value in got, f"token request needs header {name}: {value}"):
                return Reply(400, {"error": "invalid_request", "error_description": name})
        grant_type = fields.get("grant_type")
        with self._lock:
            if grant_type == "authorization_code":
                return self._exchange(fields, headers)
            if grant_type == "refresh_token":
                return self._use_refresh_token(fields, headers)
        self._expect(False, f"unexpected grant_type {grant_type!r}")
        return Reply(400, {"error": "unsupported_grant_type"})

    def _client_authenticated(self, headers: Any, fields: dict[str, str]) -> bool:
        allowed = self.contract.auth
        authorization = headers.get("Authorization", "")
        if authorization.startswith("Basic "):
            user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            ok = self._expect("basic" in allowed, f"Basic auth sent; the provider takes {allowed}")
            ok &= self._expect("client_secret" not in fields, "secret sent twice (header+body)")
            return ok and self._expect(
                (user, password) == (CLIENT_ID, CLIENT_SECRET), "wrong Basic credentials"
            )
        if "client_secret" in fields:
            ok = self._expect(
                "post" in allowed, f"client_secret in the body; the provider takes {allowed}"
            )
            return ok and self._expect(
                (fields.get("client_id"), fields["client_secret"]) == (CLIENT_ID, CLIENT_SECRET),
                "wrong client credentials in the body",
            )
        ok = self._expect("none" in allowed, f"no client authentication; needs {allowed}")
        return ok and self._expect(fields.get("client_id") == CLIENT_ID, "client_id missing")

    def _exchange(self, fields: dict[str, str], headers: Any) -> Reply:
        code = self._codes.pop(fields.get("code", ""), None)
        if code is None:
            self._expect(False, "unknown or reused authorization code")
            return Reply(*self._error_reply())
        self._expect(
            fields.get("redirect_uri") == code.redirect_uri,
            "code exchange redirect_uri differs from the consent URL's",
        )
        verifier = fields.get("code_verifier", "")
        if code.challenge and not self._expect(
            s256(verifier) == code.challenge, "PKCE code_verifier missing or wrong"
        ):
            return Reply(400, {"error": "invalid_grant", "error_description": "PKCE failed"})
        grant = code.grant
        token_needs = [n for n in self.contract.refresh_needs if n[0] == "token"]
        grant.with_refresh &= all(fields.get(n[1]) == n[2] for n in token_needs)
        self.counts["exchanged"] += 1
        return Reply(200, self._issue(grant, headers, new_refresh=grant.with_refresh))

    def _use_refresh_token(self, fields: dict[str, str], headers: Any) -> Reply:
        c, now = self.contract, time.time()
        token = fields.get("refresh_token", "")
        record = self._refresh.get(token)
        if record is None or record.grant.revoked or now >= self._deadline(record):
            self.counts["refused"] += 1
            return Reply(*c.dead_grant)
        if record.superseded_at is not None:
            if c.rotation == "revoke" and now >= record.superseded_at + c.grace:
                self.counts["reused"] += 1
                record.grant.revoked = True  # reuse detection burns the grant
                return Reply(*c.dead_grant)
            self.counts["reused_in_grace"] += 1
        record.last_used_at = now
        self.counts["refreshed"] += 1
        rotation = c.rotation
        if rotation == "daily":
            rotation = "revoke" if now - record.issued_at >= DAY else "echo"
        body = self._issue(record.grant, headers, new_refresh=rotation in ("revoke", "keep_old"))
        if rotation in ("revoke", "keep_old"):
            record.superseded_at = now if rotation == "revoke" else None
        elif rotation == "echo":
            body["refresh_token"] = token
            self._add_refresh_expiry(body, record, headers)
        return Reply(200, body)

    def _deadline(self, record: RefreshRecord) -> float:
        c = self.contract
        if c.refresh_days is None:
            return float("inf")
        lifetime = c.refresh_days * DAY
        if c.kind == "absolute":
            return record.grant.consented_at + lifetime
        return record.last_used_at + lifetime

    def _issue(self, grant: Grant, headers: Any, *, new_refresh: bool) -> dict[str, Any]:
        c, now = self.contract, time.time()
        access = f"at-{c.slug}-{len(self.issued_access) + 1}-{secrets.token_urlsafe(6)}"
        self.issued_access.append(access)
        body: dict[str, Any] = {"access_token": access, "token_type": c.token_type}
        if grant.scope:
            body["scope"] = grant.scope
        body |= c.extra
        if c.access_expires_in is not None:
            body["expires_in"] = c.access_expires_in
        if new_refresh:
            refresh = f"rt-{c.slug}-{secrets.token_urlsafe(9)}"
            record = RefreshRecord(grant, issued_at=now, last_used_at=now)
            self._refresh[refresh] = record
            self.live_refresh = refresh
            body["refresh_token"] = refresh
            self._add_refresh_expiry(body, record, headers)
        return body

    def _add_refresh_expiry(self, body: dict[str, Any], record: RefreshRecord, headers: Any):
        c, now = self.contract, time.time()
        if c.refresh_field:
            body[c.refresh_field] = int(self._deadline(record) - now)
        if c.hard_cap_header and headers.get(c.hard_cap_header, "").lower() == "true":
            cap = record.grant.consented_at + (c.hard_cap_days or 0) * DAY
            body["x_refresh_token_hard_expires_in"] = int(cap - now)

    def _error_reply(self) -> tuple[int, dict[str, Any]]:
        return 400, {"error": "invalid_grant"}

    # --- HTTP ---------------------------------------------------------------------------------
    def _answer(self, method: str, path: str, headers: Any, raw: str) -> Reply:
        c = self.contract
        if method == "POST" and path == self.token_path:
            return self._token_request(headers, raw)
        if method == "GET" and c.userinfo and path == c.userinfo[0]:
            self.counts["userinfo"] += 1
            bearer = headers.get("Authorization", "").removeprefix("Bearer ")
            if bearer not in self.issued_access:
                return Reply(401, {"error": "invalid_token"})
            return Reply(200, c.userinfo[1])
        if method == "POST" and ("revo" in path or "introspect" in path):
            self.counts[path] += 1
            return Reply(200, {"active": False})
        self._expect(False, f"unexpected request {method} {path}")
        return Reply(404, {"error": "not_found"})

    def _encode(self, reply: Reply, headers: Any) -> tuple[bytes, str]:
        accepts_json = "application/json" in headers.get("Accept", "")
        if self.contract.json_only_with_accept and not accepts_json:
            flat = {key: str(value) for key, value in reply.body.items()}
            return urlencode(flat).encode(), "application/x-www-form-urlencoded"
        return json.dumps(reply.body).encode(), "application/json; charset=utf-8"

    def _respond(self, request: Request) -> Response:
        reply = self._answer(request.method, request.path, request.headers, request.body)
        data, content_type = self._encode(reply, request.headers)
        if (
            request.path == self.token_path
            and self.lose_next_refresh_reply_for
            and ("refresh_token" in reply.body)
        ):
            # The provider did the work; its answer never arrives in time.
            delay, self.lose_next_refresh_reply_for = self.lose_next_refresh_reply_for, 0
            self.counts["replies_lost"] += 1
            time.sleep(delay)
        return Response(reply.status, data, content_type, reply.headers)
