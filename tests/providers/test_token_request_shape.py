"""Token requests as each provider wants them: extra parameters, extra headers and a JSON body,
on the code exchange and on every refresh, as a local token endpoint receives them.

Three layers: the provider seam (`connections.oauth`) given a Client; the engine and the consent
flow given a Provider (so the Provider's fields really reach the wire); and the validation that
refuses a configuration that cannot be sent as asked.
"""

import logging
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ValidationError

from connections import oauth
from connections.authorize import complete_authorization, start_authorization
from connections.lifecycle import refresh_connection
from connections.models import AuthMethod, Connection, Provider, RefreshAttempt
from connections.services import ServiceError, provider_update
from tests.factories import ConnectionFactory, ProviderFactory
from tests.providers.token_endpoint import TokenEndpoint, unsigned_jwt

SECRET = "client-secret-5e1f"
REFRESH = "refresh-token-0a9c"
CODE = "auth-code-77d2"
VERIFIER = "v" * 64
REDIRECT = "https://tokenadmin.example.com/oauth/callback/"
HEADER_SECRET = "header-secret-c4b1"  # an extra header's value may be a credential
QUIRKS = {
    "token_params": {"expiring": "1", "audience": "api.example.com"},
    "token_headers": {"Accept": "application/json", "X-Api-Key": HEADER_SECRET},
}
ENCODINGS = ["form", "json"]
METHODS = [AuthMethod.CLIENT_SECRET_BASIC, AuthMethod.CLIENT_SECRET_POST]


def token_reply(**extra: object) -> dict:
    return {"access_token": "access-1", "token_type": "Bearer", "expires_in": 3600} | extra


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint(token_reply(refresh_token="refresh-2")) as server:
        yield server


def client(endpoint: TokenEndpoint, *, method: str, encoding: str, **quirks: object):
    return oauth.Client(
        client_id="client-1",
        client_secret=SECRET,
        token_url=endpoint.token_url,
        auth_method=method,
        token_encoding=encoding,
        **quirks,  # type: ignore[arg-type]
    )


def exchange(endpoint: TokenEndpoint, **kwargs: object) -> None:
    oauth.exchange_code(
        client(endpoint, **kwargs), code=CODE, redirect_uri=REDIRECT, code_verifier=VERIFIER
    )


def assert_client_authenticated(seen, *, method: str) -> None:
    """The client's credentials go where its auth method puts them, and only there."""
    fields = seen.fields()
    if method == AuthMethod.CLIENT_SECRET_BASIC:
        assert seen.basic_credentials() == ("client-1", SECRET)
        assert "client_secret" not in fields
    else:
        assert seen.basic_credentials() is None
        assert (fields["client_id"], fields["client_secret"]) == ("client-1", SECRET)


def assert_encoded(seen, *, encoding: str) -> None:
    content_type = seen.header("Content-Type") or ""
    if encoding == "json":
        assert content_type == "application/json"
        assert isinstance(seen.fields(), dict)
    else:
        assert content_type.startswith("application/x-www-form-urlencoded")
    assert int(seen.header("Content-Length") or 0) == len(seen.body.encode())


# --- the provider seam ---------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("method", METHODS)
def test_it_sends_the_code_exchange_with_the_providers_quirks(endpoint, method, encoding):
    exchange(endpoint, method=method, encoding=encoding, **QUIRKS)
    seen = endpoint.last
    fields = seen.fields()
    assert fields["grant_type"] == "authorization_code"
    assert (fields["code"], fields["redirect_uri"]) == (CODE, REDIRECT)
    assert fields["code_verifier"] == VERIFIER
    assert (fields["expiring"], fields["audience"]) == ("1", "api.example.com")
    assert seen.header("X-Api-Key") == HEADER_SECRET
    assert seen.header("Accept") == "application/json"
    assert_client_authenticated(seen, method=method)
    assert_encoded(seen, encoding=encoding)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("method", METHODS)
def test_it_sends_every_refresh_with_the_providers_quirks(endpoint, method, encoding):
    token = oauth.refresh(
        client(endpoint, method=method, encoding=encoding, **QUIRKS), refresh_token=REFRESH
    )
    assert token.refresh_token == "refresh-2"
    seen = endpoint.last
    fields = seen.fields()
    assert (fields["grant_type"], fields["refresh_token"]) == ("refresh_token", REFRESH)
    assert fields["expiring"] == "1"
    assert "scope" not in fields  # the grant's scope is kept (RFC 6749 §6)
    assert seen.header("X-Api-Key") == HEADER_SECRET
    assert_client_authenticated(seen, method=method)
    assert_encoded(seen, encoding=encoding)


def test_it_sends_a_plain_rfc6749_form_without_quirks(endpoint):
    exchange(endpoint, method=AuthMethod.CLIENT_SECRET_BASIC, encoding="form")
    fields = endpoint.last.fields()
    assert set(fields) == {"grant_type", "code", "redirect_uri", "code_verifier"}
    assert endpoint.last.header("X-Api-Key") is None


def test_a_json_body_holds_text_values_only(endpoint):
    # Atlassian and Notion document string fields: "1", not 1 or true.
    exchange(endpoint, method="client_secret_post", encoding="json", token_params={"n": "1"})
    assert all(isinstance(value, str) for value in endpoint.last.fields().values())


def test_an_extra_parameter_named_like_a_request_option_is_sent_as_a_parameter(endpoint):
    # authlib takes `timeout`, `verify`, `proxies`... from keyword arguments for itself; extra
    # parameters travel in the body it extends, so they reach the provider as they are.
    params = {"timeout": "30", "verify": "no", "allow_redirects": "yes"}
    exchange(endpoint, method="client_secret_basic", encoding="form", token_params=params)
    assert params.items() <= endpoint.last.fields().items()


def test_an_extra_header_replaces_the_default_of_the_same_name(endpoint):
    headers = {"Accept": "application/vnd.example+json"}
    exchange(endpoint, method="client_secret_basic", encoding="form", token_headers=headers)
    assert endpoint.last.header("Accept") == "application/vnd.example+json"


def test_it_never_shows_header_values_in_the_repr_of_a_client(endpoint):
    text = repr(client(endpoint, method="client_secret_basic", encoding="json", **QUIRKS))
    assert HEADER_SECRET not in text and SECRET not in text


# --- the engine and the consent flow, from the Provider's fields ----------------------------


def quirky_provider(endpoint: TokenEndpoint, *, encoding: str) -> Provider:
    return ProviderFactory(
        authorize_url=endpoint.base_url + "/authorize",
        token_url=endpoint.token_url,
        default_scopes="read",
        token_endpoint_auth_method=AuthMethod.CLIENT_SECRET_POST,
        token_request_params={"expiring": "1"},
        token_request_headers={"X-Api-Key": HEADER_SECRET},
        token_request_encoding=encoding,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_the_engine_refreshes_with_the_providers_quirks(endpoint, encoding, caplog):
    connection = ConnectionFactory(
        authorized=True,
        provider=quirky_provider(endpoint, encoding=encoding),
        client_secret=SECRET,
        refresh_token=REFRESH,
    )
    caplog.set_level(logging.DEBUG)
    refreshed = refresh_connection(connection, trigger=RefreshAttempt.Trigger.FORCED, force=True)
    assert refreshed.refresh_token == "refresh-2"
    fields = endpoint.last.fields()
    assert (fields["grant_type"], fields["refresh_token"]) == ("refresh_token", REFRESH)
    assert (fields["expiring"], fields["client_secret"]) == ("1", SECRET)
    assert endpoint.last.header("X-Api-Key") == HEADER_SECRET
    assert_encoded(endpoint.last, encoding=encoding)
    assert HEADER_SECRET not in caplog.text


@pytest.mark.django_db
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_the_code_exchange_of_a_consent_uses_the_providers_quirks(endpoint, encoding, caplog):
    connection = ConnectionFactory(
        provider=quirky_provider(endpoint, encoding=encoding), client_secret=SECRET
    )
    endpoint.reply = token_reply(
        refresh_token="refresh-1", id_token=unsigned_jwt({"sub": "acct-1", "aud": "client-9"})
    )
    Connection.objects.filter(pk=connection.pk).update(client_id="client-9")
    connection.refresh_from_db()
    consent_url = start_authorization(connection, browser_secret="browser-1")
    state = parse_qs(urlsplit(consent_url).query)["state"][0]
    caplog.set_level(logging.DEBUG)

    done = complete_authorization(state=state, code=CODE, error="", browser_secret="browser-1")

    assert done.held is None and done.connection.status == Connection.Status.ACTIVE
    fields = endpoint.last.fields()
    assert (fields["grant_type"], fields["code"]) == ("authorization_code", CODE)
    assert fields["code_verifier"] and fields["redirect_uri"].endswith("/oauth/callback/")
    assert (fields["expiring"], fields["client_id"]) == ("1", "client-9")
    assert endpoint.last.header("X-Api-Key") == HEADER_SECRET
    assert_encoded(endpoint.last, encoding=encoding)
    assert HEADER_SECRET not in caplog.text


# --- configuration that cannot be sent as asked is refused ---------------------------------


def validate(provider: Provider) -> None:
    provider.full_clean(validate_unique=False, validate_constraints=False)


def refusal(**fields: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        validate(ProviderFactory.build(**fields))
    return info.value


@pytest.mark.parametrize(
    "name",
    ["Authorization", "authorization", "Content-Type", "CONTENT-TYPE", "Content-Length", "Host"],
)
def test_it_refuses_an_extra_header_that_would_replace_one_tokenadmin_sets(name):
    error = refusal(token_request_headers={name: HEADER_SECRET})
    message = " ".join(error.message_dict["token_request_headers"])
    assert name in message and "tokenadmin sets it" in message
    assert HEADER_SECRET not in str(error)


@pytest.mark.parametrize(
    "name",
    [
        "grant_type",
        "code",
        "refresh_token",
        "redirect_uri",
        "client_id",
        "client_secret",
        "code_verifier",
        "scope",
        "Grant_Type",
    ],
)
def test_it_refuses_an_extra_parameter_tokenadmin_sends_itself(name):
    error = refusal(token_request_params={name: "x"})
    assert "sends it itself" in " ".join(error.message_dict["token_request_params"])


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"token_request_params": {"expiring": 1}}, "token_request_params", "must be text"),
        ({"token_request_params": ["expiring"]}, "token_request_params", "must be an object"),
        ({"token_request_params": {" ": "1"}}, "token_request_params", "need a name"),
        ({"token_request_headers": {"X-Key": True}}, "token_request_headers", "must be text"),
        ({"token_request_headers": {"X Key": "v"}}, "token_request_headers", "not a valid HTTP"),
        # http.client cannot encode it: every token request would fail, blamed on the provider.
        ({"token_request_headers": {"X-Unit": "€uro"}}, "token_request_headers", "ASCII"),
        ({"token_request_encoding": "xml"}, "token_request_encoding", "not a valid choice"),
    ],
)
def test_it_refuses_malformed_quirks_with_a_clear_error(fields, field, words):
    assert words in " ".join(refusal(**fields).message_dict[field])


def test_it_refuses_a_header_value_that_would_split_the_request_without_quoting_it():
    error = refusal(token_request_headers={"X-Key": HEADER_SECRET + "\r\nAuthorization: x"})
    assert "line break" in str(error) and HEADER_SECRET not in str(error)


def test_it_accepts_well_formed_quirks():
    validate(
        ProviderFactory.build(
            slug="quirky",
            token_request_params={"expiring": "1"},
            token_request_headers={"Accept": "application/json", "X-Tab": "a\tb"},
            token_request_encoding="json",
        )
    )


@pytest.mark.django_db
def test_an_edit_with_a_reserved_header_is_refused_and_changes_nothing():
    provider = ProviderFactory(token_request_headers={"Accept": "application/json"})
    with pytest.raises(ServiceError) as info:
        provider_update(
            provider=provider, changes={"token_request_headers": {"Authorization": "Bearer x"}}
        )
    assert info.value.field == "token_request_headers"
    provider.refresh_from_db()
    assert provider.token_request_headers == {"Accept": "application/json"}
