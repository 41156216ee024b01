"""The refresh engine (`connections.lifecycle`) against a real authorization server.

The server is django-oauth-toolkit in a subprocess, with refresh-token rotation and reuse
protection: sending a rotated-away refresh token revokes the whole grant, as many real providers
do. Only the one test that needs a response without a refresh token uses a local stub, because
DOT always rotates.
"""

import threading
import time
from datetime import timedelta

import pytest
import requests
import time_machine
from django.db import connection as db_connection
from django.utils import timezone

from connections.lifecycle import (
    BACKOFF_CAP_SECONDS,
    ConnectionDisabled,
    NeedsReauth,
    NotAuthorized,
    ProviderUnavailable,
    backoff_seconds,
    get_access_token,
    refresh_connection,
)
from connections.models import Connection, Provider, RefreshAttempt, StatusChange
from tests.authserver import state as authserver_state
from tests.conftest import authorize_through_link
from tests.connections.test_oauth import Reply, StubProvider
from tests.factories import ConnectionFactory

Status = Connection.Status
Outcome = RefreshAttempt.Outcome
FORCED = RefreshAttempt.Trigger.FORCED


def expire_in(connection: Connection, seconds: float) -> None:
    """Make the hour-long access token have `seconds` left, as if issued an hour before that."""
    expires_at = timezone.now() + timedelta(seconds=seconds)
    Connection.objects.filter(pk=connection.pk).update(
        access_expires_at=expires_at, last_refreshed_at=expires_at - timedelta(hours=1)
    )


def reload(connection: Connection) -> Connection:
    return Connection.objects.select_related("provider").get(pk=connection.pk)


def refresh_directly(auth_server, connection: Connection, refresh_token: str) -> requests.Response:
    """Use a refresh token at the server without the engine, as a stray client would."""
    return requests.post(
        auth_server.token_url,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(connection.client_id, connection.client_secret),
        timeout=10,
    )


def force_refresh(connection: Connection) -> Connection:
    return refresh_connection(reload(connection), trigger=FORCED, force=True)


def small_timeout(settings, seconds: float) -> None:
    settings.TOKENADMIN = settings.TOKENADMIN | {"HTTP_TIMEOUT": seconds}


def transitions(connection: Connection) -> list[tuple[str, str]]:
    rows = StatusChange.objects.filter(connection=connection).order_by("created_at", "pk")
    return [(row.from_status, row.to_status) for row in rows]


# --- when to refresh -----------------------------------------------------------------------


def test_it_refreshes_a_token_expiring_within_the_threshold(
    authorized_connection, auth_server_clean
):
    expire_in(authorized_connection, 200)
    served = get_access_token(authorized_connection)
    assert served.access_token != authorized_connection.access_token
    assert served.access_expires_at > timezone.now() + timedelta(minutes=55)
    assert auth_server_clean.stats()["refresh_calls"] == 1


def test_it_serves_a_token_outside_the_threshold(authorized_connection, auth_server_clean):
    expire_in(authorized_connection, 400)
    served = get_access_token(authorized_connection)
    assert served.access_token == authorized_connection.access_token
    assert auth_server_clean.stats()["refresh_calls"] == 0


def test_it_refreshes_when_min_ttl_exceeds_what_is_left(authorized_connection, auth_server_clean):
    expire_in(authorized_connection, 400)
    served = get_access_token(authorized_connection, min_ttl=600)
    assert served.access_token != authorized_connection.access_token
    assert auth_server_clean.stats()["refresh_calls"] == 1


def test_it_follows_the_connections_own_threshold(authorized_connection, auth_server_clean):
    Connection.objects.filter(pk=authorized_connection.pk).update(refresh_threshold=900)
    expire_in(authorized_connection, 600)
    served = get_access_token(authorized_connection)
    assert served.access_token != authorized_connection.access_token
    assert auth_server_clean.stats()["refresh_calls"] == 1


# --- rotation ------------------------------------------------------------------------------


def test_it_persists_a_rotated_refresh_token(authorized_connection, auth_server_clean):
    before = authorized_connection
    expire_in(before, 0)
    after = get_access_token(before)

    assert after.refresh_token and after.refresh_token != before.refresh_token
    assert after.version == before.version + 1
    assert after.refresh_issued_at > before.refresh_issued_at
    attempt = RefreshAttempt.objects.get(connection=before)
    assert (attempt.outcome, attempt.rotated) == (Outcome.SUCCESS, True)
    assert attempt.access_expires_at == after.access_expires_at

    # A second refresh works: the engine sent the live token, not the rotated-away one
    # (which would have made DOT revoke the whole grant).
    expire_in(before, 0)
    again = get_access_token(after)
    assert again.access_token not in (before.access_token, after.access_token)
    assert auth_server_clean.stats()["refresh_calls"] == 2

    # The first refresh token is dead at the server, and reusing it kills the grant: the premise
    # of rule 4.
    stale = refresh_directly(auth_server_clean, before, before.refresh_token)
    assert (stale.status_code, stale.json()["error"]) == (400, "invalid_grant")
    expire_in(before, 0)
    with pytest.raises(NeedsReauth):
        get_access_token(before)


def keep_refresh_token_case(stub: StubProvider) -> Connection:
    stub.routes["/token"] = Reply(
        body={"access_token": "NEW-ACCESS", "token_type": "Bearer", "expires_in": 3600}
    )
    provider = Provider.objects.create(
        slug="stub", name="Stub", authorize_url=stub.base_url + "/a", token_url=stub.token_url
    )
    return ConnectionFactory(
        authorized=True,
        provider=provider,
        refresh_token="KEEP-ME",
        access_expires_at=timezone.now() - timedelta(seconds=1),
    )


@pytest.mark.django_db
def test_it_keeps_the_refresh_token_when_none_is_returned():
    with StubProvider() as stub:
        connection = keep_refresh_token_case(stub)
        served = get_access_token(connection)
    assert [r["form"]["refresh_token"] for r in stub.requests] == ["KEEP-ME"]
    assert served.access_token == "NEW-ACCESS"
    assert reload(connection).refresh_token == "KEEP-ME"
    assert reload(connection).refresh_issued_at == connection.refresh_issued_at
    assert RefreshAttempt.objects.get(connection=connection).rotated is False


@pytest.mark.skipif(
    "no_refresh_token" not in authserver_state.FAULT_MODES,
    reason="tests/authserver has no no_refresh_token fault mode yet",
)
def test_it_keeps_the_refresh_token_when_the_real_server_returns_none(
    authorized_connection, auth_server_clean
):
    auth_server_clean.set_fault("no_refresh_token", count=1)
    expire_in(authorized_connection, 0)
    served = get_access_token(authorized_connection)
    assert served.access_token != authorized_connection.access_token
    assert served.refresh_token == authorized_connection.refresh_token
    assert RefreshAttempt.objects.get(connection=authorized_connection).rotated is False


# --- permanent errors ----------------------------------------------------------------------


def assert_needs_reauth_kept_tokens(before: Connection, *, code: str) -> None:
    after = reload(before)
    assert after.status == Status.NEEDS_REAUTH
    assert code in after.status_reason
    assert (after.access_token, after.refresh_token) == (before.access_token, before.refresh_token)
    assert transitions(before)[-1] == (Status.ACTIVE, Status.NEEDS_REAUTH)
    change = StatusChange.objects.filter(connection=before).order_by("-pk").first()
    assert code in change.reason
    attempt = RefreshAttempt.objects.get(connection=before)
    assert (attempt.outcome, attempt.error_code) == (Outcome.PERMANENT_ERROR, code)


def test_it_needs_reauth_when_the_refresh_token_expired(authorized_connection, auth_server_clean):
    auth_server_clean.age(10_000)
    expire_in(authorized_connection, 0)
    with pytest.raises(NeedsReauth, match="invalid_grant"):
        get_access_token(authorized_connection)
    assert_needs_reauth_kept_tokens(authorized_connection, code="invalid_grant")

    # Afterwards the provider is left alone: only a person can fix this.
    with pytest.raises(NeedsReauth):
        get_access_token(authorized_connection)
    assert auth_server_clean.stats()["refresh_calls"] == 1


def test_it_needs_reauth_when_the_grant_was_revoked(authorized_connection, auth_server_clean):
    auth_server_clean.revoke_all("alice")
    expire_in(authorized_connection, 0)
    with pytest.raises(NeedsReauth):
        get_access_token(authorized_connection)
    assert_needs_reauth_kept_tokens(authorized_connection, code="invalid_grant")


def test_it_blames_the_client_credentials_for_invalid_client(
    authorized_connection, auth_server_clean
):
    Connection.objects.filter(pk=authorized_connection.pk).update(client_secret="wrong")
    expire_in(authorized_connection, 0)
    with pytest.raises(NeedsReauth, match="client credentials"):
        get_access_token(authorized_connection)
    after = reload(authorized_connection)
    assert after.status == Status.NEEDS_REAUTH
    assert after.refresh_token == authorized_connection.refresh_token


def test_it_refuses_a_connection_that_needs_reauth_even_with_a_valid_token(
    authorized_connection, auth_server_clean
):
    # Revoking a grant kills its access tokens too (RFC 7009 §2.1): the caller should fail over.
    Connection.objects.filter(pk=authorized_connection.pk).update(status=Status.NEEDS_REAUTH)
    with pytest.raises(NeedsReauth):
        get_access_token(authorized_connection)
    assert auth_server_clean.stats()["refresh_calls"] == 0


# --- transient errors ----------------------------------------------------------------------


def test_it_retries_a_timed_out_refresh_at_once_under_the_same_lease(
    authorized_connection, auth_server_clean, settings
):
    # The first call stalls at a gateway and never reaches the provider; the retry goes through.
    small_timeout(settings, 0.5)
    auth_server_clean.set_fault("stall", count=1, delay=1.5)
    expire_in(authorized_connection, 0)
    fresh = get_access_token(authorized_connection)
    assert fresh.access_token != authorized_connection.access_token
    assert auth_server_clean.stats()["refresh_calls"] == 2
    attempt = RefreshAttempt.objects.get(connection=authorized_connection)
    assert attempt.outcome == Outcome.SUCCESS


@pytest.mark.parametrize(
    ("mode", "code", "http_status"),
    [
        ("500", "server_error", 500),
        ("503_retry_after", "server_error", 503),
        ("429", "bad_response", 429),
        ("garbage", "bad_response", 200),
        ("html_400", "bad_response", 400),
        ("stall", "timeout", None),
    ],
)
def test_it_keeps_every_token_on_a_transient_error(
    authorized_connection, auth_server_clean, settings, mode, code, http_status
):
    small_timeout(settings, 0.5)
    # A timeout is retried once at once (see the test above), so both calls must stall.
    auth_server_clean.set_fault(mode, count=2 if mode == "stall" else 1, delay=1.5)
    expire_in(authorized_connection, 0)
    with pytest.raises(ProviderUnavailable):
        get_access_token(authorized_connection)

    after = reload(authorized_connection)
    assert (after.access_token, after.refresh_token) == (
        authorized_connection.access_token,
        authorized_connection.refresh_token,
    )
    assert after.version == authorized_connection.version
    assert (after.failure_count, after.last_error_code) == (1, code)
    assert after.next_attempt_at > timezone.now()
    attempt = RefreshAttempt.objects.get(connection=after)
    assert (attempt.outcome, attempt.error_code, attempt.http_status) == (
        Outcome.TRANSIENT_ERROR,
        code,
        http_status,
    )
    # The kept refresh token is still the live one.
    assert force_refresh(after).access_token != after.access_token


def test_it_honours_retry_after(authorized_connection, auth_server_clean):
    auth_server_clean.set_fault("503_retry_after", count=1)
    expire_in(authorized_connection, 0)
    with pytest.raises(ProviderUnavailable) as info:
        get_access_token(authorized_connection)
    assert info.value.retry_after >= 7
    assert reload(authorized_connection).next_attempt_at >= timezone.now() + timedelta(seconds=7)


def test_it_tells_the_caller_when_the_next_attempt_is_due(authorized_connection, auth_server_clean):
    auth_server_clean.set_fault("500", count=1)
    expire_in(authorized_connection, 0)
    with pytest.raises(ProviderUnavailable) as info:
        get_access_token(authorized_connection)
    due = reload(authorized_connection).next_attempt_at - timezone.now()
    assert info.value.retry_after == pytest.approx(due.total_seconds(), abs=2)


def test_it_degrades_after_three_failures_and_recovers(authorized_connection, auth_server_clean):
    expire_in(authorized_connection, 200)  # still valid: failures alone decide the status
    auth_server_clean.set_fault("500", count=3)
    seen = []
    for _ in range(3):
        with pytest.raises(ProviderUnavailable):
            force_refresh(authorized_connection)
        after = reload(authorized_connection)
        seen.append((after.failure_count, after.status))
    assert seen == [(1, Status.ACTIVE), (2, Status.ACTIVE), (3, Status.DEGRADED)]
    assert transitions(authorized_connection)[-1] == (Status.ACTIVE, Status.DEGRADED)

    recovered = force_refresh(authorized_connection)
    assert recovered.status == Status.ACTIVE
    assert (recovered.failure_count, recovered.next_attempt_at, recovered.last_error_code) == (
        0,
        None,
        "",
    )
    assert transitions(authorized_connection)[-2:] == [
        (Status.ACTIVE, Status.DEGRADED),
        (Status.DEGRADED, Status.ACTIVE),
    ]


def test_it_degrades_at_once_when_no_valid_token_is_left(authorized_connection, auth_server_clean):
    # Current behaviour: with the access token already expired nothing can be served, so the
    # first transient failure makes the connection degraded (pipelines are failing now).
    auth_server_clean.set_fault("500", count=1)
    expire_in(authorized_connection, 0)
    with pytest.raises(ProviderUnavailable):
        get_access_token(authorized_connection)
    assert reload(authorized_connection).status == Status.DEGRADED


# --- back-off ------------------------------------------------------------------------------


def test_it_backs_off_without_calling_the_provider(authorized_connection, auth_server_clean):
    auth_server_clean.set_fault("500", count=1)
    expire_in(authorized_connection, 0)
    with pytest.raises(ProviderUnavailable):
        get_access_token(authorized_connection)
    calls = auth_server_clean.stats()["token_calls"]

    with pytest.raises(ProviderUnavailable) as info:
        get_access_token(authorized_connection)
    assert info.value.retry_after > 0
    assert auth_server_clean.stats()["token_calls"] == calls

    # A still-valid token is served during the back-off, also without a call.
    expire_in(authorized_connection, 200)
    served = get_access_token(authorized_connection)
    assert served.access_token == authorized_connection.access_token
    assert auth_server_clean.stats()["token_calls"] == calls

    # Once the back-off is over the provider is asked again.
    due = reload(authorized_connection).next_attempt_at
    with time_machine.travel(due + timedelta(seconds=1)):
        expire_in(authorized_connection, 200)
        served = get_access_token(authorized_connection)
    assert served.access_token != authorized_connection.access_token
    assert auth_server_clean.stats()["token_calls"] == calls + 1


def test_it_serves_a_still_valid_token_while_the_provider_is_down(
    authorized_connection, auth_server_clean
):
    auth_server_clean.set_fault("500", count=1)
    expire_in(authorized_connection, 200)
    served = get_access_token(authorized_connection)
    assert served.access_token == authorized_connection.access_token
    assert auth_server_clean.stats()["refresh_calls"] == 1
    assert (served.failure_count, served.status) == (1, Status.ACTIVE)


def test_it_refuses_a_token_shorter_than_min_ttl_while_the_provider_is_down(
    authorized_connection, auth_server_clean
):
    auth_server_clean.set_fault("500", count=1)
    expire_in(authorized_connection, 200)
    with pytest.raises(ProviderUnavailable):
        get_access_token(authorized_connection, min_ttl=250)


# --- unusable connections ------------------------------------------------------------------


@pytest.mark.parametrize("seconds_left", [0, 3000])
def test_it_never_serves_a_disabled_connection(
    authorized_connection, auth_server_clean, seconds_left
):
    Connection.objects.filter(pk=authorized_connection.pk).update(status=Status.DISABLED)
    expire_in(authorized_connection, seconds_left)
    with pytest.raises(ConnectionDisabled):
        get_access_token(authorized_connection)
    with pytest.raises(ConnectionDisabled):
        refresh_connection(authorized_connection, trigger=FORCED, force=True)
    assert auth_server_clean.stats()["refresh_calls"] == 0


def test_it_refuses_a_pending_connection(dot_connection, auth_server_clean):
    with pytest.raises(NotAuthorized):
        get_access_token(dot_connection)
    assert auth_server_clean.stats()["refresh_calls"] == 0


# --- races and ambiguous outcomes ----------------------------------------------------------


def wait_for(predicate, *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@pytest.mark.django_db(transaction=True)
def test_it_uses_a_new_grant_that_lands_while_its_refresh_fails(
    authorized_connection, auth_server_clean
):
    """Rule 6. Under the lease no other refresh can rotate the token meanwhile; what can change
    the tokens is a new consent (it writes without the lease). Here the user revokes access and
    re-consents while our refresh of the old grant is in flight at the provider: the old refresh
    token comes back invalid_grant, but the connection must stay alive on the new grant."""
    # Long enough for the consent below to finish on a busy machine; the assertion after the
    # consent checks that it did.
    auth_server_clean.set_latency(4)
    expire_in(authorized_connection, 0)
    result: dict[str, object] = {}

    def call() -> None:
        try:
            result["served"] = get_access_token(authorized_connection)
        except Exception as exc:
            result["error"] = exc
        finally:
            db_connection.close()

    caller = threading.Thread(target=call)
    caller.start()
    wait_for(lambda: auth_server_clean.stats()["refresh_calls"] == 1)
    auth_server_clean.set_latency(0)  # the in-flight request keeps its 4 s
    auth_server_clean.revoke_all("alice")
    assert authorize_through_link(authorized_connection, auth_server_clean).status_code == 200
    assert caller.is_alive(), "the refresh finished before the new consent: no race was run"
    new_grant = reload(authorized_connection)
    caller.join(10)

    assert "error" not in result, result
    assert RefreshAttempt.objects.get(connection=new_grant).outcome == Outcome.PERMANENT_ERROR
    assert result["served"].access_token == new_grant.access_token
    assert reload(authorized_connection).status == Status.ACTIVE
    assert Status.NEEDS_REAUTH not in [to for _, to in transitions(authorized_connection)]


def test_it_loses_the_grant_when_the_provider_rotated_after_we_gave_up(
    authorized_connection, auth_server_clean, settings
):
    """Known limit (reported): the provider is still working on a refresh we gave up on. Our
    immediate retry gets a new token, but the abandoned request then lands as a reuse of the
    rotated-away token and DOT's reuse protection revokes the whole grant. A provider without a
    reuse window cannot be saved here; the next refresh says so (needs_reauth)."""
    small_timeout(settings, 0.3)
    auth_server_clean.set_fault("timeout", count=1, delay=1.0)
    expire_in(authorized_connection, 0)
    retried = get_access_token(authorized_connection)
    assert retried.access_token != authorized_connection.access_token

    def retried_token_revoked() -> bool:
        response = requests.get(
            auth_server_clean.userinfo_url,
            headers={"Authorization": f"Bearer {retried.access_token}"},
            timeout=5,
        )
        return response.status_code == 401

    wait_for(retried_token_revoked)
    with pytest.raises(NeedsReauth, match="invalid_grant"):
        force_refresh(authorized_connection)
    assert reload(authorized_connection).status == Status.NEEDS_REAUTH


# --- back-off arithmetic -------------------------------------------------------------------


@pytest.mark.parametrize(("failures", "low", "high"), [(1, 15, 30), (2, 30, 60), (3, 60, 120)])
def test_it_backs_off_exponentially_with_jitter(failures, low, high):
    delays = {backoff_seconds(failures) for _ in range(200)}
    assert all(low <= d <= high for d in delays)
    assert len(delays) > 100


def test_it_caps_the_back_off():
    assert all(
        BACKOFF_CAP_SECONDS / 2 <= backoff_seconds(30) <= BACKOFF_CAP_SECONDS for _ in range(50)
    )


def test_it_never_backs_off_less_than_retry_after():
    assert backoff_seconds(1, retry_after=7200) == 7200
