"""A pipeline reports a token the provider rejected (issue 6, item 5).

`POST /api/v1/connections/<slug>/token/rejected` with `{"token_sha256": "<64 lowercase hex>"}`
and `manage.py connection token SLUG --rejected` (token on stdin): refresh once, through single
flight, and only while the reported token is still the current one.
"""

import json
import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection as db_connection
from django.test import Client

from connections.models import ApiKey, Connection, RefreshAttempt
from tests.factories import ConnectionFactory
from tests.support.tokens import api_client, authorized_at_server, reload
from tokenadmin.hashing import sha256_hex

URL = "/api/v1/connections/analytics/token/rejected"


def report(client: Client, body: object, url: str = URL):
    return client.post(url, data=json.dumps(body), content_type="application/json")


@pytest.fixture
def raw_key(authorized_connection) -> str:
    return ApiKey.issue(name="pipeline", connections=[authorized_connection])[1]


def test_it_refreshes_a_token_that_is_still_current(
    authorized_connection, raw_key, auth_server_clean
):
    rejected = authorized_connection.access_token
    response = report(api_client(raw_key), {"token_sha256": sha256_hex(rejected)})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["refreshed"] is True
    assert body["access_token"] == reload(authorized_connection).access_token != rejected
    assert body["served_by"] == "analytics"
    assert auth_server_clean.stats()["refresh_calls"] == 1
    attempt = RefreshAttempt.objects.get(connection=authorized_connection)
    assert attempt.trigger == RefreshAttempt.Trigger.FORCED


def test_it_serves_the_current_token_for_a_token_already_replaced(
    authorized_connection, raw_key, auth_server_clean
):
    client = api_client(raw_key)
    old = sha256_hex(authorized_connection.access_token)
    assert report(client, {"token_sha256": old}).json()["refreshed"] is True
    current = reload(authorized_connection).access_token

    stale = report(client, {"token_sha256": old})
    assert stale.status_code == 200
    assert stale.json()["refreshed"] is False
    assert stale.json()["access_token"] == current
    assert auth_server_clean.stats()["refresh_calls"] == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_reports_of_one_token_make_one_provider_call(
    authorized_connection, raw_key, auth_server_clean
):
    auth_server_clean.set_latency(0.5)  # every report arrives while the refresh is in flight
    body = {"token_sha256": sha256_hex(authorized_connection.access_token)}
    callers = 10
    barrier = threading.Barrier(callers)
    answers: list[dict] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            barrier.wait(timeout=30)
            response = report(api_client(raw_key), body)
            assert response.status_code == 200, response.content
            answers.append(response.json())
        except BaseException as exc:
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert auth_server_clean.stats()["refresh_calls"] == 1
    new_token = reload(authorized_connection).access_token
    assert {answer["access_token"] for answer in answers} == {new_token}
    assert len(answers) == callers
    assert any(answer["refreshed"] for answer in answers)


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {},
        {"token_sha256": 5},
        {"token_sha256": "abc"},
        {"token_sha256": "A" * 64},
        {"token_sha256": "g" * 64},
        {"token": "the token itself"},
    ],
)
def test_it_refuses_a_missing_or_malformed_hash(authorized_connection, raw_key, body):
    response = report(api_client(raw_key), body)
    assert (response.status_code, response.json()["error"]) == (400, "bad_request")


def test_it_refuses_a_body_that_is_not_json(authorized_connection, raw_key):
    response = api_client(raw_key).post(URL, data="x=1", content_type="text/plain")
    assert response.status_code == 400


@pytest.mark.django_db
def test_it_answers_401_403_404_like_the_token_endpoint():
    ConnectionFactory(slug="analytics", authorized=True)
    other = ConnectionFactory(slug="billing", authorized=True)
    body = {"token_sha256": "0" * 64}
    assert report(Client(), body).status_code == 401
    _, billing_only = ApiKey.issue(name="billing", connections=[other])
    assert report(api_client(billing_only), body).status_code == 403
    missing = report(api_client(billing_only), body, url="/api/v1/connections/nope/token/rejected")
    assert missing.status_code == 404
    assert Client().get(URL).status_code == 405


def test_it_answers_409_when_the_grant_was_revoked(
    authorized_connection, raw_key, auth_server_clean
):
    auth_server_clean.revoke_all("alice")
    body = {"token_sha256": sha256_hex(authorized_connection.access_token)}
    response = report(api_client(raw_key), body)
    assert (response.status_code, response.json()["error"]) == (409, "needs_reauth")
    assert response.json()["dashboard_url"]
    assert reload(authorized_connection).status == Connection.Status.NEEDS_REAUTH


def test_it_answers_503_when_the_provider_is_down(
    authorized_connection, raw_key, auth_server_clean
):
    auth_server_clean.set_fault("503_retry_after", count=1)
    body = {"token_sha256": sha256_hex(authorized_connection.access_token)}
    response = report(api_client(raw_key), body)
    assert (response.status_code, response.json()["error"]) == (503, "provider_unavailable")
    assert int(response["Retry-After"]) >= 1


def test_a_rejected_token_of_a_revoked_primary_fails_over_to_the_backup(
    authorized_connection, dot_provider, auth_server_clean
):
    backup = authorized_at_server(auth_server_clean, dot_provider, slug="backup", username="bob")
    Connection.objects.filter(pk=authorized_connection.pk).update(backup=backup)
    _, raw_key = ApiKey.issue(name="both", connections=[authorized_connection, backup])
    auth_server_clean.revoke_all("alice")
    body = {"token_sha256": sha256_hex(authorized_connection.access_token)}
    response = report(api_client(raw_key), body)
    assert response.status_code == 200
    assert response.json()["served_by"] == "backup"
    assert response.json()["access_token"] == reload(backup).access_token
    assert response.json()["refreshed"] is True

    # The backup's token, rejected in turn, is the one refreshed.
    served = response.json()["access_token"]
    again = report(api_client(raw_key), {"token_sha256": sha256_hex(served)}).json()
    assert again["served_by"] == "backup"
    assert again["refreshed"] is True
    assert again["access_token"] == reload(backup).access_token != served


# --- the CLI -------------------------------------------------------------------------------


def run_rejected(slug: str, stdin: str) -> tuple[str, str]:
    """`printf '%s' "$stdin" | manage.py connection token SLUG --rejected`: (stdout, stderr)."""
    out, err = StringIO(), StringIO()
    call_command(
        "connection", "token", slug, "--rejected", stdin=StringIO(stdin), stdout=out, stderr=err
    )
    return out.getvalue(), err.getvalue()


def test_the_cli_refreshes_the_token_piped_on_stdin(authorized_connection, auth_server_clean):
    rejected = authorized_connection.access_token
    out, err = run_rejected("analytics", rejected + "\n")
    assert out == reload(authorized_connection).access_token + "\n"
    assert rejected not in out + err
    assert auth_server_clean.stats()["refresh_calls"] == 1

    # The same token again: already replaced, so the current one, without a provider call.
    out, err = run_rejected("analytics", rejected)
    assert out == reload(authorized_connection).access_token + "\n"
    assert "already replaced" in err
    assert auth_server_clean.stats()["refresh_calls"] == 1


@pytest.mark.parametrize("stdin", ["", "  \n", "two tokens\n"])
def test_the_cli_needs_one_token_on_stdin(authorized_connection, stdin):
    with pytest.raises(CommandError) as info:
        run_rejected("analytics", stdin)
    assert info.value.returncode == 2
    assert "stdin" in str(info.value)


def test_the_cli_documents_rejected_in_its_help(capsys):
    with pytest.raises(SystemExit):
        call_command("connection", "token", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "--rejected" in text
    assert "read from stdin" in text
