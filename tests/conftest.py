import os
import shutil

import pytest
from django.test import Client

from connections.models import Connection, Provider
from tests.authserver.harness import AuthServer
from tests.factories import provider_for

pytest_plugins = ["tests.authserver.pytest_plugin"]

IS_POSTGRES = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Debian's Chromium run headless by Playwright (`playwright install` cannot download here).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_pg = pytest.mark.skip(
        reason="needs PostgreSQL: set DATABASE_URL=postgres://postgres@127.0.0.1:5432/tokenadmin"
    )
    skip_browser = pytest.mark.skip(
        reason="needs Chromium: apt-get install chromium (expected at /usr/bin/chromium)"
    )
    for item in items:
        if "postgres" in item.keywords and not IS_POSTGRES:
            item.add_marker(skip_pg)
        if "browser" in item.keywords and not os.path.exists(CHROMIUM):
            item.add_marker(skip_browser)


@pytest.fixture
def dot_provider(db, auth_server: AuthServer) -> Provider:
    """A Provider pointing at the test authorization server (django-oauth-toolkit)."""
    return provider_for(auth_server, name="Test authorization server")


@pytest.fixture
def dot_connection(dot_provider: Provider, auth_server: AuthServer, settings) -> Connection:
    """A pending connection with a client registered at the test authorization server."""
    client_id, client_secret = auth_server.register_client(settings.SITE_URL + "/oauth/callback/")
    return Connection.objects.create(
        name="Analytics export",
        slug="analytics",
        provider=dot_provider,
        client_id=client_id,
        client_secret=client_secret,
    )


def authorize_through_link(
    connection: Connection,
    auth_server: AuthServer,
    *,
    client: Client | None = None,
    username: str = "alice",
):
    """Open a reauthorization link, consent at the server as `username`, finish the callback."""
    from connections.links import build_reauth_link

    client = client or Client()
    link = build_reauth_link(connection)
    response = client.get(link.removeprefix("http://testserver"))
    assert response.status_code == 302, response.content
    callback = auth_server.consent(response["Location"], username=username)
    return client.get(callback.removeprefix("http://testserver"))


@pytest.fixture
def authorized_connection(dot_connection: Connection, auth_server_clean: AuthServer) -> Connection:
    response = authorize_through_link(dot_connection, auth_server_clean)
    assert response.status_code == 200, response.content.decode()
    dot_connection.refresh_from_db()
    assert dot_connection.status == Connection.Status.ACTIVE
    return dot_connection
