import pytest
from django.test import Client

from tests.factories import ConnectionFactory


@pytest.mark.django_db
def test_the_dashboard_lists_connections_without_secrets(admin_client):
    connection = ConnectionFactory(name="Nightly analytics", authorized=True)
    response = admin_client.get("/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Nightly analytics" in page and "Active" in page
    for secret in (connection.access_token, connection.refresh_token, connection.client_secret):
        assert secret not in page


@pytest.mark.django_db
def test_the_dashboard_is_for_staff_only():
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
