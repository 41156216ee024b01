"""Public clients (client authentication `none`, RFC 7591 §2; RFC 6749 §2.1): no client secret,
the client id in the body of every token request, PKCE protecting the code.

As a local token endpoint receives them: the code exchange and refresh at the provider seam and
through the engine and consent flow (from a Provider's fields), revocation and introspection;
and the validation that refuses a public client without PKCE.
"""

import base64
import hashlib
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ValidationError

from connections import oauth
from connections.authorize import complete_authorization, start_authorization
from connections.lifecycle import refresh_connection
from connections.models import AuthMethod, Connection, Provider, RefreshAttempt
from connections.presets import get_preset
from tests.factories import ConnectionFactory, ProviderFactory
from tests.providers.token_endpoint import Seen, TokenEndpoint, unsigned_jwt

CLIENT_ID = "public-client-3f9a"
REFRESH = "refresh-token-0a9c"
CODE = "auth-code-77d2"
VERIFIER = "v" * 64
REDIRECT = "https://tokenadmin.example.com/oauth/callback/"
ENCODINGS = ["form", "json"]


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    reply = {"access_token": "access-1", "token_type": "Bearer", "expires_in": 3600}
    with TokenEndpoint(reply | {"refresh_token": "refresh-2"}) as server:
        yield server


def public_client(endpoint: TokenEndpoint, *, encoding: str = "form") -> oauth.Client:
    return oauth.Client(
        client_id=CLIENT_ID,
        client_secret="",
        token_url=endpoint.token_url,
        auth_method=AuthMethod.NONE,
        token_encoding=encoding,
    )


def assert_public(seen: Seen) -> None:
    """The client names itself in the body and proves nothing else: no Authorization header
    (not even Basic with an empty password), no client_secret field (not even a blank one)."""
    assert seen.header("Authorization") is None
    fields = seen.fields()
    assert "client_secret" not in fields
    assert fields["client_id"] == CLIENT_ID


# --- the provider seam ---------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_it_exchanges_a_code_with_the_client_id_and_the_verifier_only(endpoint, encoding):
    oauth.exchange_code(
        public_client(endpoint, encoding=encoding),
        code=CODE,
        redirect_uri=REDIRECT,
        code_verifier=VERIFIER,
    )
    seen = endpoint.last
    assert_public(seen)
    fields = seen.fields()
    assert (fields["grant_type"], fields["code"]) == ("authorization_code", CODE)
    assert (fields["code_verifier"], fields["redirect_uri"]) == (VERIFIER, REDIRECT)
    assert set(fields) == {"grant_type", "code", "redirect_uri", "code_verifier", "client_id"}


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_it_refreshes_with_the_client_id_only(endpoint, encoding):
    token = oauth.refresh(public_client(endpoint, encoding=encoding), refresh_token=REFRESH)
    assert token.refresh_token == "refresh-2"
    seen = endpoint.last
    assert_public(seen)
    assert seen.fields() == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH,
        "client_id": CLIENT_ID,
    }


def test_it_revokes_as_a_public_client(endpoint):
    oauth.revoke(public_client(endpoint), endpoint.token_url, token=REFRESH)
    assert_public(endpoint.last)
    assert endpoint.last.fields()["token"] == REFRESH


def test_it_revokes_with_the_client_authentication_of_the_token_endpoint(endpoint):
    """RFC 7009 §2.1: a client_secret_post client posts its secret to the revocation endpoint
    too (authlib alone would send Basic whenever there is a secret)."""
    client = oauth.Client(
        client_id=CLIENT_ID,
        client_secret="client-secret-5e1f",
        token_url=endpoint.token_url,
        auth_method=AuthMethod.CLIENT_SECRET_POST,
    )
    oauth.revoke(client, endpoint.token_url, token=REFRESH)
    assert endpoint.last.header("Authorization") is None
    assert endpoint.last.fields()["client_secret"] == "client-secret-5e1f"


def test_it_introspects_as_a_public_client(endpoint):
    endpoint.reply = {"active": True, "exp": 2_000_000_000}
    answer = oauth.introspect(
        public_client(endpoint), endpoint.token_url, token=REFRESH, hint="refresh_token"
    )
    assert answer["active"] is True
    assert_public(endpoint.last)


# --- the engine and the consent flow, from the Provider's fields ----------------------------


def public_provider(endpoint: TokenEndpoint, *, encoding: str) -> Provider:
    return ProviderFactory(
        authorize_url=endpoint.base_url + "/authorize",
        token_url=endpoint.token_url,
        default_scopes="read",
        token_endpoint_auth_method=AuthMethod.NONE,
        use_pkce=True,
        token_request_encoding=encoding,
    )


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.mark.django_db
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_consent_exchanges_the_code_as_a_public_client_with_pkce(endpoint, encoding):
    connection = ConnectionFactory(
        provider=public_provider(endpoint, encoding=encoding),
        client_id=CLIENT_ID,
        client_secret="",
    )
    endpoint.reply |= {"id_token": unsigned_jwt({"sub": "acct-1", "aud": CLIENT_ID})}
    consent = parse_qs(urlsplit(start_authorization(connection, browser_secret="b-1")).query)

    done = complete_authorization(
        state=consent["state"][0], code=CODE, error="", browser_secret="b-1"
    )

    assert done.held is None and done.connection.status == Connection.Status.ACTIVE
    assert consent["code_challenge_method"] == ["S256"]
    seen = endpoint.last
    assert_public(seen)
    fields = seen.fields()
    assert (fields["grant_type"], fields["code"]) == ("authorization_code", CODE)
    # The verifier sent is the one whose challenge the consent page saw: PKCE binds the code.
    assert s256(fields["code_verifier"]) == consent["code_challenge"][0]


@pytest.mark.django_db
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_the_engine_refreshes_as_a_public_client(endpoint, encoding):
    connection = ConnectionFactory(
        authorized=True,
        provider=public_provider(endpoint, encoding=encoding),
        client_id=CLIENT_ID,
        client_secret="",
        refresh_token=REFRESH,
    )
    refreshed = refresh_connection(connection, trigger=RefreshAttempt.Trigger.FORCED, force=True)
    assert refreshed.refresh_token == "refresh-2"
    assert_public(endpoint.last)
    assert endpoint.last.fields()["refresh_token"] == REFRESH


# --- a public client needs PKCE ------------------------------------------------------------


def test_it_refuses_a_public_client_without_pkce():
    provider = ProviderFactory.build(token_endpoint_auth_method=AuthMethod.NONE, use_pkce=False)
    with pytest.raises(ValidationError) as info:
        provider.full_clean(validate_unique=False, validate_constraints=False)
    assert "must use PKCE" in " ".join(info.value.message_dict["use_pkce"])


@pytest.mark.parametrize(
    ("method", "use_pkce"),
    [
        (AuthMethod.NONE, True),
        (AuthMethod.CLIENT_SECRET_BASIC, False),
        (AuthMethod.CLIENT_SECRET_POST, True),
    ],
)
def test_it_accepts_a_public_client_with_pkce_and_a_confidential_one_either_way(method, use_pkce):
    provider = ProviderFactory.build(slug="p", token_endpoint_auth_method=method, use_pkce=use_pkce)
    provider.full_clean(validate_unique=False, validate_constraints=False)


def test_the_looker_preset_is_a_public_client_with_pkce():
    # https://cloud.google.com/looker/docs/api-cors: apps registered with a client_guid, no secret.
    looker = get_preset("looker")
    assert (looker.token_endpoint_auth_method, looker.use_pkce) == (AuthMethod.NONE, True)
    assert "--client-secret ''" not in looker.notes
