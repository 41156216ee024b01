"""The reauthorize-by date: what it rests on, what is learned, and the status it calls for.

Pure: the connection is built, not saved (one test aside). Time is frozen at the boundaries.
The same rules over a simulated life at a provider: tests/background/test_deadline_life.py.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.template.loader import render_to_string

from connections.expiry import learn_expiry_kind
from connections.lifecycle import settle_status
from connections.models import Connection, ExpirySource, RefreshExpiry
from connections.models.connection import DeadlineSource
from connections.serializers import connection_summary
from connections.status import evaluate_expiry
from tests.factories import ConnectionFactory

NOW = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
Status = Connection.Status


def connection(
    *,
    kind: str = RefreshExpiry.UNKNOWN,
    lifetime: timedelta | None = None,
    rotates: bool | None = None,
    **fields: object,
) -> Connection:
    return ConnectionFactory.build(
        provider__refresh_token_expiry=kind,
        provider__refresh_token_lifetime=lifetime,
        provider__rotates_refresh_tokens=rotates,
        **fields,
    )


# --- what the date rests on ----------------------------------------------------------------


def test_it_must_be_reauthorized_by_an_absolute_expiry():
    deadline = NOW + timedelta(days=9)
    conn = connection(kind=RefreshExpiry.ABSOLUTE, refresh_expires_at=deadline)
    assert conn.reauthorization_deadline == (deadline, DeadlineSource.ABSOLUTE_EXPIRY)


def test_it_has_no_reauthorize_by_date_for_a_sliding_expiry():
    conn = connection(kind=RefreshExpiry.SLIDING, refresh_expires_at=NOW + timedelta(days=9))
    assert conn.reauthorization_deadline == (None, DeadlineSource.RENEWED_AUTOMATICALLY)


def test_it_must_be_reauthorized_by_a_known_expiry_of_unknown_kind():
    deadline = NOW + timedelta(days=9)
    conn = connection(refresh_expires_at=deadline)
    assert conn.reauthorization_deadline == (deadline, DeadlineSource.EXPIRY_OF_UNKNOWN_KIND)


def test_it_does_not_assume_a_rotating_token_of_unknown_kind_is_renewed():
    # The provider: rotates, keeps an absolute expiry nobody configured. Rotation alone
    # proves nothing about the deadline.
    deadline = NOW + timedelta(days=90)
    conn = connection(rotates=True, refresh_expires_at=deadline)
    assert conn.reauthorize_by == deadline
    assert conn.is_renewable  # renewal is still tried: it is how a sliding one would show


def test_it_says_unknown_when_nothing_is_known():
    conn = connection(kind=RefreshExpiry.ABSOLUTE)
    assert conn.reauthorization_deadline == (None, DeadlineSource.UNKNOWN)
    assert connection(rotates=True).reauthorization_deadline == (None, DeadlineSource.UNKNOWN)


def test_it_knows_a_refresh_token_that_never_expires():
    conn = connection(kind=RefreshExpiry.NONE)
    assert conn.reauthorization_deadline == (None, DeadlineSource.NEVER_EXPIRES)


def test_it_is_reauthorized_by_the_hard_cap_even_when_sliding():
    cap = NOW + timedelta(days=30)
    conn = connection(
        kind=RefreshExpiry.SLIDING,
        refresh_expires_at=NOW + timedelta(days=20),
        refresh_hard_expires_at=cap,
    )
    assert conn.reauthorization_deadline == (cap, DeadlineSource.HARD_CAP)


@pytest.mark.parametrize(
    ("expires_in_days", "cap_in_days", "expected"),
    [(20, 30, DeadlineSource.ABSOLUTE_EXPIRY), (40, 30, DeadlineSource.HARD_CAP)],
)
def test_it_takes_the_earliest_deadline(expires_in_days, cap_in_days, expected):
    conn = connection(
        kind=RefreshExpiry.ABSOLUTE,
        refresh_expires_at=NOW + timedelta(days=expires_in_days),
        refresh_hard_expires_at=NOW + timedelta(days=cap_in_days),
    )
    deadline = NOW + timedelta(days=min(expires_in_days, cap_in_days))
    assert conn.reauthorization_deadline == (deadline, expected)


def test_it_trusts_what_was_learned_over_the_configured_kind():
    deadline = NOW + timedelta(days=9)
    conn = connection(
        kind=RefreshExpiry.SLIDING,
        refresh_expires_at=deadline,
        refresh_expiry_learned=RefreshExpiry.ABSOLUTE,
    )
    assert conn.refresh_expiry_kind == RefreshExpiry.ABSOLUTE
    assert conn.reauthorize_by == deadline
    learned_sliding = connection(
        kind=RefreshExpiry.ABSOLUTE,
        refresh_expires_at=deadline,
        refresh_expiry_learned=RefreshExpiry.SLIDING,
    )
    assert learned_sliding.reauthorize_by is None


# --- the public shape tells "none" from "unknown" --------------------------------------------


@pytest.mark.parametrize(
    ("kind", "source", "shown"),
    [
        (RefreshExpiry.SLIDING, "renewed_automatically", "renewed automatically"),
        (RefreshExpiry.UNKNOWN, "unknown", "unknown"),
        (RefreshExpiry.NONE, "never_expires", "never expires"),
    ],
)
def test_it_tells_a_renewed_token_from_an_unknown_one(kind, source, shown):
    conn = connection(kind=kind, rotates=True, refresh_expires_at=None, status=Status.ACTIVE)
    summary = connection_summary(conn)
    assert (summary["reauthorize_by"], summary["reauthorize_by_source"]) == (None, source)
    assert summary["refresh_expiry_kind"] == kind
    html = render_to_string("connections/_connection_row.html", {"c": conn, "now": NOW})
    assert f'<span class="countdown-none">{shown}</span>' in html
    if kind != RefreshExpiry.SLIDING:
        assert "renewed automatically" not in html


def test_it_shows_what_was_learned_and_from_what():
    conn = connection(
        refresh_expires_at=NOW + timedelta(days=80),
        refresh_expiry_source=ExpirySource.INTROSPECTION,
        refresh_expiry_learned=RefreshExpiry.ABSOLUTE,
        refresh_expiry_learned_from="introspection: a rotation left the expiry where it was",
        refresh_hard_expires_at=NOW + timedelta(days=300),
    )
    summary = connection_summary(conn)
    assert summary["refresh_expiry_kind"] == "absolute"
    assert summary["refresh_expiry_learned_from"].startswith("introspection:")
    assert summary["reauthorize_by"] == "2025-05-20T02:00:00Z"
    assert summary["reauthorize_by_source"] == "absolute_expiry"
    assert summary["refresh_hard_expires_at"] == "2025-12-26T02:00:00Z"


# --- learning the kind from what the provider shows ------------------------------------------


def seen_before(**fields: object) -> Connection:
    values: dict[str, object] = {
        "refresh_expires_at": NOW + timedelta(days=60),
        "refresh_expiry_source": ExpirySource.INTROSPECTION,
        "last_refreshed_at": NOW - timedelta(hours=1),
    }
    return connection(**(values | fields))


def test_it_learns_absolute_when_a_rotation_leaves_the_expiry_where_it_was():
    before = seen_before()
    learned = learn_expiry_kind(
        before,
        expires_at=before.refresh_expires_at + timedelta(seconds=2),  # clock jitter
        source=ExpirySource.INTROSPECTION,
        rotated=True,
        now=NOW,
    )
    assert learned is not None and learned.kind == RefreshExpiry.ABSOLUTE
    assert learned.learned_from == (
        "introspection: a rotation on 2025-03-01 02:00 UTC left the expiry at 2025-04-30 02:00 UTC"
    )


def test_it_learns_sliding_when_a_renewal_moves_the_expiry():
    before = seen_before(refresh_expiry_source=ExpirySource.RESPONSE)
    learned = learn_expiry_kind(
        before,
        expires_at=before.refresh_expires_at + timedelta(hours=1),
        source=ExpirySource.RESPONSE,
        rotated=False,
        now=NOW,
    )
    assert learned is not None and learned.kind == RefreshExpiry.SLIDING
    assert "a renewal" in learned.learned_from and "moved the expiry" in learned.learned_from


def test_it_learns_nothing_from_two_reads_too_close_together():
    # A sliding expiry moves by the time between uses: a minute apart, it could not show.
    before = seen_before(last_refreshed_at=NOW - timedelta(minutes=1))
    learned = learn_expiry_kind(
        before,
        expires_at=before.refresh_expires_at,
        source=ExpirySource.INTROSPECTION,
        rotated=True,
        now=NOW,
    )
    assert learned is None


@pytest.mark.parametrize(
    ("before_source", "after_source"),
    [
        (ExpirySource.POLICY, ExpirySource.INTROSPECTION),
        (ExpirySource.INTROSPECTION, ExpirySource.POLICY),
        (ExpirySource.OVERRIDE, ExpirySource.OVERRIDE),
    ],
)
def test_it_learns_only_from_the_providers_own_word(before_source, after_source):
    before = seen_before(refresh_expiry_source=before_source)
    learned = learn_expiry_kind(
        before,
        expires_at=before.refresh_expires_at,
        source=after_source,
        rotated=True,
        now=NOW,
    )
    assert learned is None


def test_it_learns_nothing_where_the_hard_cap_decides():
    cap = NOW + timedelta(days=60)
    before = seen_before(refresh_expires_at=cap, refresh_hard_expires_at=cap)
    learned = learn_expiry_kind(
        before, expires_at=cap, source=ExpirySource.RESPONSE, rotated=True, now=NOW
    )
    assert learned is None


# --- the status the deadline calls for ---------------------------------------------------------


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
    settings.TOKENADMIN = settings.TOKENADMIN | {
        "WARNING_LEAD_TIMES": (timedelta(days=30), timedelta(days=7))
    }
    conn = connection(kind=RefreshExpiry.ABSOLUTE, refresh_expires_at=NOW + timedelta(days=20))
    assert settle_status(conn, now=NOW) == Status.EXPIRING


def test_it_is_not_expiring_with_a_sliding_expiry_that_renewal_keeps_extending():
    conn = connection(kind=RefreshExpiry.SLIDING, refresh_expires_at=NOW + timedelta(days=2))
    assert evaluate_expiry(conn, now=NOW) == (
        Status.ACTIVE,
        "no reauthorization deadline: renewed automatically",
    )


def test_it_is_expiring_when_a_sliding_token_is_a_day_from_lapsing():
    # Renewal should have pushed it back long ago: it has stopped working.
    conn = connection(kind=RefreshExpiry.SLIDING, refresh_expires_at=NOW + timedelta(days=1))
    assert settle_status(conn, now=NOW) == Status.EXPIRING


def test_it_is_active_and_says_unknown_when_refresh_expiry_is_unknown():
    status, reason = evaluate_expiry(connection(rotates=True), now=NOW)
    assert status == Status.ACTIVE
    assert reason.startswith("reauthorization deadline unknown")


def test_it_warns_of_a_hard_cap_with_the_date_it_shows():
    # The status text and `reauthorize_by` come from one rule, so they never disagree.
    cap = NOW + timedelta(days=3)
    conn = connection(
        kind=RefreshExpiry.SLIDING,
        refresh_expires_at=cap,
        refresh_expiry_source=ExpirySource.RESPONSE,
        refresh_hard_expires_at=cap,
    )
    status, reason = evaluate_expiry(conn, now=NOW)
    assert (status, conn.reauthorize_by) == (Status.EXPIRING, cap)
    assert reason == "reauthorize by 2025-03-04 02:00 UTC (3 days left)"


@pytest.mark.django_db
def test_a_status_change_decided_from_a_stale_read_changes_nothing():
    conn = ConnectionFactory(authorized=True)
    stale = Connection.objects.get(pk=conn.pk)
    conn.change_status(Status.DISABLED, reason="an admin disabled it")
    # A refresh that read `active` before the admin acted finishes and settles the status.
    assert not stale.change_status(Status.EXPIRING, reason="refresh", expected=(Status.ACTIVE,))
    assert Connection.objects.get(pk=conn.pk).status == Status.DISABLED
    assert conn.status_changes.count() == 1
