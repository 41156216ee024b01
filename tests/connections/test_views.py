"""The dashboard's list page (`/`): staff only, no secret in the HTML, constant query count,
the htmx live region, the empty state."""

import pytest
from django.test import Client

from connections.models import Connection
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db


def test_it_lists_connections_without_secrets(admin_client):
    connection = ConnectionFactory(
        name="Nightly analytics",
        authorized=True,
        access_token="access-token-SECRET-a1",
        refresh_token="refresh-token-SECRET-r1",
        client_secret="client-secret-SECRET-c1",
    )
    response = admin_client.get("/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Nightly analytics" in page and "Active" in page
    assert f'href="/connections/{connection.slug}/"' in page
    for secret in (connection.access_token, connection.refresh_token, connection.client_secret):
        assert secret not in page
    assert "SECRET" not in page
    assert 'name="csrfmiddlewaretoken"' in page  # only the logout form's
    assert page.count('name="csrfmiddlewaretoken"') == 1


def test_it_is_for_staff_only(django_user_model):
    assert Client().get("/")["Location"].startswith("/admin/login/")
    user = django_user_model.objects.create_user(username="bob", password="pw")
    client = Client()
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_it_costs_the_same_queries_at_5_and_50_connections(admin_client, django_assert_num_queries):
    def count(n: int) -> int:
        Connection.objects.all().delete()
        ConnectionFactory.create_batch(n, authorized=True)
        from django.db import connection as db
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(db) as queries:
            assert admin_client.get("/").status_code == 200
        return len(queries)

    small, large = count(5), count(50)
    assert small == large
    ConnectionFactory.create_batch(3, authorized=True)
    with django_assert_num_queries(small):
        admin_client.get("/")


def test_it_answers_htmx_polls_with_the_live_region_only(admin_client):
    ConnectionFactory(name="Polled", status=Connection.Status.NEEDS_REAUTH)
    response = admin_client.get(
        "/?status=needs_reauth", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="dashboard-live"
    )
    body = response.content.decode()
    assert response.status_code == 200 and "HX-Request" in response["Vary"]
    assert body.lstrip().startswith('<div id="dashboard-live"') and "<html" not in body
    assert "Polled" in body and 'hx-get="/?status=needs_reauth"' in body


def test_it_tells_a_newcomer_how_to_add_the_first_connection(admin_client):
    page = admin_client.get("/").content.decode()
    assert "No connections yet" in page
    assert "manage.py connection create" in page and "/connections/add/" in page
