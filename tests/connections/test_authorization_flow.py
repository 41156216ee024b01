"""The authorization code flow against the real test authorization server (django-oauth-toolkit).

Each test drives a browser (a django test Client) through a reauthorization link, the provider's
login and consent (the harness), and our callback; failures must store nothing.
"""

import hashlib
import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import time_machine
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from django.test import Client

from connections.authorize import REQUEST_LIFETIME
from connections.links import build_reauth_link, resolve_reauth_link
from connections.models import AuthorizationRequest, Connection, ReauthLink, StatusChange
from tests.authserver.harness import AuthServer

CALLBACK = "http://testserver/oauth/callback/"


def local(url: str) -> str:
    """The path and query of one of our own absolute URLs, for the test Client."""
    assert url.startswith("http://testserver/"), url
    return url.removeprefix("http://testserver")


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def start(connection: Connection, browser: Client, link: str | None = None) -> str:
    """Open a (new) reauthorization link; return the provider authorize URL it redirects to."""
    link = link or build_reauth_link(connection)
    response = browser.get(local(link))
    assert response.status_code == 302, response.content.decode()
    return response["Location"]


def snapshot(connection: Connection) -> tuple:
    c = Connection.objects.get(pk=connection.pk)
    return (c.access_token, c.refresh_token, c.version, c.status, c.account_id)


def assert_nothing_stored(connection: Connection) -> None:
    c = Connection.objects.get(pk=connection.pk)
    assert c.status == Connection.Status.PENDING
    assert (c.access_token, c.refresh_token, c.version, c.account_id) == ("", "", 0, "")
    assert c.authorized_at is None
    assert not StatusChange.objects.filter(connection=c).exists()


def assert_no_secrets(html: str, *connections: Connection) -> None:
    for connection in connections:
        c = Connection.objects.get(pk=connection.pk)
        for value in (c.access_token, c.refresh_token, c.client_secret):
            if value:
                assert value not in html


def failure_kind(response) -> str:
    return response.context["kind"]


@pytest.fixture
def server(auth_server_clean: AuthServer) -> AuthServer:
    return auth_server_clean


@pytest.fixture
def consent_connection(dot_provider, server: AuthServer, settings) -> Connection:
    """A pending connection whose client makes the provider show its consent form."""
    client_id, client_secret = server.register_client(
        settings.SITE_URL + "/oauth/callback/", skip_authorization=False
    )
    return Connection.objects.create(
        name="Consent export",
        slug="consent-export",
        provider=dot_provider,
        client_id=client_id,
        client_secret=client_secret,
    )


# --- success ------------------------------------------------------------------------------
def test_it_sends_the_browser_to_the_provider_with_state_pkce_and_consent(dot_connection, server):
    authorize_url = start(dot_connection, Client())
    params = query(authorize_url)
    assert authorize_url.startswith(server.authorize_url + "?")
    assert params["response_type"] == "code"
    assert params["client_id"] == dot_connection.client_id
    assert params["redirect_uri"] == CALLBACK
    assert params["prompt"] == "consent"
    assert params["code_challenge_method"] == "S256"
    assert set(params["scope"].split()) == {"openid", "read", "offline_access"}
    request = AuthorizationRequest.objects.get(connection=dot_connection)
    assert request.state_hash == hashlib.sha256(params["state"].encode()).hexdigest()
    assert params["code_challenge"] == create_s256_code_challenge(request.code_verifier)
    assert dot_connection.client_secret not in authorize_url


def test_it_authorizes_through_a_reauth_link(dot_connection, server):
    browser = Client()
    callback = server.consent(start(dot_connection, browser), username="alice")
    assert callback.startswith(CALLBACK + "?")
    response = browser.get(local(callback))
    assert response.status_code == 200, response.content.decode()
    assert response.context["ok"] is True

    c = Connection.objects.get(pk=dot_connection.pk)
    assert c.access_token and c.refresh_token
    assert c.status == Connection.Status.ACTIVE
    assert c.account_id == "1"  # DOT's `sub` is alice's user pk
    assert c.authorized_at is not None and c.access_expires_at > c.authorized_at
    assert c.version == 1
    assert list(
        StatusChange.objects.filter(connection=c).values_list("from_status", "to_status")
    ) == [("pending", "active")]
    assert ReauthLink.objects.get(connection=c).consumed_at is not None
    request = AuthorizationRequest.objects.get(connection=c)
    assert request.outcome == "authorized"
    assert request.completed_at is not None
    assert server.stats()["code_calls"] == 1


def test_it_never_puts_tokens_or_the_secret_in_the_result_page(dot_connection, server):
    browser = Client()
    response = browser.get(local(server.consent(start(dot_connection, browser))))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Analytics export is connected" in html
    assert_no_secrets(html, dot_connection)
    assert query(response.wsgi_request.get_full_path())["code"] not in html


# --- the user or the provider says no -------------------------------------------------------
def test_it_stores_nothing_when_consent_is_declined(consent_connection, server):
    browser = Client()
    link = build_reauth_link(consent_connection)
    callback = server.consent(start(consent_connection, browser, link), approve=False)
    assert query(callback)["error"] == "access_denied"
    response = browser.get(local(callback))
    assert response.status_code == 400
    assert failure_kind(response) == "access_denied"
    assert "declined" in response.content.decode()
    assert_nothing_stored(consent_connection)
    assert ReauthLink.objects.get(connection=consent_connection).consumed_at is None
    assert "access_denied" in AuthorizationRequest.objects.get().outcome
    assert server.stats()["code_calls"] == 0

    # The same link still works for a second try.
    callback = server.consent(start(consent_connection, browser, link), approve=True)
    assert browser.get(local(callback)).status_code == 200
    assert Connection.objects.get(pk=consent_connection.pk).status == Connection.Status.ACTIVE


def test_it_reports_an_unreachable_provider_and_stores_nothing(dot_connection, server):
    browser = Client()
    link = build_reauth_link(dot_connection)
    callback = server.consent(start(dot_connection, browser, link))
    server.set_fault("500")
    response = browser.get(local(callback))
    assert response.status_code == 400
    assert "could not be reached" in response.content.decode()
    assert_nothing_stored(dot_connection)
    assert ReauthLink.objects.get(connection=dot_connection).consumed_at is None

    # Opening the link again succeeds once the provider is back.
    callback = server.consent(start(dot_connection, browser, link))
    assert browser.get(local(callback)).status_code == 200


def test_it_refuses_a_grant_without_a_refresh_token(dot_connection, server):
    browser = Client()
    callback = server.consent(start(dot_connection, browser))
    server.set_fault("no_refresh_token")
    response = browser.get(local(callback))
    html = response.content.decode()
    assert response.status_code == 400
    assert failure_kind(response) == "no_refresh_token"
    assert "issued no refresh token" in html
    # offline_access and prompt=consent were both sent: the hint points at the client's grants.
    assert "refresh_token grant" in html
    assert "offline_access" not in html
    assert_nothing_stored(dot_connection)
    assert ReauthLink.objects.get(connection=dot_connection).consumed_at is None


def test_it_hints_at_offline_access_and_prompt_consent_when_they_were_missing(
    dot_connection, server
):
    provider = dot_connection.provider
    provider.default_scopes = "openid read"
    provider.extra_authorize_params = {}
    provider.save()
    browser = Client()
    callback = server.consent(start(dot_connection, browser))
    server.set_fault("no_refresh_token")
    response = browser.get(local(callback))
    html = response.content.decode()
    assert response.status_code == 400
    assert "offline_access" in html
    assert "prompt=consent" in html
    assert_nothing_stored(dot_connection)


# --- forged, replayed, misplaced and late callbacks ------------------------------------------
def test_it_rejects_a_forged_state(dot_connection, server):
    browser = Client()
    callback = server.consent(start(dot_connection, browser))
    forged = {**query(callback), "state": secrets.token_urlsafe(32)}
    response = browser.get("/oauth/callback/?" + urlencode(forged))
    assert response.status_code == 400
    assert failure_kind(response) == "unknown_state"
    assert_nothing_stored(dot_connection)
    assert server.stats()["code_calls"] == 0
    # The forgery did not burn the real response.
    assert browser.get(local(callback)).status_code == 200


def test_it_rejects_a_callback_without_state(dot_connection, server):
    browser = Client()
    callback = server.consent(start(dot_connection, browser))
    response = browser.get("/oauth/callback/?" + urlencode({"code": query(callback)["code"]}))
    assert response.status_code == 400
    assert failure_kind(response) == "unknown_state"
    assert_nothing_stored(dot_connection)
    assert server.stats()["code_calls"] == 0


def test_it_accepts_a_callback_only_once(dot_connection, server):
    browser = Client()
    callback = server.consent(start(dot_connection, browser))
    assert browser.get(local(callback)).status_code == 200
    first = snapshot(dot_connection)
    response = browser.get(local(callback))
    assert response.status_code == 400
    assert failure_kind(response) == "replayed"
    assert "already used" in response.content.decode()
    assert snapshot(dot_connection) == first
    assert server.stats()["code_calls"] == 1
    assert_no_secrets(response.content.decode(), dot_connection)


def test_it_rejects_a_callback_in_another_browser(dot_connection, server):
    started_in = Client()
    callback = server.consent(start(dot_connection, started_in))
    response = Client().get(local(callback))
    assert response.status_code == 400
    assert failure_kind(response) == "wrong_browser"
    assert_nothing_stored(dot_connection)
    assert server.stats()["code_calls"] == 0
    # The browser that started the flow can still finish it.
    assert started_in.get(local(callback)).status_code == 200


def test_it_accepts_a_callback_just_inside_the_request_lifetime(dot_connection, server):
    browser = Client()
    callback = server.consent(start(dot_connection, browser))
    created = AuthorizationRequest.objects.get(connection=dot_connection).created_at
    with time_machine.travel(created + REQUEST_LIFETIME - timedelta(seconds=1), tick=False):
        response = browser.get(local(callback))
    assert response.status_code == 200, response.content.decode()


def test_it_rejects_a_callback_after_fifteen_minutes(dot_connection, server):
    browser = Client()
    callback = server.consent(start(dot_connection, browser))
    created = AuthorizationRequest.objects.get(connection=dot_connection).created_at
    assert timedelta(minutes=15) == REQUEST_LIFETIME
    with time_machine.travel(created + REQUEST_LIFETIME, tick=False):
        response = browser.get(local(callback))
    assert response.status_code == 400
    assert failure_kind(response) == "expired"
    assert "expired" in response.content.decode()
    assert_nothing_stored(dot_connection)
    assert server.stats()["code_calls"] == 0


def test_it_rejects_an_authorization_code_that_was_already_used(dot_connection, server):
    browser = Client()
    first_callback = server.consent(start(dot_connection, browser))
    assert browser.get(local(first_callback)).status_code == 200
    before = snapshot(dot_connection)

    # A new flow, answered with the old code: only the state is fresh.
    new_state = query(start(dot_connection, browser))["state"]
    old_code = query(first_callback)["code"]
    response = browser.get("/oauth/callback/?" + urlencode({"code": old_code, "state": new_state}))
    assert response.status_code == 400
    assert failure_kind(response) == "invalid_grant"
    assert "rejected the authorization code" in response.content.decode()
    assert snapshot(dot_connection) == before
    assert server.stats()["code_calls"] == 2
    assert_no_secrets(response.content.decode(), dot_connection)


# --- the pinned provider account ---------------------------------------------------------------
def test_it_refuses_a_reauthorization_by_another_account(authorized_connection, server):
    before = snapshot(authorized_connection)
    assert before[4] == "1"
    browser = Client()
    link = build_reauth_link(authorized_connection)
    callback = server.consent(start(authorized_connection, browser, link), username="bob")
    response = browser.get(local(callback))
    assert response.status_code == 400
    assert failure_kind(response) == "account_mismatch"
    assert "Nothing was stored" in response.content.decode()
    assert snapshot(authorized_connection) == before
    assert resolve_reauth_link(link.split("/reauth/")[1].rstrip("/")).consumed_at is None
    assert_no_secrets(response.content.decode(), authorized_connection)


def test_it_records_an_account_mismatch(authorized_connection, server):
    browser = Client()
    callback = server.consent(start(authorized_connection, browser), username="bob")
    assert browser.get(local(callback)).status_code == 400
    request = AuthorizationRequest.objects.filter(connection=authorized_connection).latest(
        "created_at"
    )
    assert "account_mismatch" in request.outcome


def test_it_revokes_the_grant_it_refused_to_store(authorized_connection, server):
    server.revoke_all("bob")  # start from no live grant for bob
    browser = Client()
    callback = server.consent(start(authorized_connection, browser), username="bob")
    assert browser.get(local(callback)).status_code == 400
    # bob's grant was issued by the code exchange, then revoked by us (RFC 7009): none is live.
    assert server.revoke_all("bob")["revoked_refresh_tokens"] == 0


def test_it_replaces_the_tokens_when_the_pinned_account_reauthorizes(authorized_connection, server):
    old_access, old_refresh, old_version, _, _ = snapshot(authorized_connection)
    browser = Client()
    callback = server.consent(start(authorized_connection, browser), username="alice")
    response = browser.get(local(callback))
    assert response.status_code == 200, response.content.decode()
    access, refresh, version, status, account_id = snapshot(authorized_connection)
    assert access != old_access and refresh != old_refresh
    assert version == old_version + 1
    assert (status, account_id) == (Connection.Status.ACTIVE, "1")


def test_it_refuses_to_start_authorizing_a_disabled_connection(authorized_connection, server):
    authorized_connection.change_status(Connection.Status.DISABLED, reason="decommissioned")
    before = snapshot(authorized_connection)
    requests_before = AuthorizationRequest.objects.count()
    response = Client().get(local(build_reauth_link(authorized_connection)))
    assert response.status_code == 400
    assert failure_kind(response) == "disabled"
    assert snapshot(authorized_connection) == before
    assert AuthorizationRequest.objects.count() == requests_before


def test_it_refuses_a_callback_for_a_connection_disabled_meanwhile(authorized_connection, server):
    browser = Client()
    link = build_reauth_link(authorized_connection)
    callback = server.consent(start(authorized_connection, browser, link))
    authorized_connection.change_status(Connection.Status.DISABLED, reason="decommissioned")
    before = snapshot(authorized_connection)
    response = browser.get(local(callback))
    assert response.status_code == 400
    assert failure_kind(response) == "disabled"
    assert snapshot(authorized_connection) == before
    assert resolve_reauth_link(link.split("/reauth/")[1].rstrip("/")).consumed_at is None


def test_it_refuses_a_response_from_another_issuer(authorized_connection, server):
    before = snapshot(authorized_connection)
    browser = Client()
    callback = server.consent(start(authorized_connection, browser))
    calls_before = server.stats()["code_calls"]
    response = browser.get(local(callback) + "&iss=https%3A%2F%2Fevil.example.com")
    assert response.status_code == 400
    assert failure_kind(response) == "issuer_mismatch"
    # RFC 9207: the code is never sent to the token endpoint after a mix-up.
    assert server.stats()["code_calls"] == calls_before
    assert snapshot(authorized_connection) == before


def test_it_accepts_a_response_naming_the_right_issuer(dot_connection, server):
    browser = Client()
    callback = server.consent(start(dot_connection, browser))
    response = browser.get(local(callback) + "&iss=" + server.issuer)
    assert response.status_code == 200, response.content.decode()
    assert "connected as" in response.content.decode()


def test_it_keeps_flow_urls_out_of_the_referer(dot_connection, server):
    browser = Client()
    callback = server.consent(start(dot_connection, browser))
    response = browser.get(local(callback))
    assert response["Referrer-Policy"] == "no-referrer"
