"""Admin for channels, rules and notifications: write-only URL and secret, broken state shown
and clearable, conditions validated, history read-only."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from alerts.models import AlertRule, Channel, Event, Notification
from tests.factories import AlertRuleFactory, ChannelFactory, ConnectionFactory

pytestmark = pytest.mark.django_db

SLACK_URL = "https://hooks.slack.example/services/T0SECRET/B0SECRET/xoxSecretPathPart"
SECRET_PATH = "/services/T0SECRET/B0SECRET/xoxSecretPathPart"
SIGNING_SECRET = "sig-sekrit-0123456789abcdef"


def channel_form(**fields) -> dict:
    return {"name": "Ops", "kind": "email", "email_addresses": "", "enabled": "on", **fields}


def assert_no_secrets(html: str) -> None:
    assert SECRET_PATH not in html
    assert "xoxSecretPathPart" not in html
    assert SIGNING_SECRET not in html


def test_it_stores_a_slack_url_it_never_shows_again(admin_client):
    response = admin_client.post(
        reverse("admin:alerts_channel_add"), channel_form(kind="slack", new_url=SLACK_URL)
    )
    assert response.status_code == 302, response.content.decode()
    channel = Channel.objects.get()
    assert channel.url == SLACK_URL

    listing = admin_client.get(reverse("admin:alerts_channel_changelist")).content.decode()
    assert "hooks.slack.example" in listing
    page = admin_client.get(reverse("admin:alerts_channel_change", args=[channel.pk]))
    assert page.status_code == 200
    assert_no_secrets(listing)
    assert_no_secrets(page.content.decode())


def test_it_keeps_the_stored_url_and_secret_when_left_blank(admin_client):
    channel = ChannelFactory(webhook=True, url=SLACK_URL, secret=SIGNING_SECRET)
    response = admin_client.post(
        reverse("admin:alerts_channel_change", args=[channel.pk]),
        channel_form(kind="webhook", name="Renamed"),
    )
    assert response.status_code == 302, response.content.decode()
    channel.refresh_from_db()
    assert (channel.name, channel.url, channel.secret) == ("Renamed", SLACK_URL, SIGNING_SECRET)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"kind": "webhook", "new_url": "https://h.example/x"}, "new_secret", "signing secret"),
        (
            {"kind": "webhook", "new_url": "https://h.example/x", "new_secret": "short"},
            "new_secret",
            "at least 16",
        ),
        ({"kind": "slack"}, "new_url", "needs a URL"),
        (
            {"kind": "slack", "new_url": "not a url/xoxSecretPathPart"},
            "new_url",
            "full http(s) URL",
        ),
        ({"kind": "email"}, "email_addresses", "at least one address"),
        (
            {"kind": "email", "email_addresses": "ops@example.com, nope"},
            "email_addresses",
            "'nope' is not an email address",
        ),
    ],
)
def test_it_refuses_an_incomplete_channel_with_a_clear_error(admin_client, fields, field, message):
    response = admin_client.post(reverse("admin:alerts_channel_add"), channel_form(**fields))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field])
    assert Channel.objects.count() == 0
    assert "xoxSecretPathPart" not in response.content.decode()


def test_it_shows_a_broken_channel_and_clears_it_on_request(admin_client):
    channel = ChannelFactory(
        slack=True,
        url=SLACK_URL,
        broken_at=timezone.now(),
        broken_reason="Slack webhook at hooks.slack.example: HTTP 410",
    )
    listing = admin_client.get(reverse("admin:alerts_channel_changelist")).content.decode()
    assert "broken since" in listing
    assert "HTTP 410" in listing
    assert_no_secrets(listing)

    response = admin_client.post(
        reverse("admin:alerts_channel_changelist"),
        {"action": "mark_repaired", "_selected_action": [channel.pk]},
        follow=True,
    )
    assert response.status_code == 200
    channel.refresh_from_db()
    assert (channel.broken_at, channel.broken_reason) == (None, "")


def test_it_clears_the_broken_state_when_a_new_url_is_given(admin_client):
    channel = ChannelFactory(
        slack=True, url=SLACK_URL, broken_at=timezone.now(), broken_reason="HTTP 404"
    )
    page = admin_client.get(reverse("admin:alerts_channel_change", args=[channel.pk]))
    assert "Mark as repaired" in page.content.decode()
    response = admin_client.post(
        reverse("admin:alerts_channel_change", args=[channel.pk]),
        channel_form(kind="slack", new_url="https://hooks.slack.example/services/NEW"),
    )
    assert response.status_code == 302, response.content.decode()
    channel.refresh_from_db()
    assert channel.broken_at is None
    assert channel.url.endswith("/NEW")


def rule_form(**fields) -> dict:
    return {
        "name": "Ten days",
        "event": Event.EXPIRY_WARNING,
        "condition": "",
        "all_connections": "on",
        "channels": [ChannelFactory().pk],
        "enabled": "on",
        **fields,
    }


def test_it_saves_a_rule_with_a_valid_condition(admin_client):
    response = admin_client.post(
        reverse("admin:alerts_alertrule_add"), rule_form(condition="  days_until_expiry   <= 10 ")
    )
    assert response.status_code == 302, response.content.decode()
    assert AlertRule.objects.get().condition == "days_until_expiry <= 10"


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("days_until_expiry =< 10", "Cannot read 'days_until_expiry =< 10'"),
        ("age > 3", "Unknown fact 'age'"),
    ],
)
def test_it_refuses_a_bad_condition_with_a_clear_error(admin_client, condition, message):
    response = admin_client.post(
        reverse("admin:alerts_alertrule_add"), rule_form(condition=condition)
    )
    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors["condition"])
    assert AlertRule.objects.count() == 0


def test_it_asks_for_connections_when_a_rule_is_not_for_all(admin_client):
    form = rule_form()
    del form["all_connections"]
    response = admin_client.post(reverse("admin:alerts_alertrule_add"), form)
    assert "Choose the connections" in " ".join(
        response.context["adminform"].form.errors["connections"]
    )


def test_it_shows_the_notification_history_read_only_without_secrets(admin_client):
    connection = ConnectionFactory(
        authorized=True, access_token="AT-sekrit-abc", client_secret="CS-sekrit-abc"
    )
    channel = ChannelFactory(slack=True, url=SLACK_URL)
    rule = AlertRuleFactory(channels=[channel])
    notification = Notification.objects.create(
        event=Event.NEEDS_REAUTH,
        rule=rule,
        channel=channel,
        connection=connection,
        recipient="hooks.slack.example",
        status=Notification.Status.FAILED,
        response_code=410,
        error="Slack webhook at hooks.slack.example: HTTP 410",
    )
    listing = admin_client.get(reverse("admin:alerts_notification_changelist")).content.decode()
    detail = admin_client.get(reverse("admin:alerts_notification_change", args=[notification.pk]))
    assert "HTTP 410" in listing
    for html in (listing, detail.content.decode()):
        assert_no_secrets(html)
        assert "AT-sekrit-abc" not in html and "CS-sekrit-abc" not in html
    assert admin_client.get(reverse("admin:alerts_notification_add")).status_code == 403
    posted = admin_client.post(
        reverse("admin:alerts_notification_change", args=[notification.pk]), {"status": "sent"}
    )
    assert posted.status_code == 403
    notification.refresh_from_db()
    assert notification.status == Notification.Status.FAILED


def test_it_lists_rules_with_their_channels(admin_client):
    AlertRuleFactory(name="Dead grants", channels=[ChannelFactory(name="Ops mail")])
    listing = admin_client.get(reverse("admin:alerts_alertrule_changelist")).content.decode()
    assert "Dead grants" in listing and "Ops mail" in listing
    assert not list(
        get_messages(admin_client.get(reverse("admin:alerts_alertrule_changelist")).wsgi_request)
    )
