from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.db import connection as db
from django.urls import reverse
from django.utils import timezone

from connections.admin_inlines import INLINE_ROWS
from connections.forms import ConnectionAdminForm
from connections.links import resolve_reauth_link
from connections.models import (
    Connection,
    ConsumerSchedule,
    Provider,
    ReauthLink,
    RefreshAttempt,
    StatusChange,
)
from tests.factories import ConnectionFactory, ProviderFactory
from tests.support.admin import NO_INLINE_ROWS, change_url, changelist_url, form_data

ACCESS = "AT-sekrit-4f7a9c0d1e2b"
REFRESH = "RT-sekrit-8e1d2c3b4a59"
SECRET = "CS-sekrit-0a1b2c3d4e5f"
SECRETS = (ACCESS, REFRESH, SECRET)


@pytest.fixture
def connection(db) -> Connection:
    return ConnectionFactory(
        authorized=True,
        name="Analytics export",
        slug="analytics",
        account_label="alice@example.com",
        access_token=ACCESS,
        refresh_token=REFRESH,
        client_secret=SECRET,
        refresh_expires_at=timezone.now() + timedelta(days=30),
        last_refreshed_at=timezone.now(),
    )


def assert_no_secrets(html: str) -> None:
    for value in SECRETS:
        assert value not in html


def stored_ciphertext(connection: Connection, column: str) -> bytes:
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT {column} FROM connections_connection WHERE id = %s", [connection.pk]
        )
        return bytes(cursor.fetchone()[0])


def test_it_lists_connections_without_secrets(admin_client, connection):
    response = admin_client.get(changelist_url())
    html = response.content.decode()
    assert response.status_code == 200
    assert "Analytics export" in html
    assert_no_secrets(html)


@pytest.mark.parametrize(
    ("kind", "expires_in_days", "shown"),
    [
        ("absolute", 30, "(absolute refresh-token expiry)"),
        ("sliding", 30, "None: renewed automatically (sliding)"),
        ("unknown", None, "Unknown"),
    ],
)
def test_it_says_why_a_connection_has_its_reauthorize_by_date_or_none(
    admin_client, connection, kind, expires_in_days, shown
):
    Provider.objects.filter(pk=connection.provider_id).update(refresh_token_expiry=kind)
    expires = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    Connection.objects.filter(pk=connection.pk).update(refresh_expires_at=expires)
    html = admin_client.get(changelist_url()).content.decode()
    cell = html.split('<td class="field-reauthorize_by">', 1)[1].split("</td>", 1)[0]
    assert shown in cell


def test_it_searches_by_account_label(admin_client, connection):
    ConnectionFactory(name="Other", account_label="bob@example.com")
    response = admin_client.get(changelist_url(), {"q": "alice@"})
    assert list(response.context["cl"].result_list) == [connection]


def test_it_filters_by_status(admin_client, connection):
    ConnectionFactory(name="Never authorized")
    response = admin_client.get(changelist_url(), {"status__exact": "active"})
    assert list(response.context["cl"].result_list) == [connection]


def test_it_shows_token_summaries_but_never_token_values(admin_client, connection):
    response = admin_client.get(change_url(connection))
    html = response.content.decode()
    assert response.status_code == 200
    assert_no_secrets(html)
    assert f"fingerprint {connection.fingerprint('access_token')}" in html
    assert f"fingerprint {connection.fingerprint('refresh_token')}" in html
    assert f"fingerprint {connection.fingerprint('client_secret')}" in html
    assert "present, expires" in html


def test_it_offers_no_form_field_for_tokens_or_status(admin_client, connection):
    form = admin_client.get(change_url(connection)).context["adminform"].form
    for name in ("access_token", "refresh_token", "client_secret", "status", "version"):
        assert name not in form.fields
    for name in ("lease_owner", "lease_until", "account_id"):
        assert name not in form.fields
    widget = form.fields["new_client_secret"].widget
    assert widget.input_type == "password"
    assert widget.render_value is False


def test_it_keeps_the_secret_when_the_field_is_left_blank(admin_client, connection):
    StatusChange.objects.create(connection=connection, from_status="pending", to_status="active")
    data = form_data(admin_client.get(change_url(connection)))
    assert data["status_changes-INITIAL_FORMS"] == 1
    data |= {"name": "Analytics export (EU)", "new_client_secret": ""}
    response = admin_client.post(change_url(connection), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    connection.refresh_from_db()
    assert connection.name == "Analytics export (EU)"
    assert connection.client_secret == SECRET
    assert (connection.access_token, connection.refresh_token) == (ACCESS, REFRESH)


def test_it_replaces_the_secret_when_a_new_one_is_typed(admin_client, connection):
    data = form_data(admin_client.get(change_url(connection)))
    data["new_client_secret"] = "CS-rotated-99"
    response = admin_client.post(change_url(connection), data)
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.client_secret == "CS-rotated-99"
    assert b"CS-rotated-99" not in stored_ciphertext(connection, "client_secret_encrypted")
    assert (connection.access_token, connection.refresh_token) == (ACCESS, REFRESH)


def test_it_does_not_overwrite_tokens_rotated_while_the_form_was_open(rf, admin_user, connection):
    stale = Connection.objects.get(pk=connection.pk)
    # A refresh rotates the tokens between loading the object and saving the form.
    Connection.objects.filter(pk=connection.pk).update(
        access_token="AT-new", refresh_token="RT-new", version=7
    )
    data = {
        "name": "Renamed",
        "slug": stale.slug,
        "provider": stale.provider_id,
        "client_id": stale.client_id,
        "refresh_threshold": stale.refresh_threshold,
    }
    request = rf.post("/")
    request.user = admin_user
    model_admin = admin.site.get_model_admin(Connection)
    form = model_admin.get_form(request, stale, change=True)(data, instance=stale)
    assert isinstance(form, ConnectionAdminForm)
    assert form.is_valid(), form.errors
    model_admin.save_model(request, form.save(commit=False), form, True)
    fresh = Connection.objects.get(pk=connection.pk)
    assert fresh.name == "Renamed"
    assert (fresh.access_token, fresh.refresh_token, fresh.version) == ("AT-new", "RT-new", 7)


def test_it_moves_the_sweep_due_time_when_the_threshold_changes(admin_client, connection):
    data = form_data(admin_client.get(change_url(connection)))
    data["refresh_threshold"] = 900
    assert admin_client.post(change_url(connection), data).status_code == 302
    connection.refresh_from_db()
    assert connection.refresh_due_at == connection.access_expires_at - timedelta(seconds=900)


def test_it_recomputes_due_times_when_a_provider_changes(admin_client, connection):
    provider = connection.provider
    url = reverse("admin:connections_provider_change", args=[provider.pk])
    data = form_data(admin_client.get(url))
    data |= {"refresh_token_expiry": "sliding", "refresh_token_lifetime": "90 00:00:00"}
    data["extra_authorize_params"] = "{}"
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    connection.refresh_from_db()
    assert connection.renew_due_at is not None
    assert connection.renew_due_at == connection.due_times()["renew_due_at"]


def test_it_lets_the_sweep_reschedule_an_edited_pipeline(admin_client, connection):
    now = timezone.now()
    schedule = ConsumerSchedule.objects.create(
        connection=connection,
        label="nightly",
        cron="0 2 * * *",
        next_run_at=now + timedelta(hours=3),
        prepare_at=now + timedelta(hours=2),
    )
    data = form_data(admin_client.get(change_url(connection)))
    data |= {
        "consumer_schedules-0-id": schedule.pk,
        "consumer_schedules-0-connection": connection.pk,
        "consumer_schedules-0-label": "nightly",
        "consumer_schedules-0-cron": "30 4 * * *",
        "consumer_schedules-0-timezone": "UTC",
        "consumer_schedules-0-lead_minutes": 10,
        "consumer_schedules-0-run_minutes": 60,
    }
    response = admin_client.post(change_url(connection), data)
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.cron == "30 4 * * *"
    assert (schedule.next_run_at, schedule.prepare_at) == (None, None)


def test_it_rejects_an_invalid_pipeline_cron(admin_client, connection):
    data = form_data(admin_client.get(change_url(connection)))
    data |= {
        "consumer_schedules-TOTAL_FORMS": 1,
        "consumer_schedules-0-label": "nightly",
        "consumer_schedules-0-cron": "every night",
        "consumer_schedules-0-timezone": "UTC",
        "consumer_schedules-0-lead_minutes": 10,
        "consumer_schedules-0-run_minutes": 60,
    }
    assert admin_client.post(change_url(connection), data).status_code == 200
    assert not ConsumerSchedule.objects.exists()


def test_it_shows_the_add_form_with_a_password_field(admin_client, db):
    response = admin_client.get(reverse("admin:connections_connection_add"))
    assert response.status_code == 200
    field = response.context["adminform"].form.fields["new_client_secret"]
    assert field.widget.input_type == "password"
    # Optional in the form: the provider decides (a public client has none; the next test).
    assert field.required is False


def test_it_creates_a_connection_with_an_encrypted_secret(admin_client, db):
    provider = ProviderFactory()
    response = admin_client.post(
        reverse("admin:connections_connection_add"),
        {
            "name": "New export",
            "slug": "new-export",
            "provider": provider.pk,
            "client_id": "client-new",
            "new_client_secret": "CS-brand-new",
            "refresh_threshold": 300,
            **NO_INLINE_ROWS,
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    created = Connection.objects.get(slug="new-export")
    assert created.client_secret == "CS-brand-new"
    assert created.status == Connection.Status.PENDING
    assert b"CS-brand-new" not in stored_ciphertext(created, "client_secret_encrypted")


def test_it_requires_a_secret_on_create(admin_client, db):
    provider = ProviderFactory()
    response = admin_client.post(
        reverse("admin:connections_connection_add"),
        {
            "name": "New export",
            "slug": "new-export",
            "provider": provider.pk,
            "client_id": "client-new",
            "refresh_threshold": 300,
            **NO_INLINE_ROWS,
        },
    )
    assert response.status_code == 200
    assert "new_client_secret" in response.context["adminform"].form.errors
    assert not Connection.objects.filter(slug="new-export").exists()


def test_it_shows_only_the_newest_history_rows(admin_client, connection):
    start = timezone.now() - timedelta(days=1)
    for i in range(INLINE_ROWS + 5):
        RefreshAttempt.objects.create(
            connection=connection,
            started_at=start + timedelta(minutes=i),
            trigger=RefreshAttempt.Trigger.SWEEP,
            outcome=RefreshAttempt.Outcome.SUCCESS,
            message=f"attempt {i}",
        )
    response = admin_client.get(change_url(connection))
    attempts = next(
        inline.formset
        for inline in response.context["inline_admin_formsets"]
        if inline.formset.model is RefreshAttempt
    )
    rows = [form.instance.message for form in attempts.initial_forms]
    assert rows == [f"attempt {i}" for i in range(INLINE_ROWS + 4, 4, -1)]
    assert "?connection__id__exact=" in response.content.decode()


def test_it_creates_reauthorization_links_from_an_action(admin_client, connection):
    response = admin_client.post(
        changelist_url(),
        {"action": "create_reauth_links", "_selected_action": [connection.pk]},
        follow=True,
    )
    assert response.status_code == 200
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    link = ReauthLink.objects.get(connection=connection)
    token = message.split("/reauth/")[1].split("/")[0]
    assert resolve_reauth_link(token) == link
    assert "/reauth/" in response.content.decode()


def test_it_disables_and_reenables_through_status_changes(admin_client, connection):
    admin_client.post(changelist_url(), {"action": "disable", "_selected_action": [connection.pk]})
    connection.refresh_from_db()
    assert connection.status == Connection.Status.DISABLED
    admin_client.post(changelist_url(), {"action": "enable", "_selected_action": [connection.pk]})
    connection.refresh_from_db()
    assert connection.status == Connection.Status.ACTIVE
    transitions = list(
        StatusChange.objects.filter(connection=connection)
        .order_by("created_at", "pk")
        .values_list("from_status", "to_status")
    )
    assert transitions == [("active", "disabled"), ("disabled", "active")]


def test_it_reenables_a_dead_grant_as_still_needing_reauthorization(admin_client, connection):
    connection.change_status(Connection.Status.NEEDS_REAUTH, reason="invalid_grant")
    admin_client.post(changelist_url(), {"action": "disable", "_selected_action": [connection.pk]})
    admin_client.post(changelist_url(), {"action": "enable", "_selected_action": [connection.pk]})
    connection.refresh_from_db()
    assert connection.status == Connection.Status.NEEDS_REAUTH


def test_it_shows_providers(admin_client, db):
    provider = ProviderFactory(name="Acme", token_url="https://login.acme.test/oauth/token")
    response = admin_client.get(reverse("admin:connections_provider_changelist"))
    assert response.status_code == 200
    assert "login.acme.test" in response.content.decode()
    response = admin_client.get(reverse("admin:connections_provider_change", args=[provider.pk]))
    assert response.status_code == 200
    assert Provider.objects.count() == 1


def test_it_lists_reauthorization_links_read_only(admin_client, connection):
    ReauthLink.objects.create(
        connection=connection, nonce_hash="0" * 64, expires_at=timezone.now() + timedelta(days=7)
    )
    response = admin_client.get(reverse("admin:connections_reauthlink_changelist"))
    assert response.status_code == 200
    assert "Analytics export" in response.content.decode()
    assert admin_client.get(reverse("admin:connections_reauthlink_add")).status_code == 403


def test_it_shows_history_pages_without_secrets(admin_client, connection):
    connection.change_status(Connection.Status.DEGRADED, reason="timeout")
    for name in ("statuschange", "refreshattempt"):
        response = admin_client.get(reverse(f"admin:connections_{name}_changelist"))
        assert response.status_code == 200
        assert_no_secrets(response.content.decode())


def test_it_queues_a_refresh_and_a_health_check_for_the_workers(admin_client):
    from django_q.models import OrmQ

    connection = ConnectionFactory(authorized=True)
    url = reverse("admin:connections_connection_changelist")
    for action in ("refresh_now", "check_now"):
        response = admin_client.post(
            url, {"action": action, "_selected_action": [connection.pk]}, follow=True
        )
        assert response.status_code == 200
    queued = [task.task for task in OrmQ.objects.all()]
    assert sorted(task["func"] for task in queued) == [
        "connections.tasks.check_health",
        "connections.tasks.refresh",
    ]
    assert all(task["args"] == (connection.pk,) for task in queued)


def test_it_shows_a_backup_loop_next_to_the_backup_field(admin_client, connection):
    spare = ConnectionFactory(slug="spare", backup=connection)
    refusals = {connection.pk: "its own backup", spare.pk: "loop: analytics -> spare -> analytics"}
    for backup, words in refusals.items():
        data = form_data(admin_client.get(change_url(connection))) | {"backup": backup}
        response = admin_client.post(change_url(connection), data)
        assert response.status_code == 200
        assert words in response.context["adminform"].form.errors["backup"][0]
    assert Connection.objects.get(pk=connection.pk).backup is None
