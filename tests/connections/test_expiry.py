"""When tokens die (`connections.expiry`): access and refresh-token expiry from a response.

Pure functions: no database, no network. Time is frozen at the exact boundaries. What follows
for the reauthorize-by date and the status: test_reauthorize_by.py.
"""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from connections import oauth
from connections.expiry import access_expiry, hard_cap, refresh_expiry
from connections.models import Connection, ExpirySource, RefreshExpiry
from connections.oauth.tokens import parse_token
from tests.factories import ConnectionFactory

NOW = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
Status = Connection.Status


def jwt(claims: dict) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJub25lIn0.{payload}.c2ln"


def token(**fields: object) -> oauth.TokenResponse:
    values: dict[str, object] = {
        "access_token": "opaque-access",
        "token_type": "Bearer",
        "expires_in": None,
        "refresh_token": None,
        "scope": None,
        "id_token": None,
        "refresh_expires_in": None,
        "refresh_hard_expires_in": None,
    }
    return oauth.TokenResponse(**(values | fields))


def connection(
    *,
    kind: str = RefreshExpiry.UNKNOWN,
    lifetime: timedelta | None = None,
    access_lifetime: timedelta | None = None,
    **fields: object,
) -> Connection:
    return ConnectionFactory.build(
        provider__refresh_token_expiry=kind,
        provider__refresh_token_lifetime=lifetime,
        provider__access_token_lifetime=access_lifetime,
        **fields,
    )


# --- access-token expiry -------------------------------------------------------------------


def test_it_takes_access_expiry_from_expires_in():
    at = access_expiry(token(expires_in=3600), connection(), now=NOW)
    assert at == (NOW + timedelta(hours=1), ExpirySource.RESPONSE)


def test_it_prefers_expires_in_over_a_jwt_exp():
    access = jwt({"exp": int((NOW + timedelta(minutes=5)).timestamp())})
    at = access_expiry(token(access_token=access, expires_in=60), connection(), now=NOW)
    assert at == (NOW + timedelta(seconds=60), ExpirySource.RESPONSE)


def test_it_takes_access_expiry_from_the_jwt_exp_claim():
    exp = NOW + timedelta(minutes=45)
    at = access_expiry(token(access_token=jwt({"exp": exp.timestamp()})), connection(), now=NOW)
    assert at == (exp, ExpirySource.JWT)


@pytest.mark.parametrize("expires_in", [None, 0, -5])
def test_it_falls_back_to_the_provider_access_lifetime(expires_in):
    conn = connection(access_lifetime=timedelta(minutes=30))
    at = access_expiry(token(expires_in=expires_in), conn, now=NOW)
    assert at == (NOW + timedelta(minutes=30), ExpirySource.POLICY)


@pytest.mark.parametrize("exp", ["1700000000", True, 1e30, float("nan")])
def test_it_ignores_an_unusable_jwt_exp(exp):
    at = access_expiry(token(access_token=jwt({"exp": exp})), connection(), now=NOW)
    assert at == (NOW + timedelta(hours=1), ExpirySource.ASSUMED)


def test_it_assumes_the_default_access_lifetime_when_nothing_says():
    # Salesforce states no expires_in: never "valid forever", refreshed like any other.
    assert access_expiry(token(), connection(), now=NOW) == (
        NOW + timedelta(seconds=3600),
        ExpirySource.ASSUMED,
    )


def test_it_assumes_the_configured_default_access_lifetime(settings):
    settings.TOKENADMIN = settings.TOKENADMIN | {"DEFAULT_ACCESS_LIFETIME": 900}
    at = access_expiry(token(expires_in=0), connection(), now=NOW)
    assert at == (NOW + timedelta(minutes=15), ExpirySource.ASSUMED)


def test_it_prefers_the_providers_documented_lifetime_to_the_assumed_one(settings):
    settings.TOKENADMIN = settings.TOKENADMIN | {"DEFAULT_ACCESS_LIFETIME": 900}
    conn = connection(access_lifetime=timedelta(hours=2))
    assert access_expiry(token(), conn, now=NOW) == (NOW + timedelta(hours=2), ExpirySource.POLICY)


# --- refresh-token expiry ------------------------------------------------------------------


@pytest.mark.parametrize("name", oauth.REFRESH_EXPIRY_FIELDS)
def test_it_takes_refresh_expiry_from_each_response_field(name):
    parsed = parse_token({"access_token": "a", "refresh_token": "r", name: 86_400})
    conn = connection(kind=RefreshExpiry.SLIDING, lifetime=timedelta(days=90))
    at = refresh_expiry(parsed, conn, now=NOW, new_grant=True)
    assert at == (NOW + timedelta(days=1), ExpirySource.RESPONSE)


def test_it_takes_the_sooner_of_the_lifetime_and_the_hard_cap():
    parsed = parse_token(
        {
            "access_token": "a",
            "refresh_token": "r",
            "x_refresh_token_expires_in": 8_726_400,  # 101 days
            "x_refresh_token_hard_expires_in": 432_000,  # 5 days
        }
    )
    at = refresh_expiry(parsed, connection(), now=NOW, new_grant=False)
    assert at == (NOW + timedelta(days=5), ExpirySource.RESPONSE)


def test_it_takes_refresh_expiry_from_the_refresh_tokens_jwt_exp():
    exp = NOW + timedelta(days=30)
    refreshed = token(refresh_token=jwt({"exp": int(exp.timestamp())}))
    conn = connection(kind=RefreshExpiry.SLIDING, lifetime=timedelta(days=90))
    assert refresh_expiry(refreshed, conn, now=NOW, new_grant=False) == (exp, ExpirySource.JWT)


def test_it_prefers_the_connection_override_to_the_provider_policy():
    conn = connection(
        kind=RefreshExpiry.SLIDING,
        lifetime=timedelta(days=90),
        refresh_lifetime_override=timedelta(days=30),
    )
    at = refresh_expiry(token(refresh_token="r"), conn, now=NOW, new_grant=True)
    assert at == (NOW + timedelta(days=30), ExpirySource.OVERRIDE)


def test_it_lets_the_override_name_the_kind_of_expiry():
    conn = connection(
        kind=RefreshExpiry.UNKNOWN,
        lifetime=timedelta(days=60),
        refresh_expiry_override=RefreshExpiry.ABSOLUTE,
        authorized_at=NOW - timedelta(days=10),
    )
    at, _ = refresh_expiry(token(), conn, now=NOW, new_grant=False)
    assert at == NOW + timedelta(days=50)


def test_it_restarts_a_sliding_window_on_every_refresh():
    conn = connection(
        kind=RefreshExpiry.SLIDING,
        lifetime=timedelta(days=90),
        refresh_expires_at=NOW + timedelta(days=2),
        authorized_at=NOW - timedelta(days=88),
    )
    at = refresh_expiry(token(), conn, now=NOW, new_grant=False)
    assert at == (NOW + timedelta(days=90), ExpirySource.POLICY)


def test_it_anchors_an_absolute_expiry_at_the_consent():
    authorized_at = NOW - timedelta(days=20)
    conn = connection(
        kind=RefreshExpiry.ABSOLUTE, lifetime=timedelta(days=90), authorized_at=authorized_at
    )
    after_refresh = refresh_expiry(token(refresh_token="r2"), conn, now=NOW, new_grant=False)
    assert after_refresh == (authorized_at + timedelta(days=90), ExpirySource.POLICY)
    after_consent = refresh_expiry(token(refresh_token="r"), conn, now=NOW, new_grant=True)
    assert after_consent == (NOW + timedelta(days=90), ExpirySource.POLICY)


def test_it_knows_refresh_tokens_that_never_expire():
    conn = connection(kind=RefreshExpiry.NONE)
    at = refresh_expiry(token(refresh_token="r"), conn, now=NOW, new_grant=True)
    assert at == (None, ExpirySource.POLICY)


@pytest.mark.parametrize(
    ("kind", "lifetime"),
    [
        (RefreshExpiry.UNKNOWN, None),
        (RefreshExpiry.UNKNOWN, timedelta(days=90)),
        (RefreshExpiry.SLIDING, None),
        (RefreshExpiry.ABSOLUTE, None),
    ],
)
def test_it_says_unknown_rather_than_guessing(kind, lifetime):
    conn = connection(kind=kind, lifetime=lifetime)
    at = refresh_expiry(token(refresh_token="r"), conn, now=NOW, new_grant=True)
    assert at == (None, ExpirySource.UNKNOWN)


def test_it_keeps_a_known_expiry_when_the_refresh_token_was_kept():
    known = NOW + timedelta(days=40)
    conn = connection(refresh_expires_at=known, refresh_expiry_source=ExpirySource.RESPONSE)
    at = refresh_expiry(token(), conn, now=NOW, new_grant=False)
    assert at == (known, ExpirySource.RESPONSE)


def test_it_keeps_the_providers_last_word_when_a_rotation_says_nothing_new():
    # A rotated token does not expire sooner than the one it replaces: an absolute expiry stays,
    # a sliding one moves later. Until the provider says where, the known one is the deadline
    # (dropping it is how the seed's 90-day deadline went unannounced).
    known = NOW + timedelta(days=40)
    conn = connection(refresh_expires_at=known, refresh_expiry_source=ExpirySource.INTROSPECTION)
    at = refresh_expiry(token(refresh_token="r2"), conn, now=NOW, new_grant=False)
    assert at == (known, ExpirySource.INTROSPECTION)


def test_it_prefers_the_providers_last_word_to_its_absolute_policy():
    known = NOW + timedelta(days=40)
    conn = connection(
        kind=RefreshExpiry.ABSOLUTE,
        lifetime=timedelta(days=90),
        authorized_at=NOW - timedelta(days=10),
        refresh_expires_at=known,
        refresh_expiry_source=ExpirySource.RESPONSE,
    )
    at = refresh_expiry(token(refresh_token="r2"), conn, now=NOW, new_grant=False)
    assert at == (known, ExpirySource.RESPONSE)


def test_it_forgets_a_policy_expiry_of_unknown_kind_when_the_refresh_token_rotated():
    conn = connection(
        refresh_expires_at=NOW + timedelta(days=40), refresh_expiry_source=ExpirySource.POLICY
    )
    at = refresh_expiry(token(refresh_token="r2"), conn, now=NOW, new_grant=False)
    assert at == (None, ExpirySource.UNKNOWN)


def test_it_starts_a_new_grant_without_the_old_grants_expiry():
    conn = connection(
        refresh_expires_at=NOW + timedelta(days=40), refresh_expiry_source=ExpirySource.RESPONSE
    )
    at = refresh_expiry(token(refresh_token="r"), conn, now=NOW, new_grant=True)
    assert at == (None, ExpirySource.UNKNOWN)


# --- the hard cap --------------------------------------------------------------------------


def test_it_remembers_the_hard_cap_across_refreshes_that_do_not_repeat_it():
    cap = NOW + timedelta(days=5)
    conn = connection(kind=RefreshExpiry.SLIDING, lifetime=timedelta(days=90))
    conn.refresh_hard_expires_at = cap
    assert hard_cap(token(), conn, now=NOW, new_grant=False) == cap
    assert refresh_expiry(token(), conn, now=NOW, new_grant=False) == (
        cap,
        ExpirySource.RESPONSE,
    )


def test_it_forgets_the_hard_cap_of_the_previous_grant():
    conn = connection(refresh_hard_expires_at=NOW + timedelta(days=5))
    assert hard_cap(token(refresh_token="r"), conn, now=NOW, new_grant=True) is None


def test_it_takes_a_new_hard_cap_from_the_response():
    parsed = parse_token(
        {"access_token": "a", "refresh_token": "r", "x_refresh_token_hard_expires_in": 86_400}
    )
    conn = connection(refresh_hard_expires_at=NOW + timedelta(days=5))
    assert hard_cap(parsed, conn, now=NOW, new_grant=False) == NOW + timedelta(days=1)


# --- the same deadline read again ----------------------------------------------------------
# "expires in N s" is counted from a moment known only to within the request's latency: read on
# every refresh it lands a second or so apart. A stored deadline that jittered would restart
# the reminders keyed by it on every refresh (seen in `make demo`: a warning a minute).

STORED = NOW + timedelta(minutes=9, seconds=0.6)


def remaining(seconds: int, **more: int) -> oauth.TokenResponse:
    return parse_token(
        {"access_token": "a", "refresh_token": "r", "refresh_token_expires_in": seconds} | more
    )


def test_it_keeps_a_deadline_it_reads_again_a_second_apart():
    conn = connection(
        kind=RefreshExpiry.ABSOLUTE,
        refresh_expires_at=STORED,
        refresh_expiry_source=ExpirySource.RESPONSE,
    )
    assert refresh_expiry(remaining(540), conn, now=NOW, new_grant=False) == (
        STORED,
        ExpirySource.RESPONSE,
    )


def test_it_takes_a_deadline_that_moved_by_more_than_the_tolerance():
    conn = connection(
        kind=RefreshExpiry.SLIDING,
        refresh_expires_at=STORED,
        refresh_expiry_source=ExpirySource.RESPONSE,
    )
    later = refresh_expiry(remaining(540 + 61), conn, now=NOW, new_grant=False)
    assert later == (NOW + timedelta(seconds=601), ExpirySource.RESPONSE)


def test_it_reads_a_new_grants_deadline_as_said():
    conn = connection(refresh_expires_at=STORED, refresh_expiry_source=ExpirySource.RESPONSE)
    at = refresh_expiry(remaining(540), conn, now=NOW, new_grant=True)
    assert at == (NOW + timedelta(seconds=540), ExpirySource.RESPONSE)


def test_it_replaces_a_configured_deadline_with_the_providers_word():
    conn = connection(refresh_expires_at=STORED, refresh_expiry_source=ExpirySource.POLICY)
    at = refresh_expiry(remaining(540), conn, now=NOW, new_grant=False)
    assert at == (NOW + timedelta(seconds=540), ExpirySource.RESPONSE)


def test_it_keeps_a_hard_cap_it_reads_again_a_second_apart():
    conn = connection(refresh_hard_expires_at=STORED)
    capped = remaining(86_400, x_refresh_token_hard_expires_in=540)
    assert hard_cap(capped, conn, now=NOW, new_grant=False) == STORED
    assert hard_cap(capped, conn, now=NOW, new_grant=True) == NOW + timedelta(seconds=540)


# --- access_token_valid_for at the boundary ------------------------------------------------


def test_it_needs_a_refresh_with_exactly_the_threshold_left():
    conn = connection(access_token="a", access_expires_at=NOW + timedelta(seconds=300))
    with time_machine.travel(NOW, tick=False):
        assert conn.access_token_valid_for(300) is False
        assert conn.access_token_valid_for(299) is True
    with time_machine.travel(NOW - timedelta(microseconds=1), tick=False):
        assert conn.access_token_valid_for(300) is True


def test_it_treats_an_access_token_at_its_expiry_as_expired():
    conn = connection(access_token="a", access_expires_at=NOW)
    with time_machine.travel(NOW, tick=False):
        assert conn.access_token_valid_for(0) is False
    with time_machine.travel(NOW - timedelta(seconds=1), tick=False):
        assert conn.access_token_valid_for(0) is True


def test_it_never_counts_a_stored_token_of_unknown_expiry_as_valid_forever():
    # Stored before lifetimes were assumed: taken to live the default hour from its issue.
    issued = NOW - timedelta(minutes=59)
    conn = connection(access_token="a", access_expires_at=None, last_refreshed_at=issued)
    with time_machine.travel(NOW, tick=False):
        assert conn.access_token_valid_for(30) is True
        assert conn.access_token_valid_for(60) is False
        assert conn.access_token_valid_for(10**6) is False


def test_it_counts_a_token_of_unknown_expiry_and_unknown_issue_as_invalid():
    conn = connection(access_token="a", access_expires_at=None, authorized_at=None)
    assert conn.access_token_valid_for(0) is False


def test_it_counts_no_access_token_as_invalid():
    assert not connection(access_token="", access_expires_at=None).access_token_valid_for(0)
