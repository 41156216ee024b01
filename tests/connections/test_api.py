from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from connections.models import ApiKey, Connection
from tests.factories import ConnectionFactory


def _client_with(raw_key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")


@pytest.fixture
def key_for_authorized(authorized_connection):
    _, raw_key = ApiKey.issue(name="pipeline", connections=[authorized_connection])
    return raw_key


def test_it_serves_a_valid_token_without_secrets(authorized_connection, key_for_authorized):
    response = _client_with(key_for_authorized).get("/api/v1/connections/analytics/token")
    assert response.status_code == 200
    body = response.json()
    authorized_connection.refresh_from_db()
    assert body["access_token"] == authorized_connection.access_token
    assert body["connection"] == body["served_by"] == "analytics"
    assert body["status"] == "active"
    assert 3500 < body["expires_in"] <= 3600
    text = response.content.decode()
    assert authorized_connection.refresh_token not in text
    assert authorized_connection.client_secret not in text


def test_it_refreshes_when_min_ttl_is_not_met(
    authorized_connection, key_for_authorized, auth_server_clean
):
    # An hour-long token with 20 minutes left: fine by default, not for a 30-minute job.
    now = timezone.now()
    Connection.objects.filter(pk=authorized_connection.pk).update(
        access_expires_at=now + timedelta(minutes=20), last_refreshed_at=now - timedelta(minutes=40)
    )
    client = _client_with(key_for_authorized)
    unchanged = client.get("/api/v1/connections/analytics/token").json()
    assert unchanged["access_token"] == authorized_connection.access_token
    response = client.get("/api/v1/connections/analytics/token?min_ttl=1800")
    assert response.status_code == 200
    assert response.json()["access_token"] != authorized_connection.access_token
    assert response.json()["expires_in"] >= 1800
    assert auth_server_clean.stats()["refresh_calls"] == 1


def test_it_does_not_refresh_again_for_a_min_ttl_beyond_the_token_lifetime(
    authorized_connection, key_for_authorized, auth_server_clean
):
    # The provider's tokens live an hour; asking for two hours cannot be met by refreshing, so a
    # fresh token is served instead of calling the provider on every request.
    client = _client_with(key_for_authorized)
    for _ in range(3):
        response = client.get("/api/v1/connections/analytics/token?min_ttl=7200")
        assert response.status_code == 200
    assert response.json()["access_token"] == authorized_connection.access_token
    assert auth_server_clean.stats()["refresh_calls"] == 0


def test_it_forces_a_refresh_on_post(authorized_connection, key_for_authorized, auth_server_clean):
    old = authorized_connection.access_token
    response = _client_with(key_for_authorized).post("/api/v1/connections/analytics/refresh")
    assert response.status_code == 200
    assert response.json()["access_token"] != old
    assert auth_server_clean.stats()["refresh_calls"] == 1


@pytest.mark.django_db
def test_it_rejects_missing_and_wrong_keys():
    ConnectionFactory(slug="analytics", authorized=True)
    for client in (Client(), _client_with("tka_wrong"), Client(HTTP_AUTHORIZATION="Basic x")):
        response = client.get("/api/v1/connections/analytics/token")
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_it_rejects_revoked_keys():
    connection = ConnectionFactory(slug="analytics", authorized=True)
    key, raw_key = ApiKey.issue(name="old", connections=[connection])
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    assert _client_with(raw_key).get("/api/v1/connections/analytics/token").status_code == 401


@pytest.mark.django_db
def test_it_forbids_connections_outside_the_keys_scope():
    ConnectionFactory(slug="analytics", authorized=True)
    other = ConnectionFactory(slug="billing", authorized=True)
    _, raw_key = ApiKey.issue(name="billing-only", connections=[other])
    response = _client_with(raw_key).get("/api/v1/connections/analytics/token")
    assert response.status_code == 403
    listed = _client_with(raw_key).get("/api/v1/connections").json()["connections"]
    assert [c["slug"] for c in listed] == ["billing"]


@pytest.mark.django_db
def test_it_answers_404_for_unknown_connections():
    _, raw_key = ApiKey.issue(name="all", all_connections=True)
    response = _client_with(raw_key).get("/api/v1/connections/nope/token")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.django_db
def test_it_answers_409_when_a_person_must_act():
    ConnectionFactory(slug="fresh")
    ConnectionFactory(
        slug="dead",
        authorized=True,
        status=Connection.Status.NEEDS_REAUTH,
        access_expires_at=timezone.now() - timedelta(minutes=1),
    )
    _, raw_key = ApiKey.issue(name="all", all_connections=True)
    client = _client_with(raw_key)
    pending = client.get("/api/v1/connections/fresh/token")
    assert (pending.status_code, pending.json()["error"]) == (409, "not_authorized")
    dead = client.get("/api/v1/connections/dead/token")
    assert (dead.status_code, dead.json()["error"]) == (409, "needs_reauth")


@pytest.mark.django_db
def test_it_validates_min_ttl():
    ConnectionFactory(slug="analytics", authorized=True)
    _, raw_key = ApiKey.issue(name="all", all_connections=True)
    # Also blank, a sign, a space and an Arabic-Indic five, which int() alone would take.
    for bad in ("abc", "-5", "999999", "", "+5", "%205", "%D9%A5"):
        response = _client_with(raw_key).get(f"/api/v1/connections/analytics/token?min_ttl={bad}")
        assert response.status_code == 400


def test_it_answers_503_with_retry_after_when_the_provider_is_down(
    authorized_connection, key_for_authorized, auth_server_clean
):
    Connection.objects.filter(pk=authorized_connection.pk).update(
        access_expires_at=timezone.now() - timedelta(seconds=1)
    )
    auth_server_clean.set_fault("503_retry_after", count=1)
    response = _client_with(key_for_authorized).get("/api/v1/connections/analytics/token")
    assert response.status_code == 503
    assert response.json()["error"] == "provider_unavailable"
    assert int(response["Retry-After"]) >= 7


def test_it_serves_the_backup_only_to_a_key_allowed_the_backup(
    authorized_connection, auth_server_clean
):
    # The old view served the backup to any key that could use the primary (issue 6).
    backup = ConnectionFactory(slug="analytics-backup", authorized=True)
    Connection.objects.filter(pk=authorized_connection.pk).update(
        backup=backup,
        status=Connection.Status.NEEDS_REAUTH,
        access_expires_at=timezone.now() - timedelta(seconds=1),
    )
    _, primary_only = ApiKey.issue(name="pipeline", connections=[authorized_connection])
    refused = _client_with(primary_only).get("/api/v1/connections/analytics/token")
    assert (refused.status_code, refused.json()["error"]) == (409, "needs_reauth")
    assert backup.access_token not in refused.content.decode()

    _, both = ApiKey.issue(name="both", connections=[authorized_connection, backup])
    served = _client_with(both).get("/api/v1/connections/analytics/token").json()
    assert served["served_by"] == "analytics-backup"
    assert served["access_token"] == backup.access_token
    assert served["status"] == "needs_reauth"


@pytest.mark.django_db
def test_a_409_says_what_a_person_must_do_next_without_a_link(settings):
    settings.SITE_URL = "https://tokens.example.com"
    refresh_expires_at = timezone.now() + timedelta(days=3)
    ConnectionFactory(
        slug="dead",
        authorized=True,
        status=Connection.Status.NEEDS_REAUTH,
        status_reason="invalid_grant: revoked",
        refresh_expires_at=refresh_expires_at,
        refresh_expiry_override="absolute",
    )
    _, raw_key = ApiKey.issue(name="all", all_connections=True)
    response = _client_with(raw_key).get("/api/v1/connections/dead/token")
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "needs_reauth"
    assert body["connection"] == "dead"
    assert body["status_reason"] == "invalid_grant: revoked"
    assert body["reauthorize_by"] == refresh_expires_at.isoformat().replace("+00:00", "Z")
    assert body["reauthorize_by_source"] == "absolute_expiry"
    assert body["dashboard_url"].startswith("https://tokens.example.com/")
    assert "dead" in body["dashboard_url"]
    assert "Reauthorize" in body["next_step"]
    assert "/reauth/" not in response.content.decode()


@pytest.mark.django_db
def test_a_409_for_a_disabled_connection_says_an_admin_must_enable_it():
    ConnectionFactory(slug="off", authorized=True, status=Connection.Status.DISABLED)
    _, raw_key = ApiKey.issue(name="all", all_connections=True)
    response = _client_with(raw_key).get("/api/v1/connections/off/token")
    assert (response.status_code, response.json()["error"]) == (409, "disabled")
    assert "Enable" in response.json()["next_step"]


@pytest.mark.django_db
def test_it_lists_connections_with_a_constant_number_of_queries(django_assert_max_num_queries):
    connections = ConnectionFactory.create_batch(15, authorized=True)
    _, raw_key = ApiKey.issue(name="all", all_connections=True)
    with django_assert_max_num_queries(4):
        response = _client_with(raw_key).get("/api/v1/connections")
    assert len(response.json()["connections"]) == len(connections)
