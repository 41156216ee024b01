"""Signed, single-use reauthorization links, opened by a browser against the real test server."""

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone

from connections.links import build_reauth_link, resolve_reauth_link
from connections.models import AuthorizationRequest, Connection, ReauthLink
from tests.authserver.harness import AuthServer


def local(url: str) -> str:
    assert url.startswith("http://testserver/reauth/"), url
    return url.removeprefix("http://testserver")


def finish(browser: Client, callback: str):
    """Follow the provider's redirect back to our callback in `browser`."""
    assert callback.startswith("http://testserver/oauth/callback/?"), callback
    return browser.get(callback.removeprefix("http://testserver"))


def token_of(url: str) -> str:
    return local(url).removeprefix("/reauth/").rstrip("/")


def assert_no_secrets(html: str, connection: Connection) -> None:
    c = Connection.objects.get(pk=connection.pk)
    for value in (c.access_token, c.refresh_token, c.client_secret):
        if value:
            assert value not in html


@pytest.fixture
def server(auth_server_clean: AuthServer) -> AuthServer:
    return auth_server_clean


def test_it_redirects_a_fresh_link_to_the_provider(dot_connection, server):
    link = build_reauth_link(dot_connection)
    assert link.startswith(settings.SITE_URL + "/reauth/")
    response = Client().get(local(link))
    assert response.status_code == 302
    assert response["Location"].startswith(server.authorize_url + "?")
    assert dot_connection.client_secret not in response["Location"]
    assert response["Cache-Control"].startswith("max-age=0")


def test_it_still_works_just_before_it_expires(dot_connection, server):
    issued_at = timezone.now()
    with time_machine.travel(issued_at, tick=False):
        link = build_reauth_link(dot_connection)
    days = settings.TOKENADMIN["REAUTH_LINK_DAYS"]
    with time_machine.travel(issued_at + timedelta(days=days, seconds=-1), tick=False):
        assert Client().get(local(link)).status_code == 302


def test_it_refuses_an_expired_link(dot_connection, server):
    issued_at = timezone.now()
    with time_machine.travel(issued_at, tick=False):
        link = build_reauth_link(dot_connection)
    days = settings.TOKENADMIN["REAUTH_LINK_DAYS"]
    with time_machine.travel(issued_at + timedelta(days=days), tick=False):
        response = Client().get(local(link))
    assert response.status_code == 410
    assert response.context["kind"] == "expired"
    assert "expired" in response.content.decode()
    assert not AuthorizationRequest.objects.filter(connection=dot_connection).exists()


def test_it_refuses_a_consumed_link(dot_connection, server):
    browser = Client()
    link = build_reauth_link(dot_connection)
    callback = server.consent(browser.get(local(link))["Location"])
    assert finish(browser, callback).status_code == 200

    response = browser.get(local(link))
    html = response.content.decode()
    assert response.status_code == 410
    assert response.context["kind"] == "consumed"
    assert "already used" in html
    assert_no_secrets(html, dot_connection)
    assert AuthorizationRequest.objects.filter(connection=dot_connection).count() == 1


def test_it_refuses_a_tampered_link(dot_connection, server):
    link = build_reauth_link(dot_connection)
    token = token_of(link)
    for i in (0, len(token) // 2, len(token) - 1):
        flipped = "A" if token[i] != "A" else "B"
        tampered = token[:i] + flipped + token[i + 1 :]
        response = Client().get(f"/reauth/{tampered}/")
        assert response.status_code == 400, (i, tampered)
        assert response.context["kind"] == "invalid"
    assert not AuthorizationRequest.objects.exists()
    # The genuine link is unaffected.
    assert Client().get(local(link)).status_code == 302


def test_it_refuses_a_validly_signed_link_that_was_never_issued(dot_connection, server):
    from django.core import signing

    from connections.links import SALT

    token = signing.dumps("a-nonce-nobody-stored", salt=SALT, compress=False)
    response = Client().get(f"/reauth/{token}/")
    assert response.status_code == 400
    assert response.context["kind"] == "invalid"


def test_it_is_not_consumed_by_opening_it(dot_connection, server):
    link = build_reauth_link(dot_connection)
    scanner = Client()
    assert scanner.get(local(link)).status_code == 302
    assert scanner.get(local(link)).status_code == 302
    assert resolve_reauth_link(token_of(link)).consumed_at is None

    person = Client()
    callback = server.consent(person.get(local(link))["Location"])
    assert finish(person, callback).status_code == 200
    assert ReauthLink.objects.get(connection=dot_connection).consumed_at is not None
    assert Connection.objects.get(pk=dot_connection.pk).status == Connection.Status.ACTIVE


def test_it_cannot_complete_a_second_flow_after_the_link_was_consumed(dot_connection, server):
    # Two tabs open the same link; both reach consent; the first to come back wins.
    link = build_reauth_link(dot_connection)
    browser = Client()
    first = server.consent(browser.get(local(link))["Location"])
    second = server.consent(browser.get(local(link))["Location"])
    assert finish(browser, first).status_code == 200
    stored = Connection.objects.get(pk=dot_connection.pk)

    response = finish(browser, second)
    assert response.status_code == 400
    assert response.context["kind"] == "link_used"
    after = Connection.objects.get(pk=dot_connection.pk)
    assert (after.access_token, after.refresh_token, after.version) == (
        stored.access_token,
        stored.refresh_token,
        stored.version,
    )
    # Refused before the code was exchanged: no second grant exists at the provider.
    assert server.stats()["code_calls"] == 1
    assert_no_secrets(response.content.decode(), dot_connection)


def test_it_binds_a_link_to_its_own_connection(dot_connection, dot_provider, server, settings):
    client_id, client_secret = server.register_client(settings.SITE_URL + "/oauth/callback/")
    other = Connection.objects.create(
        name="Other",
        slug="other",
        provider=dot_provider,
        client_id=client_id,
        client_secret=client_secret,
    )
    link = build_reauth_link(other)
    browser = Client()
    authorize_url = browser.get(local(link))["Location"]
    assert f"client_id={client_id}" in authorize_url
    assert finish(browser, server.consent(authorize_url)).status_code == 200
    assert Connection.objects.get(pk=other.pk).status == Connection.Status.ACTIVE
    assert Connection.objects.get(pk=dot_connection.pk).status == Connection.Status.PENDING
