"""Whose grant is it: account pinning against the real test authorization server (DOT).

A pinned account must match; with nothing pinned an expected account must match; a grant that
nothing can check is held until a staff user confirms it; a mismatch stores nothing, revokes
the grant and is announced to the alert worker. DOT names the account (`sub`, the user's pk)
only when `openid` is requested: connections asking for `read offline_access` alone get grants
whose account cannot be read, as at a plain OAuth 2.0 provider without OIDC.
"""

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection as db
from django.test import Client

from connections.authorize import ACCOUNT_MISMATCH
from connections.confirmations import expire_held_grants
from connections.held_grants import HELD_GRANT_LIFETIME, confirmation_url
from connections.models import AuthorizationRequest, Connection, ReauthLink, StatusChange
from connections.signals import alert_source_written
from tests.authserver.harness import AuthServer
from tests.conftest import authorize_through_link

NO_OPENID = "read offline_access"


@pytest.fixture
def server(auth_server_clean: AuthServer) -> AuthServer:
    return auth_server_clean


@pytest.fixture
def person(server: AuthServer) -> str:
    """A user of its own at the server, so counting their live grants counts only this test's."""
    username = f"p{uuid.uuid4().hex[:10]}"
    server.create_user(username, f"pw-{username}")
    return username


@pytest.fixture
def announced() -> Iterator[list[dict]]:
    """What reached the alert worker's nudge (`alert_source_written`), in order."""
    sent: list[dict] = []

    def receive(sender, **kwargs) -> None:
        sent.append({"kind": kwargs["kind"], "pk": kwargs["pk"]})

    alert_source_written.connect(receive, weak=False)
    yield sent
    alert_source_written.disconnect(receive)


@pytest.fixture
def consent_committed(django_capture_on_commit_callbacks):
    """`consent`, then what runs after a commit (the test's transaction never commits)."""

    def consent_and_commit(connection: Connection, server: AuthServer, username: str):
        with django_capture_on_commit_callbacks(execute=True):
            return consent(connection, server, username)

    return consent_and_commit


@pytest.fixture
def staff(db) -> Client:
    user = get_user_model().objects.create_user("operator", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


def consent(connection: Connection, server: AuthServer, username: str, *, client=None):
    return authorize_through_link(connection, server, client=client or Client(), username=username)


def stored(connection: Connection) -> Connection:
    return Connection.objects.get(pk=connection.pk)


def last_request(connection: Connection) -> AuthorizationRequest:
    return AuthorizationRequest.objects.filter(connection=connection).latest("created_at")


def live_grants(server: AuthServer, username: str) -> int:
    """How many of `username`'s grants are alive at the server (this ends them)."""
    return server.revoke_all(username)["revoked_refresh_tokens"]


def assert_refused_as_mismatch(response, connection: Connection, before: tuple) -> None:
    assert response.status_code == 400
    assert response.context["kind"] == ACCOUNT_MISMATCH
    assert "Nothing was stored" in response.content.decode()
    c = stored(connection)
    assert (c.access_token, c.refresh_token, c.version, c.account_id) == before
    assert last_request(connection).outcome.startswith(ACCOUNT_MISMATCH)
    assert last_request(connection).processed_at is None


def staff_confirm_path(connection: Connection) -> str:
    return confirmation_url(last_request(connection), absolute=False)


def tokens(connection: Connection) -> tuple:
    c = stored(connection)
    return (c.access_token, c.refresh_token, c.version, c.account_id)


# --- a pinned account -------------------------------------------------------------------------
def test_it_refuses_and_announces_a_grant_of_another_account(
    authorized_connection, server, person, announced, consent_committed
):
    before = tokens(authorized_connection)
    response = consent_committed(authorized_connection, server, person)
    assert_refused_as_mismatch(response, authorized_connection, before)
    assert announced == [{"kind": "authorization", "pk": last_request(authorized_connection).pk}]
    assert live_grants(server, person) == 0  # revoked at the provider (RFC 7009)


def test_it_refuses_a_grant_whose_account_is_unknown_when_one_is_pinned(
    authorized_connection, server, announced, consent_committed
):
    before = tokens(authorized_connection)
    Connection.objects.filter(pk=authorized_connection.pk).update(scopes=NO_OPENID)
    response = consent_committed(authorized_connection, server, "alice")
    assert_refused_as_mismatch(response, authorized_connection, before)
    assert "an account the provider did not name" in response.content.decode()
    assert len(announced) == 1


def test_it_announces_nothing_when_the_pinned_account_reauthorizes(
    authorized_connection, server, announced, consent_committed
):
    response = consent_committed(authorized_connection, server, "alice")
    assert response.status_code == 200, response.content.decode()
    assert stored(authorized_connection).version == 2
    assert not [a for a in announced if a["kind"] == "authorization"]


# --- an expected account, set at creation --------------------------------------------------
def test_it_stores_a_first_grant_of_the_expected_account(dot_connection, server):
    Connection.objects.filter(pk=dot_connection.pk).update(expected_account="1")  # alice's sub
    response = consent(dot_connection, server, "alice")
    assert response.status_code == 200, response.content.decode()
    c = stored(dot_connection)
    assert (c.status, c.account_id) == (Connection.Status.ACTIVE, "1")


def test_it_refuses_a_first_grant_of_another_account_than_the_expected_one(
    dot_connection, server, person, announced, consent_committed
):
    Connection.objects.filter(pk=dot_connection.pk).update(expected_account="1")
    response = consent_committed(dot_connection, server, person)
    assert_refused_as_mismatch(response, dot_connection, ("", "", 0, ""))
    assert "This connection expects 1" in response.content.decode()
    assert stored(dot_connection).status == Connection.Status.PENDING
    assert not StatusChange.objects.filter(connection=dot_connection).exists()
    assert announced == [{"kind": "authorization", "pk": last_request(dot_connection).pk}]
    assert live_grants(server, person) == 0


def test_it_holds_a_grant_of_unknown_account_when_one_is_expected(dot_connection, server, person):
    Connection.objects.filter(pk=dot_connection.pk).update(expected_account="1", scopes=NO_OPENID)
    response = consent(dot_connection, server, person)
    assert response.status_code == 202
    assert response.context["kind"] == "held"
    assert "1 is expected" in response.content.decode()
    assert tokens(dot_connection) == ("", "", 0, "")


# --- nothing to check against: held ------------------------------------------------------------
def test_it_holds_a_first_grant_whose_account_is_unknown(dot_connection, server, person, caplog):
    Connection.objects.filter(pk=dot_connection.pk).update(scopes=NO_OPENID)
    caplog.set_level("DEBUG")
    response = consent(dot_connection, server, person)
    html = response.content.decode()
    assert response.status_code == 202
    assert "Waiting for an administrator" in html
    assert "not named by the provider" in html
    request = last_request(dot_connection)
    # Not stored, not consumed, but kept (encrypted) for a staff user to confirm.
    assert tokens(dot_connection) == ("", "", 0, "")
    assert stored(dot_connection).status == Connection.Status.PENDING
    assert ReauthLink.objects.get(connection=dot_connection).consumed_at is None
    assert request.outcome.startswith("held:")
    assert request.held_grant and request.held_account_id == ""
    # Someone who is not staff gets the link to send an administrator, not the buttons.
    assert response.context["confirm_url"] in html
    assert "<form" not in html
    held_access_token = json.loads(request.held_grant)["access_token"]
    assert held_access_token not in html and held_access_token not in caplog.text
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT held_grant_encrypted FROM connections_authorizationrequest WHERE id = %s",
            [request.pk],
        )
        raw = cursor.fetchone()[0]
    assert held_access_token.encode() not in bytes(raw)


def test_it_holds_a_grant_when_the_pinned_account_was_never_known(dot_connection, server, staff):
    # An earlier grant stored without an identity (before pinning held, or an import).
    Connection.objects.filter(pk=dot_connection.pk).update(scopes=NO_OPENID)
    consent(dot_connection, server, "alice", client=staff)
    staff.post(staff_confirm_path(dot_connection), {"action": "confirm"})
    assert stored(dot_connection).account_id == ""
    version = stored(dot_connection).version
    Connection.objects.filter(pk=dot_connection.pk).update(scopes="")  # openid again

    response = consent(dot_connection, server, "bob")
    assert response.status_code == 202
    assert response.context["account"] == "2"  # bob's sub, shown for the staff user to judge
    assert "earlier grant was never known" in response.content.decode()
    assert stored(dot_connection).version == version


# --- a staff user confirms, discards, or the hold expires --------------------------------------
@pytest.fixture
def held(dot_connection, server, person) -> AuthorizationRequest:
    """A first grant of `person` held because the provider did not name the account."""
    Connection.objects.filter(pk=dot_connection.pk).update(scopes=NO_OPENID)
    assert consent(dot_connection, server, person).status_code == 202
    return last_request(dot_connection)


def test_it_stores_a_held_grant_a_staff_user_confirms(held, dot_connection, server, person, staff):
    page = staff.get(staff_confirm_path(dot_connection))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Analytics export" in html and "Test authorization server" in html
    assert "not named by the provider" in html

    response = staff.post(staff_confirm_path(dot_connection), {"action": "confirm"})
    assert response.status_code == 200, response.content.decode()
    assert "Analytics export is connected" in response.content.decode()
    c = stored(dot_connection)
    assert c.status == Connection.Status.ACTIVE and c.version == 1
    assert c.access_token == json.loads(held.held_grant)["access_token"]
    request = last_request(dot_connection)
    assert request.outcome == "authorized (confirmed by staff user operator)"
    assert request.held_grant == ""
    assert ReauthLink.objects.get(connection=dot_connection).consumed_at is not None
    assert live_grants(server, person) == 1  # the stored grant is the provider's live one


def test_it_offers_the_confirmation_to_a_staff_user_who_consented_in_the_same_browser(
    dot_connection, server, person
):
    Connection.objects.filter(pk=dot_connection.pk).update(scopes=NO_OPENID)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(get_user_model().objects.create_user("ops", is_staff=True))
    response = consent(dot_connection, server, person, client=browser)
    html = response.content.decode()
    assert response.status_code == 202
    assert 'value="confirm"' in html
    # Its form posts with Origin and Referer intact (a `no-referrer` page would fail CSRF).
    assert response["Referrer-Policy"] == "same-origin"
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    confirmed = browser.post(
        staff_confirm_path(dot_connection),
        {"action": "confirm", "csrfmiddlewaretoken": token},
    )
    assert confirmed.status_code == 200, confirmed.content.decode()
    assert stored(dot_connection).status == Connection.Status.ACTIVE


def test_it_stores_a_confirmed_grant_once(held, dot_connection, staff):
    assert staff.post(staff_confirm_path(dot_connection), {"action": "confirm"}).status_code == 200
    again = staff.post(staff_confirm_path(dot_connection), {"action": "confirm"})
    assert again.status_code == 400
    assert again.context["kind"] == "not_held"
    assert stored(dot_connection).version == 1
    assert staff.get(staff_confirm_path(dot_connection)).status_code == 410


def test_it_lets_only_staff_confirm(held, dot_connection):
    path = staff_confirm_path(dot_connection)
    assert Client().post(path, {"action": "confirm"}).status_code == 302  # to the login page
    clerk = Client()
    clerk.force_login(get_user_model().objects.create_user("clerk"))
    assert clerk.post(path, {"action": "confirm"}).status_code == 302
    csrf_checked = Client(enforce_csrf_checks=True)
    csrf_checked.force_login(get_user_model().objects.create_user("ops", is_staff=True))
    assert csrf_checked.post(path, {"action": "confirm"}).status_code == 403
    assert tokens(dot_connection) == ("", "", 0, "")
    assert last_request(dot_connection).outcome.startswith("held:")


def test_it_rejects_an_altered_confirmation_link(held, dot_connection, staff):
    path = staff_confirm_path(dot_connection)
    altered = path.replace("/oauth/confirm/", "/oauth/confirm/x")
    assert staff.post(altered, {"action": "confirm"}).status_code == 404
    assert tokens(dot_connection) == ("", "", 0, "")


def test_it_revokes_a_held_grant_a_staff_user_discards(held, dot_connection, server, person, staff):
    response = staff.post(staff_confirm_path(dot_connection), {"action": "discard"})
    assert response.status_code == 200
    assert "discarded" in response.content.decode()
    assert tokens(dot_connection) == ("", "", 0, "")
    request = last_request(dot_connection)
    assert request.outcome == "discarded: by staff user operator"
    assert request.held_grant == ""
    assert live_grants(server, person) == 0


def test_it_revokes_a_held_grant_nobody_confirmed_in_time(held, dot_connection, server, person):
    with time_machine.travel(held.expires_at - timedelta(seconds=1)):
        assert expire_held_grants() == 0
    with time_machine.travel(held.expires_at):
        assert expire_held_grants() == 1
    waited = held.expires_at - held.completed_at  # from the callback, plus the code exchange
    assert HELD_GRANT_LIFETIME <= waited < HELD_GRANT_LIFETIME + timedelta(seconds=5)
    request = last_request(dot_connection)
    assert request.outcome.startswith("held_expired:")
    assert request.held_grant == ""
    assert live_grants(server, person) == 0
    assert tokens(dot_connection) == ("", "", 0, "")


def test_it_refuses_to_confirm_a_hold_that_expired(held, dot_connection, staff):
    with time_machine.travel(held.expires_at):
        assert staff.get(staff_confirm_path(dot_connection)).status_code == 410
        response = staff.post(staff_confirm_path(dot_connection), {"action": "confirm"})
    assert response.context["kind"] == "not_held"
    assert tokens(dot_connection) == ("", "", 0, "")


def test_it_keeps_the_providers_expiry_for_a_grant_confirmed_later(held, dot_connection, staff):
    held_at = held.completed_at
    with time_machine.travel(held_at + timedelta(minutes=30)):
        staff.post(staff_confirm_path(dot_connection), {"action": "confirm"})
    c = stored(dot_connection)
    # DOT's access tokens live an hour from issue, not from the confirmation.
    expected = held_at + timedelta(hours=1)
    assert abs((c.access_expires_at - expected).total_seconds()) < 5


def test_it_discards_a_held_grant_when_another_account_was_pinned_meanwhile(
    held, dot_connection, server, person, staff
):
    Connection.objects.filter(pk=dot_connection.pk).update(scopes="")  # openid again
    assert consent(dot_connection, server, "alice").status_code == 200
    pinned = tokens(dot_connection)
    response = staff.post(confirmation_url(held, absolute=False), {"action": "confirm"})
    assert response.status_code == 400
    assert response.context["kind"] == "account_changed"
    assert tokens(dot_connection) == pinned
    assert live_grants(server, person) == 0


def test_it_refuses_to_confirm_for_a_connection_disabled_meanwhile(
    held, dot_connection, server, person, staff
):
    stored(dot_connection).change_status(Connection.Status.DISABLED, reason="decommissioned")
    response = staff.post(staff_confirm_path(dot_connection), {"action": "confirm"})
    assert response.context["kind"] == "disabled"
    assert tokens(dot_connection) == ("", "", 0, "")
    assert live_grants(server, person) == 0
