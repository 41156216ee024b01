"""A consent trip happens on SITE_URL's host name (connections/site.py).

SITE_URL here is `http://localhost:18700`; the same site is also allowed as `127.0.0.1`, the
name a person may type instead. The Django test Client stands in for the browser: one Client is
one cookie jar, and `HTTP_HOST` says which name a request was made to.
"""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.test import Client

from connections.links import build_reauth_link
from connections.models import AuthorizationRequest, Connection, StatusChange
from tests.authserver.harness import AuthServer

SITE = "http://localhost:18700"
OTHER = "http://127.0.0.1:18700"


@pytest.fixture
def site(settings) -> str:
    settings.SITE_URL = SITE
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    return SITE


@pytest.fixture
def server(auth_server_clean: AuthServer) -> AuthServer:
    return auth_server_clean


@pytest.fixture
def connection(site: str, dot_provider, server: AuthServer) -> Connection:
    client_id, client_secret = server.register_client(site + "/oauth/callback/")
    return Connection.objects.create(
        name="Analytics export",
        slug="analytics",
        provider=dot_provider,
        client_id=client_id,
        client_secret=client_secret,
    )


def at(origin: str, url: str) -> tuple[str, dict[str, str]]:
    """`url`'s path and query, and the Host header of `origin`: the same URL on another name."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return path, {"HTTP_HOST": urlsplit(origin).netloc}


def open_at(browser: Client, origin: str, url: str, **extra):
    path, host = at(origin, url)
    return browser.get(path, **host, **extra)


def assert_nothing_stored(connection: Connection) -> None:
    c = Connection.objects.get(pk=connection.pk)
    assert (c.status, c.access_token, c.refresh_token, c.version) == ("pending", "", "", 0)
    assert not StatusChange.objects.filter(connection=c).exists()


# --- the link --------------------------------------------------------------------------------
def test_a_link_opened_on_another_host_name_goes_to_site_url_before_any_session(connection):
    link = build_reauth_link(connection)
    browser = Client()

    response = open_at(browser, OTHER, link)

    assert response.status_code == 302
    assert response["Location"] == link + "?site_redirect=1"
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-cache" in response["Cache-Control"]
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert not AuthorizationRequest.objects.exists()


def test_the_redirected_link_starts_the_trip_on_site_url(connection, server):
    browser = Client()
    moved = open_at(browser, OTHER, build_reauth_link(connection))["Location"]

    response = open_at(browser, SITE, moved)

    assert response.status_code == 302
    assert response["Location"].startswith(server.authorize_url + "?")
    redirect_uri = parse_qs(urlsplit(response["Location"]).query)["redirect_uri"]
    assert redirect_uri == [SITE + "/oauth/callback/"]
    assert AuthorizationRequest.objects.filter(connection=connection).count() == 1


def test_another_port_of_the_same_host_name_is_not_redirected(connection, server):
    # Cookies do not care about ports (RFC 6265 §8.5): the session is shared, nothing to fix.
    response = open_at(Client(), "http://localhost:8000", build_reauth_link(connection))
    assert response.status_code == 302
    assert response["Location"].startswith(server.authorize_url)


def test_a_link_on_site_url_is_served_as_before(connection, server):
    response = open_at(Client(), SITE, build_reauth_link(connection))
    assert response["Location"].startswith(server.authorize_url)


def test_a_broken_link_on_another_host_name_is_explained_on_site_url(connection):
    response = open_at(Client(), OTHER, SITE + "/reauth/not-a-token/")
    assert response["Location"] == SITE + "/reauth/not-a-token/?site_redirect=1"
    page = open_at(Client(), SITE, response["Location"])
    assert page.status_code == 400
    assert page.context["kind"] == "invalid"


# --- never an open redirect ------------------------------------------------------------------
def test_a_host_outside_allowed_hosts_is_refused_not_redirected(connection):
    response = Client().get(at(SITE, build_reauth_link(connection))[0], HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert "Location" not in response
    assert not AuthorizationRequest.objects.exists()


@pytest.mark.parametrize(
    "path",
    ["/reauth/x/", "/reauth/%5C%5Cevil.example/", "/reauth/@evil.example/", "/reauth/x/?a=//evil"],
)
def test_the_redirect_goes_to_site_url_whatever_the_request_says(site, settings, path):
    settings.ALLOWED_HOSTS = ["*"]
    response = Client().get(
        path, HTTP_HOST="evil.example", HTTP_X_FORWARDED_HOST="evil.example", secure=True
    )
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert (location.scheme, location.netloc) == ("http", "localhost:18700")
    assert response["Location"].startswith(SITE + "/reauth/")


# --- a proxy that rewrites Host --------------------------------------------------------------
def test_a_redirect_that_lands_on_another_host_name_again_is_served_there_once(
    connection, server, caplog
):
    moved = open_at(Client(), OTHER, build_reauth_link(connection))["Location"]

    # A proxy that sends its own Host upstream: the request for SITE_URL arrives as 127.0.0.1.
    with caplog.at_level("WARNING", logger="connections.site"):
        response = open_at(Client(), OTHER, moved)

    assert response.status_code == 302
    assert response["Location"].startswith(server.authorize_url)  # no loop: served here
    assert "proxy_set_header Host" in caplog.text
    assert "site_redirect" not in response["Location"]


# --- the dashboard's Authorize ---------------------------------------------------------------
def test_authorize_on_another_host_name_hands_the_trip_to_site_url(connection, server, admin_user):
    staff = Client()
    staff.force_login(admin_user)
    session_before = staff.cookies[settings.SESSION_COOKIE_NAME].value

    response = staff.post(f"/connections/{connection.slug}/authorize/", **at(OTHER, "/")[1])

    assert response.status_code == 302
    assert response["Location"].startswith(SITE + "/reauth/")
    # Nothing of the trip in the other host name's session: it is neither written nor renewed.
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert staff.cookies[settings.SESSION_COOKIE_NAME].value == session_before
    assert not AuthorizationRequest.objects.exists()
    # On SITE_URL's host the link starts the trip at once.
    started = open_at(Client(), SITE, response["Location"])
    assert started["Location"].startswith(server.authorize_url)


def test_a_get_of_authorize_on_another_host_name_is_still_refused(connection, admin_user):
    staff = Client()
    staff.force_login(admin_user)
    response = staff.get(f"/connections/{connection.slug}/authorize/", **at(OTHER, "/")[1])
    assert response.status_code == 405


# --- a callback on another host name ---------------------------------------------------------
def test_a_callback_on_another_host_name_says_which_address_to_use(connection, server):
    browser = Client()
    authorize_url = open_at(browser, SITE, build_reauth_link(connection))["Location"]
    callback = server.consent(authorize_url)

    # The same person, but on the other name: this cookie jar has no session there.
    response = open_at(Client(), OTHER, callback)

    assert response.status_code == 400
    assert response.context["kind"] == "wrong_browser"
    message = response.context["message"]
    assert f"Open tokenadmin at {SITE} and start the authorization again" in message
    assert f"not from {OTHER}" in message
    assert "another browser" not in message
    assert message in response.content.decode()
    assert_nothing_stored(connection)
    assert server.stats()["code_calls"] == 0
    # The trip itself is intact: on SITE_URL, in the browser that began it, it completes.
    assert open_at(browser, SITE, callback).status_code == 200
    assert Connection.objects.get(pk=connection.pk).status == Connection.Status.ACTIVE


def test_a_forged_callback_on_another_host_name_is_still_refused(connection, server):
    open_at(Client(), SITE, build_reauth_link(connection))
    response = Client().get("/oauth/callback/?state=forged&code=x", **at(OTHER, "/")[1])
    assert response.status_code == 400
    assert response.context["kind"] == "unknown_state"
    assert "does not match any authorization" in response.context["message"]
    assert f"Open tokenadmin at {SITE}" in response.context["message"]
    assert_nothing_stored(connection)
    assert server.stats()["code_calls"] == 0


def test_a_callback_on_site_url_keeps_its_own_message(connection, server):
    callback = server.consent(open_at(Client(), SITE, build_reauth_link(connection))["Location"])
    response = open_at(Client(), SITE, callback)
    assert response.context["kind"] == "wrong_browser"
    assert "another browser" in response.context["message"]
    assert "Open tokenadmin at" not in response.context["message"]
