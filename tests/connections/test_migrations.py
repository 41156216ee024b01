"""Data migrations, run forward and back against the models as they were at each step."""

import pytest
from django.db import connection

from tests.support.migrations import migrating

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_PUBLIC_CLIENTS = "0005_preset_token_request_quirks"
PUBLIC_CLIENTS = "0006_public_clients"
SECRET = "CS-kept-7f1"
UNREADABLE = b"\x00not ciphertext"


def make_provider(apps, slug: str, **fields):
    Provider = apps.get_model("connections", "Provider")
    return Provider.objects.create(
        slug=slug,
        name=slug,
        authorize_url="https://auth.example.com/authorize",
        token_url="https://auth.example.com/token",
        **fields,
    )


def make_connection(apps, provider, slug: str, secret: str):
    Connection = apps.get_model("connections", "Connection")
    return Connection.objects.create(
        name=slug, slug=slug, provider=provider, client_id=slug, client_secret=secret
    )


def stored_ciphertext(slug: str) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT client_secret_encrypted FROM connections_connection WHERE slug = %s", [slug]
        )
        return bytes(cursor.fetchone()[0])


def make_unreadable(slug: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE connections_connection SET client_secret_encrypted = %s WHERE slug = %s",
            [UNREADABLE, slug],
        )


def test_0006_makes_looker_providers_public_without_reading_a_secret_and_back():
    with migrating("connections") as migrator:
        old = migrator.to(BEFORE_PUBLIC_CLIENTS)
        post = {"token_endpoint_auth_method": "client_secret_post"}
        looker = make_provider(old, "looker-acme", preset="looker", use_pkce=True, **post)
        edited = make_provider(old, "looker-edited", preset="looker", use_pkce=False, **post)
        google = make_provider(old, "google", preset="google", **post)
        make_connection(old, looker, "stand-in", "stand-in-secret")
        make_connection(old, looker, "unreadable", "whatever")
        make_unreadable("unreadable")  # decrypting it would raise: the migration must not try
        make_connection(old, google, "kept", SECRET)
        make_connection(old, google, "kept-unreadable", "whatever")
        make_unreadable("kept-unreadable")

        new = migrator.to(PUBLIC_CLIENTS)
        Provider = new.get_model("connections", "Provider")
        Connection = new.get_model("connections", "Connection")
        methods = dict(Provider.objects.values_list("slug", "token_endpoint_auth_method"))
        assert methods == {
            looker.slug: "none",
            edited.slug: "client_secret_post",
            google.slug: "client_secret_post",
        }
        blanked = Connection.objects.filter(slug__in=["stand-in", "unreadable"])
        assert [(c.client_secret, c.client_secret_set_at) for c in blanked] == [("", None)] * 2
        assert Connection.objects.get(slug="kept").client_secret == SECRET
        assert stored_ciphertext("kept-unreadable") == UNREADABLE

        old = migrator.to(BEFORE_PUBLIC_CLIENTS)
        Provider = old.get_model("connections", "Provider")
        Connection = old.get_model("connections", "Connection")
        methods = set(Provider.objects.values_list("token_endpoint_auth_method", flat=True))
        assert methods == {"client_secret_post"}
        # The stand-in secrets are gone for good; the others are as they were.
        assert Connection.objects.get(slug="stand-in").client_secret == ""
        assert Connection.objects.get(slug="kept").client_secret == SECRET


def test_0006_backwards_gives_every_public_client_a_method_the_older_schema_knows():
    with migrating("connections") as migrator:
        new = migrator.to(PUBLIC_CLIENTS)
        make_provider(new, "typed-in", token_endpoint_auth_method="none", use_pkce=True)
        old = migrator.to(BEFORE_PUBLIC_CLIENTS)
        Provider = old.get_model("connections", "Provider")
        method = Provider.objects.get(slug="typed-in").token_endpoint_auth_method
        assert method == "client_secret_post"
