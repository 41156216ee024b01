"""An access token whose lifetime nobody states is never "valid forever" (issue 9, item 2).

A token response without `expires_in` (Salesforce's never has one) gets the provider's documented
lifetime when its preset knows it (Salesforce: the session timeout, 2 hours by default), else
TOKENADMIN_DEFAULT_ACCESS_LIFETIME with the source `assumed`; on the code exchange and on every
refresh alike, and the API and the dashboard say where the expiry came from.
"""

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from connections.authorize import complete_authorization, start_authorization
from connections.lifecycle import refresh_connection
from connections.models import ApiKey, Connection, ExpirySource, Provider, RefreshAttempt
from connections.presets import provider_from_preset
from tests.factories import ConnectionFactory, ProviderFactory
from tests.providers.token_endpoint import TokenEndpoint, unsigned_jwt

pytestmark = pytest.mark.django_db

NO_EXPIRES_IN = {"access_token": "access-1", "token_type": "Bearer", "refresh_token": "refresh-1"}
TOLERANCE = timedelta(seconds=5)


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint(dict(NO_EXPIRES_IN)) as server:
        yield server


@pytest.fixture
def short_default(settings) -> timedelta:
    settings.TOKENADMIN = settings.TOKENADMIN | {"DEFAULT_ACCESS_LIFETIME": 900}
    return timedelta(seconds=900)


def at_endpoint(provider: Provider, endpoint: TokenEndpoint) -> Provider:
    Provider.objects.filter(pk=provider.pk).update(
        authorize_url=endpoint.base_url + "/authorize", token_url=endpoint.token_url
    )
    provider.refresh_from_db()
    return provider


def consent(connection: Connection, endpoint: TokenEndpoint) -> Connection:
    """The code exchange of a first consent, with an id_token naming the account."""
    endpoint.reply = NO_EXPIRES_IN | {
        "id_token": unsigned_jwt({"sub": "acct-1", "aud": connection.client_id})
    }
    url = start_authorization(connection, browser_secret="browser-1")
    state = parse_qs(urlsplit(url).query)["state"][0]
    done = complete_authorization(state=state, code="code-1", error="", browser_secret="browser-1")
    assert done.held is None
    return done.connection


def refresh(connection: Connection) -> Connection:
    return refresh_connection(connection, trigger=RefreshAttempt.Trigger.FORCED, force=True)


def assert_expires_in(connection: Connection, lifetime: timedelta, source: str) -> None:
    assert connection.access_expiry_source == source
    assert connection.access_expires_at is not None
    left = connection.access_expires_at - timezone.now()
    assert lifetime - TOLERANCE < left <= lifetime


def test_the_code_exchange_assumes_the_configured_default(endpoint, short_default):
    connection = ConnectionFactory(provider=at_endpoint(ProviderFactory(), endpoint))
    connection = consent(connection, endpoint)
    assert_expires_in(connection, short_default, ExpirySource.ASSUMED)
    # So it is refreshed ahead of time like any other token, never served as valid forever.
    later = timezone.now() + short_default - timedelta(seconds=60)
    assert not connection.access_token_valid_for(connection.refresh_threshold, now=later)


def test_every_refresh_assumes_the_configured_default(endpoint, short_default):
    connection = ConnectionFactory(
        authorized=True, provider=at_endpoint(ProviderFactory(), endpoint)
    )
    for _ in range(2):
        connection = refresh(connection)
        assert_expires_in(connection, short_default, ExpirySource.ASSUMED)


def test_a_stated_lifetime_still_wins(endpoint, short_default):
    connection = ConnectionFactory(
        authorized=True, provider=at_endpoint(ProviderFactory(), endpoint)
    )
    endpoint.reply = NO_EXPIRES_IN | {"expires_in": 60}
    assert_expires_in(refresh(connection), timedelta(seconds=60), ExpirySource.RESPONSE)


def test_salesforce_tokens_live_the_default_session_timeout(endpoint, short_default):
    provider = provider_from_preset("salesforce", params={"host": "login.salesforce.com"})
    assert provider.access_token_lifetime == timedelta(hours=2)
    connection = ConnectionFactory(provider=at_endpoint(provider, endpoint))
    connection = consent(connection, endpoint)
    assert_expires_in(connection, timedelta(hours=2), ExpirySource.POLICY)
    assert_expires_in(refresh(connection), timedelta(hours=2), ExpirySource.POLICY)


def test_the_api_and_the_dashboard_say_the_expiry_was_assumed(
    endpoint, short_default, admin_client
):
    connection = ConnectionFactory(
        authorized=True, provider=at_endpoint(ProviderFactory(), endpoint)
    )
    refresh(connection)
    _, raw_key = ApiKey.issue(name="pipeline", connections=[connection])
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    body = api.get(f"/api/v1/connections/{connection.slug}").json()
    assert body["access_expiry_source"] == "assumed"

    page = admin_client.get(f"/connections/{connection.slug}/").content.decode()
    assert "from assumed (default lifetime)" in page
