"""The connection page's buttons: POST only, CSRF, one service each, htmx or plain forms."""

import logging

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from alerts.models import Notification
from connections import actions as action_services
from connections import services
from connections.actions import ActionDone
from connections.links import resolve_reauth_link
from connections.models import Connection, ReauthLink
from tests.factories import AlertRuleFactory, ChannelFactory, ConnectionFactory

pytestmark = pytest.mark.django_db

SECRETS = {
    "access_token": "SEEDED-ACCESS-TOKEN-0b1f",
    "refresh_token": "SEEDED-REFRESH-TOKEN-77c2",
    "client_secret": "SEEDED-CLIENT-SECRET-9e4a",
}
HTMX = {"HX-Request": "true", "HX-Target": "feedback"}
ACTIONS = [
    "connection-refresh",
    "connection-check",
    "connection-link",
    "connection-email-link",
    "connection-test-alert",
    "connection-disable",
    "connection-enable",
]


@pytest.fixture
def connection() -> Connection:
    return ConnectionFactory(
        name="Nightly analytics",
        slug="analytics",
        authorized=True,
        contact_email="owner@example.com",
        **SECRETS,
    )


def post(client: Client, name: str, connection: Connection, **kwargs):
    return client.post(reverse(name, args=[connection.slug]), **kwargs)


class Recorder:
    """Stands in for a service at its seam: records the call, answers like the service."""

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return self.answer


@pytest.mark.parametrize(
    ("name", "module", "function", "answer"),
    [
        ("connection-refresh", action_services, "connection_refresh_now", ActionDone(True, "R!")),
        ("connection-check", action_services, "connection_check_now", ActionDone(True, "H!")),
        ("connection-link", action_services, "connection_reauth_link", "https://x/reauth/L/"),
        ("connection-email-link", action_services, "connection_email_reauth_link", "o@x.org"),
        ("connection-disable", services, "connection_disable", True),
        ("connection-enable", services, "connection_enable", True),
    ],
)
def test_each_button_calls_its_one_service(
    admin_client, connection, monkeypatch, name, module, function, answer
):
    recorder = Recorder(answer)
    monkeypatch.setattr(module, function, recorder)
    response = post(admin_client, name, connection, headers=HTMX)
    assert response.status_code == 200
    [call] = recorder.calls
    assert call["connection"].pk == connection.pk


def test_the_test_alert_button_calls_the_fire_drill(admin_client, connection, monkeypatch):
    from alerts import drills

    recorder = Recorder([])
    monkeypatch.setattr(drills, "send_connection_test_alert", recorder)
    response = post(admin_client, "connection-test-alert", connection, headers=HTMX)
    [call] = recorder.calls
    assert call["connection"].pk == connection.pk
    assert "No alert rule covers Nightly analytics" in response.content.decode()


@pytest.mark.parametrize("name", ACTIONS)
def test_a_get_is_refused(admin_client, connection, name):
    assert admin_client.get(reverse(name, args=[connection.slug])).status_code == 405


@pytest.mark.parametrize("name", ACTIONS)
def test_a_post_without_the_csrf_token_is_refused(connection, name):
    staff = get_user_model().objects.create_user("staff", password="x", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert post(client, name, connection).status_code == 403
    assert Connection.objects.get(pk=connection.pk).status == Connection.Status.ACTIVE


@pytest.mark.parametrize("name", ACTIONS)
def test_the_buttons_are_for_staff_only(connection, name):
    response = post(Client(), name, connection)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_htmx_gets_feedback_status_and_timeline_without_a_page(admin_client, connection):
    response = post(admin_client, "connection-disable", connection, headers=HTMX)
    body = response.content.decode()
    assert "<html" not in body
    assert "Disabled Nightly analytics" in body
    assert '<div id="connection-state" hx-swap-oob="true">' in body
    assert '<section id="timeline" class="timeline" hx-swap-oob="true"' in body
    assert "Status: Active → Disabled" in body  # the new row, on the swapped timeline
    assert "Enable</button>" in body  # the bar now offers the way back


def test_without_javascript_a_button_redirects_back_with_a_message(admin_client, connection):
    response = post(admin_client, "connection-disable", connection, follow=True)
    assert response.redirect_chain == [(f"/connections/{connection.slug}/", 302)]
    assert "Disabled Nightly analytics" in response.content.decode()
    connection.refresh_from_db()
    assert connection.status == Connection.Status.DISABLED
    response = post(admin_client, "connection-enable", connection, follow=True)
    assert "Enabled Nightly analytics" in response.content.decode()
    connection.refresh_from_db()
    assert connection.status == Connection.Status.ACTIVE


def test_no_fragment_or_page_shows_a_secret(admin_client, connection, monkeypatch):
    # Refresh and health check would call the provider: their services answer at the seam.
    monkeypatch.setattr(action_services, "connection_refresh_now", Recorder(ActionDone(True, "")))
    monkeypatch.setattr(action_services, "connection_check_now", Recorder(ActionDone(True, "")))
    bodies = [admin_client.get(f"/connections/{connection.slug}/").content.decode()]
    for name in ACTIONS:
        for headers in (HTMX, {}):
            response = post(admin_client, name, connection, headers=headers, follow=True)
            bodies.append(response.content.decode())
    bodies.append(admin_client.get(f"/connections/{connection.slug}/edit/").content.decode())
    for body in bodies:
        for secret in SECRETS.values():
            assert secret not in body


def test_copy_link_shows_a_fresh_working_link_once_and_never_logs_it(
    admin_client, connection, caplog
):
    caplog.set_level(logging.DEBUG)
    response = post(admin_client, "connection-link", connection, headers=HTMX)
    body = response.content.decode()
    link = response.context["link"]
    assert f'value="{link}"' in body and "readonly" in body
    assert resolve_reauth_link(link.rsplit("/reauth/", 1)[1].strip("/")).connection == connection
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]
    token = link.rsplit("/", 2)[1]
    assert token not in caplog.text
    again = admin_client.get(f"/connections/{connection.slug}/").content.decode()
    assert token not in again  # shown once


def test_copy_link_without_javascript_renders_the_page_instead_of_storing_a_message(
    admin_client, connection
):
    response = post(admin_client, "connection-link", connection)
    assert response.status_code == 200
    assert response.context["link"] in response.content.decode()
    assert "<html" in response.content.decode()
    assert "messages" not in admin_client.cookies  # the link never went into a cookie


def test_copy_link_is_refused_for_a_disabled_connection(admin_client, connection):
    services.connection_disable(connection=connection, reason="", actor="test")
    response = post(admin_client, "connection-link", connection, headers=HTMX)
    assert "is disabled: enable it first" in response.content.decode()
    assert not ReauthLink.objects.filter(connection=connection).exists()


def test_email_link_sends_a_fresh_link_to_the_contact(admin_client, connection):
    response = post(admin_client, "connection-email-link", connection, headers=HTMX)
    assert "Emailed a fresh reauthorization link to owner@example.com" in response.content.decode()
    [message] = mail.outbox
    assert message.to == ["owner@example.com"]
    assert "Nightly analytics" in message.subject
    [link] = [word for word in message.body.split() if "/reauth/" in word]
    assert resolve_reauth_link(link.rsplit("/", 2)[1]).connection == connection
    assert link not in response.content.decode()  # mailed, not shown
    assert link in message.alternatives[0][0]


def test_email_link_refuses_clearly_without_a_contact(admin_client):
    nobody = ConnectionFactory(name="Orphan", authorized=True, contact_email="")
    response = post(admin_client, "connection-email-link", nobody, headers=HTMX)
    assert "Orphan has no contact email" in response.content.decode()
    assert mail.outbox == []
    assert not ReauthLink.objects.filter(connection=nobody).exists()


def test_test_alert_goes_through_the_channels_that_cover_the_connection(admin_client, connection):
    channel = ChannelFactory(name="Ops mail", email_addresses="ops@example.com")
    AlertRuleFactory(channels=[channel])
    response = post(admin_client, "connection-test-alert", connection, headers=HTMX)
    body = response.content.decode()
    assert "Ops mail: sent" in body
    [notification] = Notification.objects.all()
    assert notification.is_test and notification.connection == connection
    [message] = mail.outbox
    assert "Nightly analytics" in message.body
    assert "Test alert" in body  # the drill is on the swapped timeline too


def test_refresh_now_refreshes_at_once_and_the_attempt_joins_the_timeline(
    admin_client, authorized_connection
):
    before = authorized_connection.version
    response = post(admin_client, "connection-refresh", authorized_connection, headers=HTMX)
    body = response.content.decode()
    assert "Refreshed Analytics export: the new access token is valid until" in body
    assert "Refresh succeeded (forced)" in body
    authorized_connection.refresh_from_db()
    assert authorized_connection.version > before


def test_health_check_now_runs_the_canary(admin_client, authorized_connection):
    response = post(admin_client, "connection-check", authorized_connection, headers=HTMX)
    body = response.content.decode()
    assert "Health check of Analytics export passed" in body
    assert "Health check passed (UserInfo endpoint)" in body


def test_refresh_now_says_why_it_failed(admin_client, authorized_connection, auth_server_clean):
    auth_server_clean.revoke_all("alice")
    response = post(admin_client, "connection-refresh", authorized_connection, headers=HTMX)
    body = response.content.decode()
    assert "Refresh of Analytics export failed (needs_reauth)" in body
    assert "Refresh failed (forced)" in body
