"""`manage.py connection create`: the options a person types become one `connection_create`
call, and a refused value comes back named by its option."""

import json
from unittest import mock

import pytest

from connections import services
from connections.models import Connection, Provider
from tests.support.cli import command_fails, run_command

pytestmark = pytest.mark.django_db

SECRET = "CS-typed-in-never-printed"


def create(*extra: str, name: str = "Graph export") -> tuple[str, str]:
    return run_command(
        "connection", "create", name, "--client-id", "cid", "--client-secret", SECRET, *extra
    )


def test_it_creates_through_the_connection_service():
    with mock.patch.object(services, "connection_create", wraps=services.connection_create) as spy:
        create("--preset", "xero", "--scope", "accounting.transactions")
    spy.assert_called_once()
    assert spy.call_args.kwargs["scopes"] == ["accounting.transactions"]
    stored = Connection.objects.get(slug="graph-export")
    assert stored.scopes == "accounting.transactions offline_access"


def test_it_stores_the_contact_and_the_account_the_grant_must_belong_to():
    out, err = create(
        "--preset", "xero", "--contact", "owner@example.com", "--expect-account", "acct-7", "--json"
    )  # fmt: skip
    connection = Connection.objects.get(slug=json.loads(out)["slug"])
    assert connection.contact_email == "owner@example.com"
    assert connection.expected_account == "acct-7"
    assert SECRET not in out + err


@pytest.mark.parametrize(
    ("extra", "option", "words"),
    [
        (["--contact", "not-an-email"], "--contact", "valid email address"),
        (["--slug", "no spaces"], "--slug", "not a valid slug"),
        (["--token-url", "https://x.test/t"], "--token-url", "goes with typed-in endpoints"),
        (["--preset-param", "tenant=x"], "--preset-param", "does not take tenant"),
    ],
)
def test_it_names_the_option_of_a_refused_value(extra, option, words):
    message = command_fails(
        "connection", "create", "X", "--client-id", "c", "--client-secret", "s",
        "--preset", "xero", *extra,
    )  # fmt: skip
    assert message.startswith(f"{option}: ")
    assert words in message
    assert not Connection.objects.exists()
    assert not Provider.objects.exists()  # refused before the provider was made


def test_it_passes_on_the_preset_s_note_on_stderr():
    out, err = create("--preset", "xero")
    assert "Note on preset xero:" in err
    assert "Note on preset" not in out
