"""Where a provider's token-request quirks are configured: presets, the CLI (typed-in endpoints,
through `services.connection_create`) and the Provider admin (through `services.provider_*`).
Each refuses what cannot be sent as asked, names the input at fault and keeps what it had.
Migration 0005 (quirks for older preset providers): tests/connections/test_migrations.py."""

import json

import pytest
from django.urls import reverse

from connections.models import Connection, Provider
from connections.presets import (
    PresetError,
    provider_from_preset,
    provider_from_urls,
)
from tests.factories import ProviderFactory
from tests.support.admin import form_data
from tests.support.cli import command_fails, run_command

pytestmark = pytest.mark.django_db

HEADER_SECRET = "header-secret-91ad"
ENDPOINTS = ("--authorize-url", "https://id.example.test/authorize")
TOKEN_URL = ("--token-url", "https://id.example.test/token")


def create(*extra: str) -> tuple[str, str]:
    return run_command(
        "connection", "create", "Shop export", "--client-id", "cid", "--client-secret", "s",
        *extra,
    )  # fmt: skip


def create_fails(*extra: str) -> str:
    return command_fails(
        "connection", "create", "Shop export", "--client-id", "cid", "--client-secret", "s",
        *extra,
    )  # fmt: skip


# --- presets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slug", "params", "headers", "encoding"),
    [
        ("shopify", {"expiring": "1"}, {}, "form"),
        (
            "intuit-quickbooks",
            {},
            {"Accept": "application/json", "x-include-refresh-token-hard-expires-in": "true"},
            "form",
        ),
        ("atlassian", {}, {}, "json"),
        ("notion", {}, {}, "json"),
        ("google", {}, {}, "form"),
    ],
)
def test_a_provider_made_from_a_preset_carries_its_token_request_quirks(
    slug, params, headers, encoding
):
    preset_params = {"shop": "acme"} if slug == "shopify" else {}
    provider = provider_from_preset(slug, params=preset_params)
    provider.refresh_from_db()
    assert provider.token_request_params == params
    assert provider.token_request_headers == headers
    assert provider.token_request_encoding == encoding


# --- the CLI, typed-in endpoints -----------------------------------------------------------


def test_the_cli_makes_a_provider_with_the_token_request_quirks_typed_in():
    create(
        *ENDPOINTS, *TOKEN_URL, "--auth-method", "client_secret_post",
        "--token-param", "expiring=1", "--token-param", "audience=api.example.test",
        "--token-header", "Accept=application/json", "--token-encoding", "json",
    )  # fmt: skip
    provider = Connection.objects.get(slug="shop-export").provider
    assert provider.token_request_params == {"expiring": "1", "audience": "api.example.test"}
    assert provider.token_request_headers == {"Accept": "application/json"}
    assert provider.token_request_encoding == "json"


def test_the_cli_without_quirks_makes_a_plain_rfc6749_provider():
    create(*ENDPOINTS, *TOKEN_URL)
    provider = Provider.objects.get()
    assert (provider.token_request_params, provider.token_request_headers) == ({}, {})
    assert provider.token_request_encoding == "form"


@pytest.mark.parametrize(
    ("extra", "option", "words"),
    [
        (["--token-header", f"Authorization=Bearer {HEADER_SECRET}"], "--token-header", "sets it"),
        (["--token-header", f"content-type={HEADER_SECRET}"], "--token-header", "sets it"),
        (["--token-param", "grant_type=password"], "--token-param", "sends it itself"),
        (["--token-param", "client_secret=x"], "--token-param", "sends it itself"),
    ],
)
def test_the_cli_refuses_a_quirk_that_would_replace_the_request_itself(extra, option, words):
    message = create_fails(*ENDPOINTS, *TOKEN_URL, *extra)
    assert message.startswith(f"{option}: ") and words in message
    assert HEADER_SECRET not in message
    assert not Provider.objects.exists() and not Connection.objects.exists()


def test_the_cli_refuses_an_unknown_encoding():
    message = create_fails(*ENDPOINTS, *TOKEN_URL, "--token-encoding", "xml")
    assert "invalid choice: 'xml'" in message


@pytest.mark.parametrize(
    "extra",
    [
        ["--token-param", "expiring=1"],
        ["--token-header", "Accept=application/json"],
        ["--token-encoding", "json"],
    ],
)
def test_the_cli_keeps_a_presets_quirks_to_the_preset(extra):
    message = create_fails("--preset", "shopify", "--preset-param", "shop=acme", *extra)
    assert "go with typed-in endpoints" in message and "edited on the provider" in message
    assert not Provider.objects.exists()


def test_it_refuses_to_reuse_a_provider_whose_token_requests_differ():
    existing = provider_from_urls(
        "https://id.example.test/authorize",
        "https://id.example.test/token",
        token_request={"token_request_encoding": "json"},
    )
    with pytest.raises(PresetError) as info:
        provider_from_urls(
            existing.authorize_url,
            existing.token_url,
            token_request={"token_request_params": {"expiring": "1"}},
        )
    assert info.value.field == "token_request_params"
    assert existing.slug in str(info.value)
    # Left out, the quirks are the existing provider's: it is reused as it is.
    assert provider_from_urls(existing.authorize_url, existing.token_url) == existing
    same = provider_from_urls(
        existing.authorize_url,
        existing.token_url,
        token_request={"token_request_encoding": "json"},
    )
    assert same == existing and Provider.objects.count() == 1


# --- the Provider admin --------------------------------------------------------------------


def test_the_admin_edits_token_request_quirks(admin_client):
    provider = ProviderFactory()
    url = reverse("admin:connections_provider_change", args=[provider.pk])
    data = form_data(admin_client.get(url)) | {
        "extra_authorize_params": "{}",
        "token_request_params": '{"expiring": "1"}',
        "token_request_headers": '{"Accept": "application/json"}',
        "token_request_encoding": "json",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    provider.refresh_from_db()
    assert provider.token_request_params == {"expiring": "1"}
    assert provider.token_request_headers == {"Accept": "application/json"}
    assert provider.token_request_encoding == "json"


def test_the_admin_refuses_a_reserved_header_next_to_the_field_and_keeps_the_old_one(
    admin_client,
):
    provider = ProviderFactory(token_request_headers={"Accept": "application/json"})
    url = reverse("admin:connections_provider_change", args=[provider.pk])
    data = form_data(admin_client.get(url)) | {
        "extra_authorize_params": "{}",
        "token_request_params": "{}",
        "token_request_headers": json.dumps({"Authorization": f"Basic {HEADER_SECRET}"}),
    }
    response = admin_client.post(url, data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["token_request_headers"]
    assert "tokenadmin sets it" in " ".join(errors)
    provider.refresh_from_db()
    assert provider.token_request_headers == {"Accept": "application/json"}
