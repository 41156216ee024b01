"""Data migrations, run forward and back against the models as they were at each step."""

from datetime import timedelta
from importlib import import_module

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from connections.models import Provider
from tests.support.migrations import migrating

migrating_db = pytest.mark.django_db(transaction=True)

BEFORE_QUIRKS = "0004_held_grants"
QUIRKS = "0005_preset_token_request_quirks"
MIGRATION_0005 = import_module(f"connections.migrations.{QUIRKS}")
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


def refusals(provider: Provider) -> list[str]:
    """What the model's own validation says against a provider (nothing saved or queried)."""
    try:
        provider.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        return exc.messages
    return []


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


# --- 0006: public clients ----------------------------------------------------------------


@migrating_db
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


@migrating_db
def test_0006_backwards_gives_every_public_client_a_method_the_older_schema_knows():
    with migrating("connections") as migrator:
        new = migrator.to(PUBLIC_CLIENTS)
        make_provider(new, "typed-in", token_endpoint_auth_method="none", use_pkce=True)
        old = migrator.to(BEFORE_PUBLIC_CLIENTS)
        Provider = old.get_model("connections", "Provider")
        method = Provider.objects.get(slug="typed-in").token_endpoint_auth_method
        assert method == "client_secret_post"


# --- 0005: token-request quirks for providers made before presets carried them -------------


@pytest.mark.parametrize("preset", sorted(MIGRATION_0005.QUIRKS))
def test_0005_froze_only_quirks_the_provider_model_accepts(preset):
    quirks = MIGRATION_0005.QUIRKS[preset]
    assert set(quirks) <= set(MIGRATION_0005.DEFAULTS)
    provider = Provider(
        slug=preset,
        name=preset,
        preset=preset,
        authorize_url="https://auth.example.com/authorize",
        token_url="https://auth.example.com/token",
        **MIGRATION_0005.DEFAULTS | quirks,
    )
    assert refusals(provider) == []
    provider.token_request_headers = {"Authorization": "Basic x"}  # what a bad quirk would do
    assert refusals(provider) != []


def test_0005_froze_a_salesforce_lifetime_the_provider_model_accepts():
    provider = Provider(
        slug="salesforce",
        name="Salesforce",
        authorize_url="https://login.salesforce.com/services/oauth2/authorize",
        token_url="https://login.salesforce.com/services/oauth2/token",
        access_token_lifetime=MIGRATION_0005.SALESFORCE_SESSION_TIMEOUT,
    )
    assert refusals(provider) == []
    assert timedelta(0) < MIGRATION_0005.SALESFORCE_SESSION_TIMEOUT


@migrating_db
def test_0005_fills_only_quirks_still_at_their_defaults():
    with migrating("connections") as migrator:
        old = migrator.to(BEFORE_QUIRKS)
        make_provider(old, "shop", preset="shopify")
        make_provider(old, "shop-edited", preset="shopify", token_request_params={"x": "1"})
        make_provider(old, "jira", preset="atlassian", token_request_headers={"X-Edit": "1"})
        make_provider(old, "github", preset="github-app", token_request_encoding="json")
        make_provider(old, "sf", preset="salesforce")
        hour = timedelta(hours=1)
        make_provider(old, "sf-edited", preset="salesforce", access_token_lifetime=hour)
        make_provider(old, "typed-in", preset="")

        new = migrator.to(QUIRKS)
        Provider = new.get_model("connections", "Provider")
        fields = (
            "token_request_params",
            "token_request_headers",
            "token_request_encoding",
            "access_token_lifetime",
        )
        rows = {row[0]: row[1:] for row in Provider.objects.values_list("slug", *fields)}
        accept_json = {"Accept": "application/json"}
        assert rows == {
            "shop": ({"expiring": "1"}, {}, "form", None),
            "shop-edited": ({"x": "1"}, {}, "form", None),  # the admin's edit is kept
            # The headers were edited and are kept; the encoding was still the default.
            "jira": ({}, {"X-Edit": "1"}, "json", None),
            "github": ({}, accept_json, "json", None),  # the edited encoding is kept
            "sf": ({}, {}, "form", MIGRATION_0005.SALESFORCE_SESSION_TIMEOUT),
            "sf-edited": ({}, {}, "form", hour),
            "typed-in": ({}, {}, "form", None),
        }
