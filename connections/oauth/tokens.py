"""The token endpoint (RFC 6749): authorization URL, code exchange, refresh, revocation."""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.requests_client.oauth2_session import OAuth2ClientAuth
from authlib.oauth2.client import DEFAULT_HEADERS
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from connections.oauth.http import Client, OAuthError, retry_after_seconds, timeouts

PERMANENT_ERRORS = frozenset(
    {
        "invalid_grant",
        "invalid_client",
        "unauthorized_client",
        "invalid_scope",
        "unsupported_grant_type",
    }
)
# Non-standard codes for the same thing, from providers that answer errors as HTTP 200 bodies:
# Slack's oauth.v2.access says `{"ok": false, "error": "invalid_refresh_token"}` for a dead grant;
# GitHub's token endpoint `bad_refresh_token` (and `bad_verification_code` for a bad code),
# https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors;
# Zoho's `invalid_code` for a revoked refresh token (and a bad code), per Zoho's OAuth
# troubleshooting (help.zoho.com "Kaizen #4 - Troubleshooting OAuth2.0").
PROVIDER_PERMANENT_ERRORS = frozenset(
    {
        "invalid_refresh_token",
        "token_revoked",
        "invalid_auth",
        "bad_refresh_token",
        "bad_verification_code",
        "invalid_code",
    }
)
MAX_LIFETIME_SECONDS = 10 * 366 * 86400
# Refresh-token lifetimes some providers put in token responses (seconds from now).
REFRESH_EXPIRY_FIELDS = (
    "refresh_token_expires_in",
    "x_refresh_token_expires_in",
    "refresh_expires_in",
)
# Hard caps that no renewal extends (Intuit: x_refresh_token_hard_expires_in).
REFRESH_HARD_EXPIRY_FIELDS = ("x_refresh_token_hard_expires_in",)


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


def _optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    try:
        seconds = int(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise OAuthError("malformed_response", f"{name} is not a number", permanent=False) from exc
    # Clamped so date arithmetic on an absurd value cannot fail after the provider has rotated
    # the refresh token (we must still be able to store it).
    return max(0, min(seconds, MAX_LIFETIME_SECONDS))


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
        known = code in PERMANENT_ERRORS or code in PROVIDER_PERMANENT_ERRORS
        permanent = known and status != 429
        raise OAuthError(
            code,
            description,
            permanent=permanent,
            http_status=status,
            retry_after=retry_after_seconds(response),
        )
    if status != 200 or not isinstance(body, dict):
        what = "an unparseable body" if status == 200 else f"HTTP {status}"
        raise OAuthError(
            "server_error" if status >= 500 else "bad_response",
            f"token endpoint answered with {what}",
            permanent=False,
            http_status=status,
            retry_after=retry_after_seconds(response),
        )
    return response


def parse_token(body: dict[str, Any]) -> TokenResponse:
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
        token_type=str(body.get("token_type") or "Bearer")[:40],
        expires_in=_optional_int(body, "expires_in"),
        refresh_token=refresh_token,
        scope=scope if isinstance(scope, str) else None,
        id_token=body.get("id_token") if isinstance(body.get("id_token"), str) else None,
        refresh_expires_in=next((v for v in refresh_expires if v is not None), None),
        refresh_hard_expires_in=next((v for v in hard_expires if v is not None), None),
    )


class _TokenRequestAuth(requests.auth.AuthBase):
    """Client authentication (authlib's, RFC 6749 §2.3.1; for `none`, a public client, only
    `client_id` in the body, RFC 6749 §3.2.1), then the body in the provider's encoding: for
    `json`, the whole form (grant, code or refresh token, redirect URI, PKCE verifier, extra
    parameters, and the client credentials when they go in the body) is sent as one JSON
    object, as Atlassian, Notion and Looker document."""

    def __init__(self, client: Client) -> None:
        self.client_auth = OAuth2ClientAuth(
            client.client_id, client.client_secret, client.auth_method
        )
        self.encoding = client.token_encoding

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request = self.client_auth(request)
        if self.encoding == "json":
            body = request.body or ""
            text = body.decode() if isinstance(body, bytes) else body
            data = json.dumps(dict(parse_qsl(text, keep_blank_values=True))).encode()
            request.body = data
            request.headers["Content-Type"] = "application/json"
            request.headers["Content-Length"] = str(len(data))
        return request


def _token_request(client: Client) -> dict[str, Any]:
    """The arguments every token request takes: extra parameters (as the form body authlib
    extends, never as keyword arguments it could take for its own), headers, authentication."""
    return {
        "body": urlencode(dict(client.token_params)),
        "headers": {**DEFAULT_HEADERS, **client.token_headers},
        "auth": _TokenRequestAuth(client),
    }


def _session(client: Client, **kwargs: Any) -> OAuth2Session:
    session = OAuth2Session(
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_endpoint_auth_method=client.auth_method,
        # RFC 7009 §2.1: the client authenticates as at the token endpoint (authlib's default
        # would be client_secret_basic whenever there is a secret).
        revocation_endpoint_auth_method=client.auth_method,
        default_timeout=timeouts(client.timeout),
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
    return parse_token(dict(body))


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
            client.token_url,
            grant_type="authorization_code",
            code=code,
            **extra,
            **_token_request(client),
        ),
        sent=(code,),
    )


def refresh(client: Client, *, refresh_token: str) -> TokenResponse:
    """Use a refresh token (RFC 6749 §6). The scope is left out so the grant's scope is kept."""
    session = _session(client)
    token = _call_token_endpoint(
        client,
        lambda: session.refresh_token(
            client.token_url, refresh_token=refresh_token, **_token_request(client)
        ),
        sent=(refresh_token,),
    )
    if token.refresh_token == refresh_token:
        # authlib copies the old refresh token into a response that had none (RFC 6749 §6:
        # the client keeps it); say "none returned" so rotation is detected honestly.
        token = replace(token, refresh_token=None)
    return token


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
