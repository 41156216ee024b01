"""Shared pieces of the provider seam: errors, client credentials, timeouts, plain HTTP."""

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from django.conf import settings
from django.utils import timezone


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
    client_secret: str  # "" for a public client
    token_url: str
    auth_method: str = "client_secret_basic"  # or client_secret_post, or none (public client)
    timeout: float | None = None
    # The provider's token-request quirks (Provider.token_request_*), validated there.
    token_params: Mapping[str, str] = field(default_factory=dict)
    token_headers: Mapping[str, str] = field(default_factory=dict)
    token_encoding: str = "form"

    def __repr__(self) -> str:  # never show the secret, nor header values (they may be secret)
        return f"Client(client_id={self.client_id!r}, token_url={self.token_url!r})"


CONNECT_TIMEOUT = 3.05  # just over a multiple of TCP's 3 s retransmission window


def timeouts(timeout: float | None) -> tuple[float, float]:
    """(connect, read) timeouts for requests: a dead host fails fast, a slow one gets `timeout`."""
    read = timeout if timeout is not None else settings.TOKENADMIN["HTTP_TIMEOUT"]
    return min(CONNECT_TIMEOUT, read), read


def retry_after_seconds(response: requests.Response) -> float | None:
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


def send(
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
            method, url, headers=headers, data=data, auth=auth, timeout=timeouts(timeout)
        )
    except requests.Timeout as exc:
        raise OAuthError("timeout", "the provider did not answer in time", permanent=False) from exc
    except requests.RequestException as exc:
        raise OAuthError("connection_error", type(exc).__name__, permanent=False) from exc
    status = response.status_code
    if status == 401:
        raise OAuthError("unauthorized", f"HTTP {status}", permanent=True, http_status=status)
    if status == 403:
        # RFC 6750 §3.1: a valid token without the scope (insufficient_scope), not a dead grant.
        raise OAuthError("forbidden", f"HTTP {status}", permanent=True, http_status=status)
    if not 200 <= status < 300:
        raise OAuthError(
            "bad_response",
            f"HTTP {status}",
            permanent=False,
            http_status=status,
            retry_after=retry_after_seconds(response),
        )
    return response


def get_json(
    url: str,
    *,
    headers: dict[str, str],
    timeout: float | None,
    method: str = "GET",
    data: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> dict[str, Any]:
    response = send(
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
