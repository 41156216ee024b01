"""Helpers for the token-serving tests (API, CLI, failover, rejected tokens)."""

from datetime import timedelta

from django.conf import settings
from django.test import Client
from django.utils import timezone

from connections.models import Connection, Provider
from tests.authserver.harness import AuthServer


def api_client(raw_key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")


def expire_in(connection: Connection, seconds: float) -> None:
    """Make the hour-long access token have `seconds` left, as if issued an hour before that."""
    expires_at = timezone.now() + timedelta(seconds=seconds)
    Connection.objects.filter(pk=connection.pk).update(
        access_expires_at=expires_at, last_refreshed_at=expires_at - timedelta(hours=1)
    )


def reload(connection: Connection) -> Connection:
    return Connection.objects.select_related("provider").get(pk=connection.pk)


def authorized_at_server(
    auth_server: AuthServer, provider: Provider, *, slug: str, username: str
) -> Connection:
    """A connection with a client of its own at the test server, authorized by `username`."""
    from tests.conftest import authorize_through_link

    client_id, client_secret = auth_server.register_client(settings.SITE_URL + "/oauth/callback/")
    connection = Connection.objects.create(
        name=slug.title(),
        slug=slug,
        provider=provider,
        client_id=client_id,
        client_secret=client_secret,
    )
    response = authorize_through_link(connection, auth_server, username=username)
    assert response.status_code == 200, response.content.decode()
    connection = reload(connection)
    assert connection.status == Connection.Status.ACTIVE
    return connection
