"""When tokens die (`connections.expiry`) and what follows from it on the model.

Pure functions: no database, no network. Time is frozen at the exact boundaries.
"""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from connections import oauth
from connections.expiry import access_expiry, refresh_expiry
from connections.lifecycle import settle_status
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
    assert at == (None, ExpirySource.UNKNOWN)


def test_it_leaves_access_expiry_unknown_when_nothing_says():
    assert access_expiry(token(), connection(), now=NOW) == (None, ExpirySource.UNKNOWN)


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


def test_it_forgets_the_old_expiry_when_the_refresh_token_rotated():
    conn = connection(
        refresh_expires_at=NOW + timedelta(days=40), refresh_expiry_source=ExpirySource.RESPONSE
    )
    at = refresh_expiry(token(refresh_token="r2"), conn, now=NOW, new_grant=False)
    assert at == (None, ExpirySource.UNKNOWN)


# --- reauthorize-by ------------------------------------------------------------------------


def test_it_must_be_reauthorized_by_an_absolute_expiry():
    deadline = NOW + timedelta(days=9)
    conn = connection(kind=RefreshExpiry.ABSOLUTE, refresh_expires_at=deadline)
    assert conn.reauthorize_by == deadline


def test_it_has_no_reauthorize_by_date_for_a_sliding_expiry():
    conn = connection(kind=RefreshExpiry.SLIDING, refresh_expires_at=NOW + timedelta(days=9))
    assert conn.reauthorize_by is None


def test_it_must_be_reauthorized_by_a_known_expiry_of_unknown_kind():
    deadline = NOW + timedelta(days=9)
    assert connection(refresh_expires_at=deadline).reauthorize_by == deadline


def test_it_has_no_reauthorize_by_date_when_expiry_is_unknown():
    assert connection(kind=RefreshExpiry.ABSOLUTE).reauthorize_by is None


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


def test_it_counts_an_access_token_of_unknown_expiry_as_valid():
    assert connection(access_token="a", access_expires_at=None).access_token_valid_for(10**6)


def test_it_counts_no_access_token_as_invalid():
    assert not connection(access_token="", access_expires_at=None).access_token_valid_for(0)


# --- settle_status -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (timedelta(days=14, seconds=1), Status.ACTIVE),
        (timedelta(days=14), Status.EXPIRING),
        (timedelta(days=1), Status.EXPIRING),
        (timedelta(seconds=1), Status.EXPIRING),
        (timedelta(0), Status.NEEDS_REAUTH),
    ],
)
def test_it_is_expiring_inside_the_warning_window(left, expected):
    conn = connection(kind=RefreshExpiry.ABSOLUTE, refresh_expires_at=NOW + left)
    with time_machine.travel(NOW, tick=False):
        assert settle_status(conn) == expected


def test_it_follows_the_configured_warning_days(settings):
    settings.TOKENADMIN = settings.TOKENADMIN | {"WARNING_DAYS": [30, 7]}
    conn = connection(kind=RefreshExpiry.ABSOLUTE, refresh_expires_at=NOW + timedelta(days=20))
    assert settle_status(conn, now=NOW) == Status.EXPIRING


def test_it_is_not_expiring_with_a_sliding_expiry_that_renewal_keeps_extending():
    conn = connection(kind=RefreshExpiry.SLIDING, refresh_expires_at=NOW + timedelta(days=2))
    assert settle_status(conn, now=NOW) == Status.ACTIVE


def test_it_is_expiring_when_a_sliding_token_is_a_day_from_lapsing():
    # Renewal should have pushed it back long ago: it has stopped working.
    conn = connection(kind=RefreshExpiry.SLIDING, refresh_expires_at=NOW + timedelta(days=1))
    assert settle_status(conn, now=NOW) == Status.EXPIRING


def test_it_is_active_when_refresh_expiry_is_unknown():
    assert settle_status(connection(), now=NOW) == Status.ACTIVE


@pytest.mark.django_db
def test_a_status_change_decided_from_a_stale_read_changes_nothing():
    from tests.factories import ConnectionFactory

    conn = ConnectionFactory(authorized=True)
    stale = Connection.objects.get(pk=conn.pk)
    conn.change_status(Status.DISABLED, reason="an admin disabled it")
    # A refresh that read `active` before the admin acted finishes and settles the status.
    assert not stale.change_status(Status.EXPIRING, reason="refresh", expected=(Status.ACTIVE,))
    assert Connection.objects.get(pk=conn.pk).status == Status.DISABLED
    assert conn.status_changes.count() == 1
