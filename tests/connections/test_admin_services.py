"""The admin saves through `connections.services`: the same rules as the CLI and the API."""

from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from connections import services
from connections.models import Connection, Provider, StatusChange
from tests.factories import ConnectionFactory, ProviderFactory
from tests.support.admin import NO_INLINE_ROWS, change_url, changelist_url, form_data


def spy(name: str) -> mock._patch:
    return mock.patch.object(services, name, wraps=getattr(services, name))


@pytest.fixture
def connection(db) -> Connection:
    return ConnectionFactory(
        authorized=True,
        slug="analytics",
        refresh_expires_at=timezone.now() + timedelta(days=30),
        last_refreshed_at=timezone.now(),
    )


def test_it_creates_through_the_service_and_shows_its_notes(admin_client, db):
    provider = ProviderFactory(name="Acme ID", default_scopes="openid offline_access")
    with spy("connection_create") as create:
        response = admin_client.post(
            reverse("admin:connections_connection_add"),
            {
                "name": "New export",
                "slug": "new-export",
                "provider": provider.pk,
                "client_id": "client-new",
                "new_client_secret": "CS-brand-new",
                "scopes": "read",
                "refresh_threshold": 300,
                "contact_email": "owner@example.com",
                "expected_account": "acct-9",
                **NO_INLINE_ROWS,
            },
            follow=True,
        )
    create.assert_called_once()
    created = Connection.objects.get(slug="new-export")
    assert (created.scopes, created.contact_email, created.expected_account) == (
        "read offline_access",
        "owner@example.com",
        "acct-9",
    )
    assert created.client_secret_set_at is not None
    notes = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("Also requesting offline_access: Acme ID" in note for note in notes)
    assert "CS-brand-new" not in response.content.decode()


def test_it_edits_through_the_service(admin_client, connection):
    data = form_data(admin_client.get(change_url(connection)))
    data |= {"refresh_threshold": 900, "new_client_secret": "CS-rotated"}
    with spy("connection_update") as update:
        assert admin_client.post(change_url(connection), data).status_code == 302
    update.assert_called_once()
    assert update.call_args.kwargs["changes"] == {"refresh_threshold": 900}
    stored = Connection.objects.get(pk=connection.pk)
    assert stored.client_secret == "CS-rotated"
    assert stored.refresh_due_at == stored.access_expires_at - timedelta(seconds=900)


def test_it_edits_and_adds_providers_through_the_service(admin_client, connection):
    url = reverse("admin:connections_provider_change", args=[connection.provider.pk])
    data = form_data(admin_client.get(url)) | {"extra_authorize_params": "{}"}
    data |= {"token_request_params": "{}", "token_request_headers": "{}"}
    data |= {"refresh_token_expiry": "sliding", "refresh_token_lifetime": "90 00:00:00"}
    with spy("provider_update") as update:
        response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    update.assert_called_once()
    assert Connection.objects.get(pk=connection.pk).renew_due_at is not None

    data |= {"slug": "copy", "name": "Copy"}
    with spy("provider_create") as create:
        response = admin_client.post(reverse("admin:connections_provider_add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    create.assert_called_once()
    assert Provider.objects.get(slug="copy").refresh_token_expiry == "sliding"


def test_it_disables_and_enables_through_the_service(admin_client, connection, admin_user):
    with spy("connection_disable") as disable, spy("connection_enable") as enable:
        for action in ("disable", "enable"):
            admin_client.post(
                changelist_url(), {"action": action, "_selected_action": [connection.pk]}
            )
    disable.assert_called_once()
    enable.assert_called_once()
    reasons = StatusChange.objects.filter(connection=connection).order_by("pk")
    assert [r.reason for r in reasons] == [
        f"disabled by {admin_user} in the admin",
        f"enabled by {admin_user} in the admin",
    ]
