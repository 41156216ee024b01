"""A connection's life, simulated: months of background work under a travelling clock.

How the simulation runs: tests/background/simulation.py. The reauthorize-by date over such
lives (learned expiry kinds, hard caps, unknown): test_deadline_life.py.
"""

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import time_machine
from django.contrib import admin

from connections import monitoring, oauth, sweeps
from connections.lifecycle import NeedsReauth, get_access_token, refresh_connection
from connections.models import (
    Connection,
    ExpirySource,
    Provider,
    RefreshAttempt,
    StatusChange,
)
from tests.background.fake_provider import ABSOLUTE, SLIDING, FakeProvider, connect, running
from tests.background.simulation import (
    DAY,
    HOUR,
    T0,
    attempts,
    day_of,
    live,
    reload,
    transitions,
)

pytestmark = pytest.mark.django_db(transaction=True)  # the sweeps refresh on worker threads

Status = Connection.Status
Trigger = RefreshAttempt.Trigger
# Access tokens that outlive every test here: the sweep never needs to refresh them, so nothing
# but the renewal uses the refresh token. (A token of unknown lifetime is no longer "valid
# forever": it is assumed to live an hour and refreshed hourly, which would slide it.)
OUTLIVES_THE_TEST = 400 * 86400


@pytest.fixture(autouse=True)
def hourly_sweep(settings) -> None:
    settings.TOKENADMIN = settings.TOKENADMIN | {"SWEEP_INTERVAL_SECONDS": 3600}


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def nightly_export(fake: FakeProvider, connection: Connection, log: list[int]) -> Callable:
    """The 02:00 pipeline: take a token from tokenadmin, call the provider's API with it."""

    def run() -> None:
        token = get_access_token(reload(connection)).access_token
        try:
            oauth.fetch_userinfo(fake.userinfo_url, access_token=token)
            log.append(200)
        except oauth.OAuthError as exc:
            log.append(exc.http_status or 0)

    return run


# --- the fake provider's clock is ours ------------------------------------------------------


def test_it_ages_the_fake_providers_tokens_with_time_machine(clock):
    with running(policy=SLIDING, access_expires_in=None) as fake:
        connection = connect(fake)
        clock.move_to(T0 + 90 * DAY - timedelta(seconds=1))
        assert fake.refresh_token_alive(connection.refresh_token)
        clock.move_to(T0 + 90 * DAY)
        assert not fake.refresh_token_alive(connection.refresh_token)
        with pytest.raises(NeedsReauth):
            refresh_connection(connection, trigger=Trigger.FORCED, force=True)
        assert fake.counts["refused"] == 1


# --- (a) a sliding 90-day refresh token -----------------------------------------------------


def test_it_renews_a_sliding_refresh_token_around_day_72_and_it_never_expires(clock):
    with running(policy=SLIDING, access_expires_in=OUTLIVES_THE_TEST) as fake:
        connection = connect(fake)
        assert connection.renew_due_at == T0 + 72 * DAY
        pipeline_log: list[int] = []
        snapshots = live(
            clock, connection, days=200, nightly=nightly_export(fake, connection, pipeline_log)
        )
        connection = reload(connection)

        renewals = list(attempts(connection, Trigger.RENEWAL))
        assert [row.outcome for row in renewals] == [RefreshAttempt.Outcome.SUCCESS] * 2
        assert 71 <= day_of(renewals[0].started_at) <= 73
        assert renewals[1].started_at - renewals[0].started_at == pytest.approx(72 * DAY, abs=HOUR)
        for renewal in renewals:
            new_expiry = renewal.started_at + 90 * DAY
            assert f"expires {new_expiry:%Y-%m-%d %H:%M} UTC" in renewal.message
        assert not attempts(connection, Trigger.SWEEP).exists()
        assert connection.refresh_expires_at == renewals[-1].started_at + 90 * DAY

        assert fake.counts["refused"] == 0
        assert fake.refresh_token_alive(connection.refresh_token)
        assert {snapshot.status for snapshot in snapshots} == {Status.ACTIVE}
        assert all(snapshot.reauthorize_by is None for snapshot in snapshots)
        assert transitions(connection) == [(Status.PENDING, Status.ACTIVE)]
        assert len(pipeline_log) == 200
        assert set(pipeline_log) == {200}


def test_it_needs_no_renewal_while_the_sweep_keeps_using_a_sliding_refresh_token(clock):
    # 30-day access tokens: the sweep refreshes every 30 days, which slides the window each
    # time, so the renewal age (72 days after the last use) is never reached.
    with running(policy=SLIDING, access_expires_in=30 * 86400) as fake:
        connection = connect(fake)
        snapshots = live(clock, connection, days=125)
        connection = reload(connection)

        made = [row.started_at for row in attempts(connection, Trigger.SWEEP)]
        assert len(made) == 4
        # Each refresh lands within the sweep interval before the token it replaces expires.
        issued = [T0, *made]
        for previous, refreshed in zip(issued, made, strict=False):
            expired = previous + 30 * DAY
            assert expired - HOUR - timedelta(seconds=300) <= refreshed < expired, (
                day_of(previous),
                day_of(refreshed),
            )
        assert not attempts(connection, Trigger.RENEWAL).exists()
        assert all(
            snapshot.renew_due_at is not None and snapshot.renew_due_at > snapshot.at
            for snapshot in snapshots
        )
        assert fake.counts["refused"] == 0
        assert fake.refresh_token_alive(connection.refresh_token)
        assert {snapshot.status for snapshot in snapshots} == {Status.ACTIVE}


def test_it_renews_exactly_at_the_renewal_age_and_not_a_second_before(clock):
    with running(policy=SLIDING, access_expires_in=OUTLIVES_THE_TEST) as fake:
        connection = connect(fake)
        due = T0 + 72 * DAY
        clock.move_to(due - timedelta(seconds=1))
        assert sweeps.renew_refresh_tokens() == {}
        assert fake.counts["refreshed"] == 0
        clock.move_to(due)
        assert sweeps.renew_refresh_tokens() == {"refreshed": 1}
        assert fake.counts["refreshed"] == 1
        connection = reload(connection)
        assert connection.renew_due_at == due + 72 * DAY
        assert sweeps.renew_refresh_tokens() == {}


@pytest.mark.parametrize(
    ("provider_fraction", "connection_fraction", "due_day"),
    [(None, None, 72), (0.5, None, 45), (0.5, 0.6, 54)],
    ids=["default-80%", "provider-50%", "connection-60%-over-provider-50%"],
)
def test_it_renews_at_the_configured_fraction_of_the_lifetime(
    clock, provider_fraction, connection_fraction, due_day
):
    with running(policy=SLIDING, access_expires_in=OUTLIVES_THE_TEST) as fake:
        connection = connect(
            fake,
            provider={"renewal_fraction": provider_fraction},
            renewal_fraction=connection_fraction,
        )
        due = T0 + due_day * DAY
        assert connection.renew_due_at == due
        clock.move_to(due - timedelta(seconds=1))
        assert sweeps.renew_refresh_tokens() == {}
        clock.move_to(due)
        assert sweeps.renew_refresh_tokens() == {"refreshed": 1}


def test_it_renews_in_time_after_an_admin_corrects_the_lifetime(clock, rf, admin_user):
    # The provider was described as 90-day sliding; really its tokens slide over 60 days. The
    # admin notices on day 1 and corrects the provider in the Django admin, whose save must
    # reschedule the renewal: nothing else would until day 72, and the token dies on day 60.
    with running(
        policy=SLIDING, refresh_lifetime=timedelta(days=60), access_expires_in=OUTLIVES_THE_TEST
    ) as fake:
        connection = connect(fake, lifetime=timedelta(days=90))
        clock.move_to(T0 + DAY)
        provider = connection.provider
        request = rf.post("/admin/")
        request.user = admin_user
        model_admin = admin.site._registry[Provider]
        # The admin's own change form, bound to what the page shows with one value edited.
        form_class = model_admin.get_form(request, provider, change=True)
        shown = form_class(instance=provider)
        data = {name: shown[name].value() for name in shown.fields}
        data = {name: value for name, value in data.items() if value is not None}
        # Fields with a callable default carry their initial value in a hidden input too.
        data |= {shown.add_initial_prefix(name): data[name] for name in data}
        form = form_class(data | {"refresh_token_lifetime": "60 00:00:00"}, instance=provider)
        assert form.is_valid(), form.errors
        assert form.changed_data == ["refresh_token_lifetime"]
        model_admin.save_model(request, form.save(commit=False), form, change=True)
        assert Provider.objects.get(pk=provider.pk).refresh_token_lifetime == timedelta(days=60)

        live(clock, connection, days=62)  # past the real 60-day death
        connection = reload(connection)

        assert fake.refresh_token_alive(connection.refresh_token)
        renewal = attempts(connection, Trigger.RENEWAL).first()
        assert renewal is not None
        assert 47 <= day_of(renewal.started_at) <= 49
        assert connection.status == Status.ACTIVE


# --- (b) an absolute 90-day refresh token ---------------------------------------------------


def test_it_warns_then_needs_reauth_for_an_absolute_refresh_token_and_never_renews(clock):
    # Daily access tokens: the sweep uses the refresh token every day, which must never be
    # mistaken for a renewal of it.
    with running(policy=ABSOLUTE, access_expires_in=86400) as fake:
        connection = connect(fake)
        deadline = T0 + 90 * DAY
        assert connection.reauthorize_by == deadline
        assert connection.refresh_expiry_source == ExpirySource.POLICY

        snapshots = live(clock, connection, days=92)
        connection = reload(connection)

        window_opens = deadline - 14 * DAY
        for snapshot in snapshots:
            expected = (
                Status.ACTIVE
                if snapshot.at < window_opens
                else Status.EXPIRING
                if snapshot.at < deadline
                else Status.NEEDS_REAUTH
            )
            assert snapshot.status == expected, snapshot
            assert snapshot.reauthorize_by == deadline, snapshot
            assert snapshot.refresh_expires_at == deadline, snapshot
            assert snapshot.renew_due_at is None, snapshot

        rows = list(StatusChange.objects.filter(connection=connection).order_by("created_at", "pk"))
        assert [(row.from_status, row.to_status) for row in rows] == [
            (Status.PENDING, Status.ACTIVE),
            (Status.ACTIVE, Status.EXPIRING),
            (Status.EXPIRING, Status.NEEDS_REAUTH),
        ]
        _, warned, lost = rows
        # Whichever came first, the sweep's refresh or the 03:00 monitor, made this move.
        assert window_opens <= warned.created_at < window_opens + DAY
        assert f"reauthorize by {deadline:%Y-%m-%d %H:%M} UTC" in warned.reason
        assert deadline <= lost.created_at < deadline + DAY

        assert RefreshAttempt.objects.filter(trigger=Trigger.RENEWAL).count() == 0
        successes = RefreshAttempt.objects.filter(outcome=RefreshAttempt.Outcome.SUCCESS)
        assert successes.count() >= 89  # the sweep did use the refresh token daily
        assert not successes.filter(rotated=True).exists()
        for attempt in successes:
            assert f"expires {deadline:%Y-%m-%d %H:%M} UTC" in attempt.message
        assert fake.counts["refused"] <= 1  # once dead, nobody keeps knocking


def test_it_moves_to_needs_reauth_at_the_exact_absolute_expiry(clock):
    with running(policy=ABSOLUTE, access_expires_in=None) as fake:
        connection = connect(fake)
        deadline = T0 + 90 * DAY
        clock.move_to(deadline - timedelta(seconds=1))
        monitoring.monitor_expiry()
        assert reload(connection).status == Status.EXPIRING
        clock.move_to(deadline)
        assert monitoring.monitor_expiry() == {Status.NEEDS_REAUTH: 1}
        connection = reload(connection)
        assert connection.status == Status.NEEDS_REAUTH
        assert connection.status_reason == (
            f"the refresh token expired on {deadline:%Y-%m-%d %H:%M} UTC"
        )


def test_it_opens_the_warning_window_exactly_14_days_before_the_expiry(clock):
    with running(policy=ABSOLUTE, access_expires_in=None) as fake:
        connection = connect(fake)
        window_opens = T0 + 76 * DAY
        clock.move_to(window_opens - timedelta(seconds=1))
        assert monitoring.monitor_expiry() == {}
        assert reload(connection).status == Status.ACTIVE
        clock.move_to(window_opens)
        assert monitoring.monitor_expiry() == {Status.EXPIRING: 1}
        assert reload(connection).status_reason == (
            f"reauthorize by {T0 + 90 * DAY:%Y-%m-%d %H:%M} UTC (14 days left)"
        )


# --- (c) a provider that states no access-token lifetime --------------------------------------


def test_it_refreshes_an_access_token_of_unknown_lifetime_within_the_assumed_hour(clock):
    # No expires_in, not a JWT, no documented lifetime (Salesforce-like): never "valid forever".
    # Assumed to live TOKENADMIN_DEFAULT_ACCESS_LIFETIME (an hour), and refreshed before that.
    with running(policy=SLIDING, access_expires_in=None) as fake:
        connection = connect(fake)
        assert connection.access_expiry_source == ExpirySource.ASSUMED
        assert connection.access_expires_at == T0 + HOUR
        live(clock, connection, days=1)
        connection = reload(connection)

        made = [row.started_at for row in attempts(connection, Trigger.SWEEP)]
        assert 23 <= len(made) <= 25, len(made)
        issued = [T0, *made]
        for previous, refreshed in zip(issued, made, strict=False):
            assert refreshed <= previous + HOUR, (day_of(previous), day_of(refreshed))
        assert connection.access_expiry_source == ExpirySource.ASSUMED
        assert connection.access_expires_at == made[-1] + HOUR
        assert fake.counts["refused"] == 0
