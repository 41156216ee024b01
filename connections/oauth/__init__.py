"""The only package that speaks HTTP to OAuth providers.

Small functions over authlib's requests client: build the authorization URL, exchange a code,
refresh, fetch userinfo, revoke, introspect and discover. Every call has a timeout. Responses are
parsed strictly into typed objects; every failure becomes an `OAuthError` that says whether it is
permanent (a person must act) or transient (retry later). Messages never contain token values.
"""

from connections.oauth.discovery import ProviderMetadata, discover
from connections.oauth.http import CONNECT_TIMEOUT, Client, OAuthError, jwt_claims
from connections.oauth.resources import fetch_userinfo, introspect, probe
from connections.oauth.tokens import (
    PERMANENT_ERRORS,
    REFRESH_EXPIRY_FIELDS,
    REFRESH_HARD_EXPIRY_FIELDS,
    TokenResponse,
    build_authorization_url,
    exchange_code,
    refresh,
    revoke,
)

__all__ = [
    "CONNECT_TIMEOUT",
    "PERMANENT_ERRORS",
    "REFRESH_EXPIRY_FIELDS",
    "REFRESH_HARD_EXPIRY_FIELDS",
    "Client",
    "OAuthError",
    "ProviderMetadata",
    "TokenResponse",
    "build_authorization_url",
    "discover",
    "exchange_code",
    "fetch_userinfo",
    "introspect",
    "jwt_claims",
    "probe",
    "refresh",
    "revoke",
]
