"""Endpoint discovery: OpenID Connect Discovery 1.0, then RFC 8414."""

from dataclasses import dataclass
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
    last_error: OAuthError | None = None
    for url in _well_known_urls(issuer):
        try:
            doc = get_json(url, headers={}, timeout=timeout)
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
