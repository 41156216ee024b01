"""The only module that speaks HTTP to OAuth providers.

Small functions over authlib's requests client: build the authorization URL, exchange a code,
refresh, fetch userinfo, revoke, introspect and discover. Every call has a timeout. Responses are
parsed strictly into typed objects; every failure becomes an `OAuthError` that says whether it is
permanent (a person must act) or transient (retry later). Messages never contain token values.
"""

import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)

# RFC 6749 §5.2 error codes that no retry can fix: the grant or the client is bad.
PERMANENT_ERRORS = frozenset(
    {
        "invalid_grant",
        "invalid_client",
        "unauthorized_client",
        "invalid_scope",
        "unsupported_grant_type",
        "invalid_request",
        "access_denied",
    }
)
# Refresh-token lifetimes some providers put in token responses (seconds from now).
REFRESH_EXPIRY_FIELDS = (
    "refresh_token_expires_in",
    "x_refresh_token_expires_in",
    "refresh_expires_in",
)
# Hard caps that no renewal extends (Intuit: x_refresh_token_hard_expires_in).
REFRESH_HARD_EXPIRY_FIELDS = ("x_refresh_token_hard_expires_in",)


class OAuthError(Exception):
    """A provider call failed. `permanent` says whether retrying can help."""

    def __init__(
        self,
        code: str,
        description: str = "",
        *,
        permanent: bool,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.description = description[:300]
        self.permanent = permanent
        self.http_status = http_status
        self.retry_after = retry_after
        super().__init__(f"{code}: {self.description}" if self.description else code)


@dataclass(frozen=True)
class Client:
    """What a call needs to authenticate as the OAuth client."""

    client_id: str
    client_secret: str
    token_url: str
    auth_method: str = "client_secret_basic"
    timeout: float | None = None

    def __repr__(self) -> str:  # never show the secret
        return f"Client(client_id={self.client_id!r}, token_url={self.token_url!r})"


@dataclass(frozen=True)
class TokenResponse:
    """A successful token endpoint response (RFC 6749 §5.1), parsed strictly."""

    access_token: str
    token_type: str
    expires_in: int | None
    refresh_token: str | None
    scope: str | None
    id_token: str | None
    refresh_expires_in: int | None
    refresh_hard_expires_in: int | None
    received_at: float = field(default_factory=time.time)

    def __repr__(self) -> str:  # never show tokens
        return (
            f"TokenResponse(token_type={self.token_type!r}, expires_in={self.expires_in}, "
            f"has_refresh_token={self.refresh_token is not None}, scope={self.scope!r})"
        )


@dataclass(frozen=True)
class ProviderMetadata:
    """Endpoints found by discovery (OpenID Connect Discovery 1.0 or RFC 8414)."""

    issuer: str
    authorize_url: str
    token_url: str
    revoke_url: str = ""
    introspect_url: str = ""
    userinfo_url: str = ""
    scopes_supported: tuple[str, ...] = ()
    auth_methods_supported: tuple[str, ...] = ()


CONNECT_TIMEOUT = 3.05  # just over a multiple of TCP's 3 s retransmission window


def _timeout(timeout: float | None) -> tuple[float, float]:
    """(connect, read) timeouts for requests: a dead host fails fast, a slow one gets `timeout`."""
    read = timeout if timeout is not None else settings.TOKENADMIN["HTTP_TIMEOUT"]
    return min(CONNECT_TIMEOUT, read), read


def _retry_after(response: requests.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date, RFC 9110 §10.2.3)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


def _optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise OAuthError("malformed_response", f"{name} is not a number", permanent=False) from exc


def _checked_token_response(response: requests.Response) -> requests.Response:
    """Classify a token endpoint response before authlib parses it (an authlib hook)."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str) and status < 500:
        code = body["error"]
        description = str(body.get("error_description") or "")
        # 429 and `temporarily_unavailable` (RFC 6749 §4.1.2.1) are worth retrying.
        permanent = code in PERMANENT_ERRORS and status != 429
        raise OAuthError(
            code,
            description,
            permanent=permanent,
            http_status=status,
            retry_after=_retry_after(response),
        )
    if status != 200 or not isinstance(body, dict):
        what = "an unparseable body" if status == 200 else f"HTTP {status}"
        raise OAuthError(
            "server_error" if status >= 500 else "bad_response",
            f"token endpoint answered with {what}",
            permanent=False,
            http_status=status,
            retry_after=_retry_after(response),
        )
    return response


def _parse_token(body: dict[str, Any]) -> TokenResponse:
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise OAuthError(
            "malformed_response",
            "token response has no access_token",
            permanent=False,
            http_status=200,
        )
    refresh_token = body.get("refresh_token")
    if refresh_token is not None and (not isinstance(refresh_token, str) or not refresh_token):
        raise OAuthError(
            "malformed_response", "refresh_token is not a string", permanent=False, http_status=200
        )
    refresh_expires = [_optional_int(body, name) for name in REFRESH_EXPIRY_FIELDS]
    hard_expires = [_optional_int(body, name) for name in REFRESH_HARD_EXPIRY_FIELDS]
    scope = body.get("scope")
    if isinstance(scope, list):  # a few providers send a JSON array
        scope = " ".join(str(s) for s in scope)
    return TokenResponse(
        access_token=access_token,
        token_type=str(body.get("token_type") or "Bearer"),
        expires_in=_optional_int(body, "expires_in"),
        refresh_token=refresh_token,
        scope=scope if isinstance(scope, str) else None,
        id_token=body.get("id_token") if isinstance(body.get("id_token"), str) else None,
        refresh_expires_in=next((v for v in refresh_expires if v is not None), None),
        refresh_hard_expires_in=next((v for v in hard_expires if v is not None), None),
    )


def _session(client: Client, **kwargs: Any) -> OAuth2Session:
    session = OAuth2Session(
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_endpoint_auth_method=client.auth_method,
        default_timeout=_timeout(client.timeout),
        **kwargs,
    )
    session.register_compliance_hook("access_token_response", _checked_token_response)
    session.register_compliance_hook("refresh_token_response", _checked_token_response)
    return session


def _redacted(exc: OAuthError, secrets: tuple[str, ...]) -> OAuthError:
    """The same error with any echoed secret cut out of the provider's description."""
    description = exc.description
    for secret in secrets:
        if secret:
            description = description.replace(secret, "[redacted]")
    if description == exc.description:
        return exc
    return OAuthError(
        exc.code,
        description,
        permanent=exc.permanent,
        http_status=exc.http_status,
        retry_after=exc.retry_after,
    )


def _call_token_endpoint(
    client: Client, call: Callable[[], dict[str, Any]], *, sent: tuple[str, ...]
) -> TokenResponse:
    """Run an authlib token call, mapping every failure to a classified OAuthError.

    `sent` are the secrets in the request (code, refresh token, client secret): a provider that
    echoes one in its error description must not carry it into our logs and rows.
    """
    secrets = (*sent, client.client_secret)
    try:
        body = call()
    except OAuthError as exc:
        raise _redacted(exc, secrets) from None
    except requests.Timeout as exc:
        raise OAuthError("timeout", "the provider did not answer in time", permanent=False) from exc
    except requests.RequestException as exc:
        raise OAuthError("connection_error", type(exc).__name__, permanent=False) from exc
    except (TypeError, ValueError) as exc:
        # authlib turns `expires_in` into a number before we see the body.
        raise OAuthError(
            "malformed_response",
            "token response fields have the wrong type",
            permanent=False,
            http_status=200,
        ) from exc
    return _parse_token(dict(body))


def build_authorization_url(
    *,
    authorize_url: str,
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    code_verifier: str | None,
    extra_params: dict[str, str],
) -> str:
    """The provider consent-page URL (RFC 6749 §4.1.1) with PKCE S256 (RFC 7636 §4.3)."""
    session = OAuth2Session(client_id=client_id, redirect_uri=redirect_uri, scope=scope or None)
    params: dict[str, str] = dict(extra_params)
    if code_verifier:
        params["code_challenge"] = create_s256_code_challenge(code_verifier)
        params["code_challenge_method"] = "S256"
    url, _ = session.create_authorization_url(authorize_url, state=state, **params)
    return url


def exchange_code(
    client: Client, *, code: str, redirect_uri: str, code_verifier: str | None
) -> TokenResponse:
    """Trade an authorization code for tokens (RFC 6749 §4.1.3)."""
    session = _session(client, redirect_uri=redirect_uri)
    extra = {"code_verifier": code_verifier} if code_verifier else {}
    return _call_token_endpoint(
        client,
        lambda: session.fetch_token(
            client.token_url, grant_type="authorization_code", code=code, **extra
        ),
        sent=(code,),
    )


def refresh(client: Client, *, refresh_token: str) -> TokenResponse:
    """Use a refresh token (RFC 6749 §6). The scope is left out so the grant's scope is kept."""
    session = _session(client)
    token = _call_token_endpoint(
        client,
        lambda: session.refresh_token(client.token_url, refresh_token=refresh_token),
        sent=(refresh_token,),
    )
    if token.refresh_token == refresh_token:
        # authlib copies the old refresh token into a response that had none (RFC 6749 §6:
        # the client keeps it); say "none returned" so rotation is detected honestly.
        token = replace(token, refresh_token=None)
    return token


def _send(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    timeout: float | None,
    data: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> requests.Response:
    """One HTTP call outside the token endpoint; non-2xx answers become classified errors."""
    try:
        response = requests.request(
            method, url, headers=headers, data=data, auth=auth, timeout=_timeout(timeout)
        )
    except requests.Timeout as exc:
        raise OAuthError("timeout", "the provider did not answer in time", permanent=False) from exc
    except requests.RequestException as exc:
        raise OAuthError("connection_error", type(exc).__name__, permanent=False) from exc
    status = response.status_code
    if status in (401, 403):
        raise OAuthError("unauthorized", f"HTTP {status}", permanent=True, http_status=status)
    if not 200 <= status < 300:
        raise OAuthError(
            "bad_response",
            f"HTTP {status}",
            permanent=False,
            http_status=status,
            retry_after=_retry_after(response),
        )
    return response


def _get_json(
    url: str,
    *,
    headers: dict[str, str],
    timeout: float | None,
    method: str = "GET",
    data: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> dict[str, Any]:
    response = _send(
        method,
        url,
        headers={"Accept": "application/json", **headers},
        timeout=timeout,
        data=data,
        auth=auth,
    )
    try:
        body = response.json()
    except ValueError as exc:
        raise OAuthError(
            "bad_response", "body is not JSON", permanent=False, http_status=200
        ) from exc
    if not isinstance(body, dict):
        raise OAuthError(
            "bad_response", "body is not a JSON object", permanent=False, http_status=200
        )
    return body


def fetch_userinfo(url: str, *, access_token: str, timeout: float | None = None) -> dict[str, Any]:
    """OpenID Connect UserInfo (OIDC Core §5.3) or any JSON 'who am I' endpoint."""
    return _get_json(url, headers={"Authorization": f"Bearer {access_token}"}, timeout=timeout)


def probe(url: str, *, access_token: str, timeout: float | None = None) -> int:
    """GET `url` with the access token as a health canary; return the (2xx) status.

    401 and 403 are permanent (the token or grant is rejected); other failures are transient.
    """
    headers = {"Authorization": f"Bearer {access_token}"}
    return _send("GET", url, headers=headers, timeout=timeout).status_code


def introspect(client: Client, url: str, *, token: str, hint: str) -> dict[str, Any]:
    """RFC 7662 token introspection, authenticated as the client."""
    data = {"token": token, "token_type_hint": hint}
    if client.auth_method == "client_secret_post":
        data |= {"client_id": client.client_id, "client_secret": client.client_secret}
        auth = None
    else:
        auth = (client.client_id, client.client_secret)
    return _get_json(url, headers={}, timeout=client.timeout, method="POST", data=data, auth=auth)


def revoke(client: Client, url: str, *, token: str, hint: str = "refresh_token") -> None:
    """RFC 7009 revocation. Revoking a refresh token revokes the grant at most providers."""
    session = _session(client)
    try:
        response = session.revoke_token(url, token=token, token_type_hint=hint)
    except requests.RequestException as exc:
        raise OAuthError("connection_error", type(exc).__name__, permanent=False) from exc
    if response.status_code != 200:
        raise OAuthError(
            "bad_response",
            f"HTTP {response.status_code}",
            permanent=response.status_code < 500,
            http_status=response.status_code,
        )


def _well_known_urls(issuer: str) -> list[str]:
    """Where discovery documents may live for `issuer`.

    OIDC Discovery §4 appends to the issuer's path; RFC 8414 §3 inserts the well-known segment
    before it. Both are tried, OIDC first.
    """
    issuer = issuer.rstrip("/")
    parts = urlsplit(issuer)
    oidc = f"{issuer}/.well-known/openid-configuration"
    rfc8414 = urlunsplit(
        (parts.scheme, parts.netloc, "/.well-known/oauth-authorization-server" + parts.path, "", "")
    )
    return [oidc, rfc8414]


def discover(issuer: str, *, timeout: float | None = None) -> ProviderMetadata:
    """Fetch endpoints from the issuer's discovery document; raise OAuthError if none works."""
    parts = urlsplit(issuer)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise OAuthError("invalid_issuer", f"{issuer!r} is not an absolute URL", permanent=True)
    last_error: OAuthError | None = None
    for url in _well_known_urls(issuer):
        try:
            doc = _get_json(url, headers={}, timeout=timeout)
        except OAuthError as exc:
            last_error = exc
            continue
        if doc.get("issuer", "").rstrip("/") != issuer.rstrip("/"):
            # RFC 8414 §3.3 / OIDC Discovery §4.3: the document must name the same issuer.
            raise OAuthError(
                "issuer_mismatch", f"{url} names issuer {doc.get('issuer')!r}", permanent=True
            )
        if not doc.get("authorization_endpoint") or not doc.get("token_endpoint"):
            raise OAuthError(
                "bad_response", f"{url} lacks authorization or token endpoint", permanent=True
            )
        return ProviderMetadata(
            issuer=doc["issuer"],
            authorize_url=doc["authorization_endpoint"],
            token_url=doc["token_endpoint"],
            revoke_url=doc.get("revocation_endpoint", ""),
            introspect_url=doc.get("introspection_endpoint", ""),
            userinfo_url=doc.get("userinfo_endpoint", ""),
            scopes_supported=tuple(doc.get("scopes_supported") or ()),
            auth_methods_supported=tuple(doc.get("token_endpoint_auth_methods_supported") or ()),
        )
    assert last_error is not None
    raise OAuthError(
        "discovery_failed",
        f"no discovery document for {issuer}: {last_error}",
        permanent=last_error.permanent,
        http_status=last_error.http_status,
    )


def jwt_claims(token: str | None) -> dict[str, Any]:
    """The claims of a JWT, unverified; {} when `token` is not a JWT.

    Used for the id_token straight from the token endpoint over TLS, where OIDC Core §3.1.3.7
    allows skipping the signature check, and for `exp` of JWT-shaped tokens, which only informs
    scheduling (the provider still decides whether a token is valid).
    """
    if not token or token.count(".") != 2:
        return {}
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}
