"""`GET /api/v1/connections[/<slug>]`: pages by slug, status filters, one query, no secrets."""

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection as db_connection
from django.test import Client
from django.utils import timezone

from connections.listing import encode_cursor
from connections.models import ApiKey, Connection
from tests.factories import ConnectionFactory, ProviderFactory

pytestmark = pytest.mark.django_db

LIST_URL = "/api/v1/connections"


def _client(*, connections: list[Connection] | None = None) -> Client:
    if connections is None:
        _, raw_key = ApiKey.issue(name="all", all_connections=True)
    else:
        _, raw_key = ApiKey.issue(name="some", connections=connections)
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")


def _connections(count: int, **fields: Any) -> list[Connection]:
    provider = ProviderFactory()
    return [
        ConnectionFactory(slug=f"conn-{n:04d}", provider=provider, **fields) for n in range(count)
    ]


def _walk(client: Client, url: str) -> list[dict[str, Any]]:
    """Every page from `url` on, following `next` as a client would."""
    pages: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url is not None:
        response = client.get(next_url)
        assert response.status_code == 200, response.content
        pages.append(response.json())
        next_url = pages[-1]["next"]
    return pages


@contextmanager
def recorded_sql() -> Iterator[list[str]]:
    """Every SQL statement run inside the block (Django's query log resets per request)."""
    statements: list[str] = []

    def record(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        statements.append(sql)
        return execute(sql, params, many, context)

    with db_connection.execute_wrapper(record):
        yield statements


def test_it_pages_by_slug_100_at_a_time_with_an_absolute_next_url():
    _connections(230)
    pages = _walk(_client(), LIST_URL)
    assert [len(page["connections"]) for page in pages] == [100, 100, 30]
    assert pages[0]["next"].startswith("http://testserver/api/v1/connections?cursor=")
    assert pages[-1]["next"] is None
    slugs = [c["slug"] for page in pages for c in page["connections"]]
    assert slugs == [f"conn-{n:04d}" for n in range(230)]


def test_it_answers_one_page_with_no_next_when_everything_fits():
    _connections(3)
    body = _client().get(LIST_URL).json()
    assert [c["slug"] for c in body["connections"]] == ["conn-0000", "conn-0001", "conn-0002"]
    assert body["next"] is None


def test_it_takes_a_limit_up_to_500_and_keeps_it_in_next():
    _connections(7)
    pages = _walk(_client(), f"{LIST_URL}?limit=3")
    assert [len(page["connections"]) for page in pages] == [3, 3, 1]
    assert "limit=3" in pages[0]["next"]
    assert _client().get(f"{LIST_URL}?limit=500").status_code == 200


@pytest.mark.parametrize("limit", ["0", "501", "-1", "abc", "2.5", "²", "", "9" * 5000])
def test_it_refuses_a_limit_outside_1_to_500_with_a_clear_message(limit):
    response = _client().get(LIST_URL, {"limit": limit})
    assert response.status_code == 400
    body = response.json()
    assert body == {
        "error": "bad_request",
        "message": "limit must be a whole number from 1 to 500.",
    }


def test_it_filters_by_status_across_pages():
    provider = ProviderFactory()
    for n in range(5):
        ConnectionFactory(slug=f"a-{n}", provider=provider, authorized=True)
        ConnectionFactory(
            slug=f"b-{n}", provider=provider, authorized=True, status=Connection.Status.EXPIRING
        )
        ConnectionFactory(slug=f"c-{n}", provider=provider, status=Connection.Status.PENDING)
        ConnectionFactory(slug=f"d-{n}", provider=provider, status=Connection.Status.NEEDS_REAUTH)
    client = _client()

    pages = _walk(client, f"{LIST_URL}?status=active,expiring&limit=4")
    listed = [(c["slug"], c["status"]) for page in pages for c in page["connections"]]
    assert listed == [(f"a-{n}", "active") for n in range(5)] + [
        (f"b-{n}", "expiring") for n in range(5)
    ]
    # Repeated parameters work like a comma-separated list.
    repeated = client.get(f"{LIST_URL}?status=needs_reauth&status=pending").json()
    assert {c["status"] for c in repeated["connections"]} == {"needs_reauth", "pending"}
    assert len(repeated["connections"]) == 10


@pytest.mark.parametrize("status", ["broken", "active,broken", "ACTIVE", "", "active,"])
def test_it_refuses_an_unknown_status_naming_the_known_ones(status):
    response = _client().get(LIST_URL, {"status": status})
    assert response.status_code == 400
    message = response.json()["message"]
    assert message.startswith("status '")
    assert "active, expiring, needs_reauth, degraded, disabled" in message


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64!",
        "abcde",  # a length no base64 text has
        base64.urlsafe_b64encode(b"../etc").decode(),
        base64.urlsafe_b64encode(b"\x00\xff").decode(),
        base64.urlsafe_b64encode("café".encode()).decode(),
        "\U000548d5\x1c",  # not ASCII at all (schemathesis found it answered 500)
    ],
)
def test_it_refuses_a_cursor_it_did_not_issue(cursor):
    response = _client().get(LIST_URL, {"cursor": cursor})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert "follow the `next` URL" in response.json()["message"]


def test_it_continues_after_the_cursor_when_connections_come_and_go_between_pages():
    connections = _connections(6)
    client = _client()
    first = client.get(f"{LIST_URL}?limit=3").json()
    assert [c["slug"] for c in first["connections"]] == ["conn-0000", "conn-0001", "conn-0002"]
    # Before the next page: one added before the boundary, one removed after it.
    ConnectionFactory(slug="conn-0000a", provider=connections[0].provider)
    connections[4].delete()
    rest = client.get(first["next"]).json()
    assert [c["slug"] for c in rest["connections"]] == ["conn-0003", "conn-0005"]
    assert rest["next"] is None


def test_it_pages_only_through_the_keys_connections():
    connections = _connections(6)
    allowed = connections[1::2]
    pages = _walk(_client(connections=allowed), f"{LIST_URL}?limit=2")
    assert [[c["slug"] for c in page["connections"]] for page in pages] == [
        ["conn-0001", "conn-0003"],
        ["conn-0005"],
    ]
    # A cursor from a wider key shows nothing beyond this key's scope.
    cursor = encode_cursor("conn-0000")
    scoped = _client(connections=allowed).get(LIST_URL, {"cursor": cursor}).json()
    assert [c["slug"] for c in scoped["connections"]] == ["conn-0001", "conn-0003", "conn-0005"]


@pytest.mark.parametrize("scoped", [False, True])
def test_it_reads_the_same_queries_at_any_size_and_never_a_secret_column(scoped):
    def list_sql(count: int) -> list[str]:
        Connection.objects.all().delete()
        # A known refresh expiry of unknown kind: `reauthorize_by` consults the provider's
        # rotation habit too, so every column the summary can read is read.
        connections = _connections(
            count, authorized=True, refresh_expires_at=timezone.now() + timedelta(days=30)
        )
        for connection in connections[::2]:
            connection.backup = connections[-1]
            connection.save(update_fields=["backup"])
        client = _client(connections=connections if scoped else None)
        with recorded_sql() as statements:
            response = client.get(LIST_URL)
        assert response.status_code == 200
        assert len(response.json()["connections"]) == min(count, 100)
        return statements

    small, large = list_sql(3), list_sql(150)
    assert len(small) == len(large) <= 3
    text = " ".join(large).lower()
    assert "_encrypted" not in text
    # Every row needs its provider and its backup's slug: joined, not fetched one by one.
    assert sum('from "connections_connection"' in sql.lower() for sql in large) == 1


def test_it_shows_each_connection_as_the_cli_does_without_secrets():
    provider = ProviderFactory(slug="acme")
    backup = ConnectionFactory(slug="spare", provider=provider, authorized=True)
    ConnectionFactory(
        slug="main",
        name="Main export",
        provider=provider,
        authorized=True,
        backup=backup,
        account_label="ops@example.com",
    )
    client = _client()
    listed = client.get(LIST_URL).json()["connections"]
    detail = client.get(f"{LIST_URL}/main").json()
    assert listed[0] == detail
    assert detail["backup"] == "spare"
    assert detail["provider"] == "acme"
    assert detail["account"] == "ops@example.com"
    assert detail["scopes"] == "openid offline_access"
    body = client.get(LIST_URL).content.decode()
    for connection in Connection.objects.all():
        for secret in (connection.access_token, connection.refresh_token, connection.client_secret):
            assert secret not in body


def test_it_answers_the_detail_of_a_connection_outside_the_key_with_403():
    inside, outside = _connections(2)
    client = _client(connections=[inside])
    assert client.get(f"{LIST_URL}/{inside.slug}").status_code == 200
    response = client.get(f"{LIST_URL}/{outside.slug}")
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
