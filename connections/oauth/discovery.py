"""Endpoint discovery: OpenID Connect Discovery 1.0, then RFC 8414."""

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from connections.oauth.http import OAuthError, get_json


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
    failures: list[tuple[str, OAuthError]] = []
    for url in _well_known_urls(issuer):
        try:
            doc = get_json(url, headers={}, timeout=timeout)
        except OAuthError as exc:
            failures.append((url, exc))
            continue
        return _metadata(doc, issuer=issuer, url=url)
    last_error = failures[-1][1]
    tried = "; ".join(f"{url}: {_why(exc)}" for url, exc in failures)
    raise OAuthError(
        "discovery_failed",
        f"no discovery document ({tried})",
        permanent=last_error.permanent,
        http_status=last_error.http_status,
    )


def _why(error: OAuthError) -> str:
    """Why one well-known URL gave no document, in words a person can act on."""
    if error.code == "connection_error":
        return f"could not connect ({error.description})"
    if error.code == "timeout":
        return "no answer in time"
    if error.http_status and error.http_status != 200:
        return f"HTTP {error.http_status}"
    return error.description or error.code  # "body is not JSON", "... not a JSON object"


def _text(doc: dict[str, Any], name: str, url: str) -> str:
    value = doc.get(name) or ""
    if not isinstance(value, str):
        raise OAuthError("bad_response", f"{url}: {name} is not a string", permanent=True)
    return value


def _texts(doc: dict[str, Any], name: str, url: str) -> tuple[str, ...]:
    value = doc.get(name) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise OAuthError("bad_response", f"{url}: {name} is not a list of strings", permanent=True)
    return tuple(value)


def _metadata(doc: dict[str, Any], *, issuer: str, url: str) -> ProviderMetadata:
    """Parse a discovery document strictly; a malformed field is a clear error."""
    named = _text(doc, "issuer", url)
    if named.rstrip("/") != issuer.rstrip("/"):
        # RFC 8414 §3.3 / OIDC Discovery §4.3: the document must name the same issuer.
        raise OAuthError("issuer_mismatch", f"{url} names issuer {named!r}", permanent=True)
    authorize_url = _text(doc, "authorization_endpoint", url)
    token_url = _text(doc, "token_endpoint", url)
    if not authorize_url or not token_url:
        raise OAuthError(
            "bad_response", f"{url} lacks authorization or token endpoint", permanent=True
        )
    return ProviderMetadata(
        issuer=named,
        authorize_url=authorize_url,
        token_url=token_url,
        revoke_url=_text(doc, "revocation_endpoint", url),
        introspect_url=_text(doc, "introspection_endpoint", url),
        userinfo_url=_text(doc, "userinfo_endpoint", url),
        scopes_supported=_texts(doc, "scopes_supported", url),
        auth_methods_supported=_texts(doc, "token_endpoint_auth_methods_supported", url),
    )
