"""The token endpoint's hot path (issue 6, item 4): one query for a valid token, nothing cached.

`connections.token_lookup` authenticates the key, checks its scope and reads the serving columns
in one statement; the full row is read only when a refresh or a failover is needed.
"""

from datetime import timedelta

import pytest
import time_machine
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from connections import services
from connections.models import ApiKey, Connection
from connections.token_lookup import CONNECTION_FIELDS, lookup_token
from tests.factories import ConnectionFactory
from tests.support.tokens import api_client, expire_in, reload

URL = "/api/v1/connections/analytics/token"
SECRET_COLUMNS = ("refresh_token_encrypted", "client_secret_encrypted")


@pytest.fixture
def analytics(db) -> Connection:
    connection = ConnectionFactory(slug="analytics", authorized=True)
    Connection.objects.filter(pk=connection.pk).update(last_refreshed_at=timezone.now())
    return reload(connection)


@pytest.fixture
def key(analytics) -> tuple[ApiKey, str]:
    return ApiKey.issue(name="pipeline", connections=[analytics])


def test_a_valid_token_costs_one_query(analytics, key, django_assert_num_queries):
    api_key, raw_key = key
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
    client = api_client(raw_key)
    with django_assert_num_queries(1):
        response = client.get(URL)
    assert response.status_code == 200
    assert response.json()["access_token"] == analytics.access_token
    assert response.json()["served_by"] == "analytics"


def test_a_valid_token_never_reads_the_refresh_token_or_the_client_secret(analytics, key):
    with CaptureQueriesContext(db_connection) as queries:
        response = api_client(key[1]).get(URL)
    assert response.status_code == 200
    for query in queries.captured_queries:
        for column in SECRET_COLUMNS:
            assert column not in query["sql"]


def test_a_key_in_use_is_marked_used_at_most_once_a_minute(analytics, key):
    api_key, raw_key = key
    client = api_client(raw_key)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        client.get(URL)
        first = ApiKey.objects.get(pk=api_key.pk).last_used_at
        assert first == timezone.now()
        clock.shift(timedelta(seconds=59))
        client.get(URL)
        assert ApiKey.objects.get(pk=api_key.pk).last_used_at == first
        clock.shift(timedelta(seconds=2))
        client.get(URL)
        assert ApiKey.objects.get(pk=api_key.pk).last_used_at == timezone.now()


def test_no_key_costs_no_query(analytics, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = api_client("").get(URL)
    assert response.status_code == 401


def test_a_revoked_key_is_refused_on_the_very_next_request(analytics, key):
    api_key, raw_key = key
    client = api_client(raw_key)
    assert client.get(URL).status_code == 200
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now())
    response = client.get(URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_connection_taken_out_of_the_keys_scope_is_refused_at_once(analytics, key):
    api_key, raw_key = key
    client = api_client(raw_key)
    assert client.get(URL).status_code == 200
    api_key.connections.clear()
    assert client.get(URL).status_code == 403


def test_a_key_for_all_connections_is_allowed(analytics):
    _, raw_key = ApiKey.issue(name="all", all_connections=True)
    assert api_client(raw_key).get(URL).status_code == 200


@pytest.mark.parametrize("status", [Connection.Status.DISABLED, Connection.Status.NEEDS_REAUTH])
def test_a_status_change_takes_effect_on_the_very_next_request(analytics, key, status):
    client = api_client(key[1])
    assert client.get(URL).status_code == 200
    Connection.objects.filter(pk=analytics.pk).update(status=status)  # the token is still valid
    response = client.get(URL)
    assert (response.status_code, response.json()["error"]) == (409, status)
    assert analytics.access_token not in response.content.decode()


def test_an_unknown_slug_is_404_for_a_good_key_and_401_for_a_bad_one(analytics, key):
    response = api_client(key[1]).get("/api/v1/connections/nope/token")
    assert (response.status_code, response.json()["error"]) == (404, "not_found")
    assert api_client("tka_wrong").get("/api/v1/connections/nope/token").status_code == 401


def test_a_wrong_key_is_401_before_anything_about_the_connection(analytics):
    other = ConnectionFactory(slug="other", authorized=True)
    ApiKey.issue(name="other", connections=[other])
    response = api_client("tka_wrong").get(URL)
    assert response.status_code == 401
    assert analytics.access_token not in response.content.decode()


def test_an_expiring_token_takes_the_full_path_and_is_refreshed(
    authorized_connection, auth_server_clean
):
    _, raw_key = ApiKey.issue(name="pipeline", connections=[authorized_connection])
    expire_in(authorized_connection, 10)
    response = api_client(raw_key).get(URL)
    assert response.status_code == 200
    assert response.json()["access_token"] == reload(authorized_connection).access_token
    assert response.json()["access_token"] != authorized_connection.access_token
    assert auth_server_clean.stats()["refresh_calls"] == 1


def test_the_lookup_row_serves_the_same_payload_as_the_full_row(analytics, key):
    # The payload's facts (status, reauthorize-by) come from the partial row on the hot path:
    # they must read as the full row does.
    Connection.objects.filter(pk=analytics.pk).update(
        refresh_expires_at=timezone.now() + timedelta(days=30),
        refresh_hard_expires_at=timezone.now() + timedelta(days=20),
        status=Connection.Status.EXPIRING,
    )
    body = api_client(key[1]).get(URL).json()
    full = services.token_serve(connection=reload(analytics))
    assert body["status"] == full.connection.status == "expiring"
    assert body["reauthorize_by"] == (
        full.connection.reauthorize_by.isoformat().replace("+00:00", "Z")
    )


def test_the_driver_path_reads_what_djangos_cursor_reads(analytics, key):
    # Unless queries are being logged, the lookup skips Django's cursor wrapper; a test that
    # counts queries goes through it. Both must read the same.
    api_key, raw_key = key
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
    direct = lookup_token(slug="analytics", key_hash=ApiKey.hash_key(raw_key))
    with CaptureQueriesContext(db_connection) as queries:
        logged = lookup_token(slug="analytics", key_hash=ApiKey.hash_key(raw_key))
    assert len(queries) == 1
    assert direct is not None and logged is not None
    for name in CONNECTION_FIELDS:
        assert getattr(direct.connection, name) == getattr(logged.connection, name), name
    assert direct.connection.access_token == analytics.access_token
    assert direct.connection.access_expires_at == analytics.access_expires_at
    assert (direct.key.pk, direct.key.last_used_at) == (logged.key.pk, logged.key.last_used_at)
    assert direct.key_allowed is logged.key_allowed is True
