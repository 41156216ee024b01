"""Add and edit pages, the discovery preview, and link pages that lead somewhere."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from connections.links import build_reauth_link
from connections.models import Connection, Provider, ReauthLink
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db


def add_data(**extra):
    return {
        "name": "Sheets export",
        "source": "preset",
        "preset": "google",
        "client_id": "cid-1",
        "client_secret": "TYPED-SECRET-31f",
        "save": "1",
    } | extra


def test_the_add_page_shows_each_presets_gotcha(admin_client):
    page = admin_client.get("/connections/add/").content.decode()
    assert "Testing" in page and "7-day refresh tokens" in page


def test_it_adds_from_a_preset_through_the_service(admin_client):
    response = admin_client.post("/connections/add/", add_data(issuer="https://ignored.example"))
    connection = Connection.objects.get(slug="sheets-export")
    assert response["Location"] == f"/connections/{connection.slug}/"
    assert connection.provider.preset == "google" and connection.client_secret == "TYPED-SECRET-31f"


def test_save_and_authorize_goes_to_a_fresh_link(admin_client):
    data = add_data(save_authorize="1")
    del data["save"]
    response = admin_client.post("/connections/add/", data)
    assert "/reauth/" in response["Location"]
    assert ReauthLink.objects.filter(connection__slug="sheets-export").count() == 1


def test_service_refusals_show_next_to_their_fields(admin_client):
    ConnectionFactory(slug="sheets-export")
    response = admin_client.post("/connections/add/", add_data())
    assert response.status_code == 400
    assert "already exists" in response.context["form"].errors["slug"][0]
    typed = add_data(source="endpoints", authorize_url="https://a.example/authorize", slug="x")
    response = admin_client.post("/connections/add/", typed)
    assert "needs a token endpoint" in response.context["form"].errors["token_url"][0]
    assert "TYPED-SECRET-31f" not in response.content.decode()


def test_discovery_is_shown_before_anything_is_saved(admin_client, auth_server):
    providers = Provider.objects.count()
    response = admin_client.post(
        "/connections/discover/", {"issuer": auth_server.issuer}, headers={"HX-Request": "true"}
    )
    body = response.content.decode()
    assert auth_server.token_url in body and "<html" not in body
    assert Provider.objects.count() == providers
    bad = admin_client.post("/connections/discover/", {"issuer": "not a url"})
    assert "must be an absolute http(s) URL" in bad.content.decode()


def test_the_edit_page_never_renders_the_secret_and_blank_keeps_it(admin_client):
    connection = ConnectionFactory(slug="edit-me", client_secret="STORED-SECRET-8a1")
    page = admin_client.get("/connections/edit-me/edit/").content.decode()
    assert "STORED-SECRET-8a1" not in page and connection.client_id in page
    data = {"name": "Renamed", "slug": "edit-me", "client_id": connection.client_id}
    response = admin_client.post("/connections/edit-me/edit/", data | {"client_secret": ""})
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.name == "Renamed" and connection.client_secret == "STORED-SECRET-8a1"
    admin_client.post("/connections/edit-me/edit/", data | {"client_secret": "NEW-SECRET"})
    connection.refresh_from_db()
    assert connection.client_secret == "NEW-SECRET"


def test_a_backup_loop_shows_next_to_the_backup_field(admin_client):
    primary = ConnectionFactory(slug="primary")
    ConnectionFactory(slug="spare", backup=primary)
    data = {"name": "P", "slug": "primary", "client_id": primary.client_id, "backup": "spare"}
    response = admin_client.post("/connections/primary/edit/", data)
    assert "loop" in response.context["form"].errors["backup"][0]


# --- link pages ---------------------------------------------------------------------------------


def expired_link(connection: Connection) -> str:
    link = build_reauth_link(connection)
    ReauthLink.objects.filter(connection=connection).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    return link.removeprefix("http://testserver")


def test_an_expired_link_names_the_connection_and_whom_to_ask():
    connection = ConnectionFactory(name="Nightly analytics", contact_email="owner@example.com")
    response = Client().get(expired_link(connection))
    body = response.content.decode()
    assert response.status_code == 410
    assert "Nightly analytics" in body
    assert 'Ask <a href="mailto:owner@example.com">owner@example.com</a>' in body
    orphan = ConnectionFactory(name="Orphan", contact_email="")
    assert "Ask an administrator" in Client().get(expired_link(orphan)).content.decode()


def test_an_expired_link_offers_staff_a_fresh_one_in_one_click(admin_client):
    connection = ConnectionFactory(slug="dead", authorized=True)
    response = admin_client.get(expired_link(connection))
    assert 'action="/connections/dead/authorize/"' in response.content.decode()
    assert response["Referrer-Policy"] == "same-origin"
    fresh = admin_client.post("/connections/dead/authorize/")
    assert "/reauth/" in fresh["Location"]


def test_a_used_link_names_the_connection():
    connection = ConnectionFactory(name="Used one")
    link = build_reauth_link(connection)
    ReauthLink.objects.update(consumed_at=timezone.now())
    body = Client().get(link.removeprefix("http://testserver")).content.decode()
    assert "Used one" in body and "already used" in body


def test_an_altered_link_says_ask_an_administrator():
    response = Client().get("/reauth/not-a-real-token/")
    assert response.status_code == 400
    assert "Ask an administrator" in response.content.decode()
