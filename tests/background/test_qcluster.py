"""The background work end to end: a real `manage.py qcluster` keeps connections alive.

Each test starts its own test authorization server with short-lived access tokens and its own
cluster against the test database, declares the schedules with `setup_schedules`, and watches
the database. The cluster's scheduler looks at schedules every 30 s (django-q2's guard loop;
no setting shortens it), so the first sweep runs about 30 s after the cluster starts and the
minute schedule then runs on the following 30-s ticks.

With REDIS_URL set the same tests run on the Redis broker (CI's third pass).
"""

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_q.models import Schedule

from connections.lifecycle import get_access_token
from connections.models import Connection, RefreshAttempt
from tests.background.cluster import (
    Background,
    assert_uses_configured_broker,
    authorized_connection,
    background,
    declare_schedules,
)
from tests.factories import provider_for
from tests.support.polling import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SWEEP = RefreshAttempt.Trigger.SWEEP
SUCCESS = RefreshAttempt.Outcome.SUCCESS
# The guard loop's scheduler tick, plus the cluster's start-up and the sweep's own work.
FIRST_SWEEP_WITHIN = 50.0
# Killed-worker scenario: the lease outlives the longest provider call (connect 3.05 s + read
# timeout), as `tokenadmin.E001` demands and production has (30 > 13.05).
LEASE_SECONDS = 10
HTTP_TIMEOUT = 5


@pytest.fixture
def processes(transactional_db: None, tmp_path: Path) -> Iterator[Background]:
    # Depends on transactional_db so the clusters are stopped before the database is flushed.
    with background(tmp_path) as processes:
        yield processes


def sweep_refresh(connection: Connection) -> RefreshAttempt | None:
    return RefreshAttempt.objects.filter(
        connection=connection, trigger=SWEEP, outcome=SUCCESS
    ).first()


def seconds_until(moment: datetime) -> float:
    return (moment - timezone.now()).total_seconds()


def run_later_the_health_check() -> None:
    """The six-hourly health check is due at once after setup_schedules too, and asks for
    tokens itself; tests about the sweep alone run it later."""
    Schedule.objects.filter(func="connections.tasks.check_all_health").update(
        next_run=timezone.now() + timedelta(hours=1)
    )


def wait_for_sweep_refresh(connection: Connection) -> RefreshAttempt:
    """The sweep's refresh of `connection`, waiting at most until its token expires."""
    expires_at = connection.access_expires_at
    attempt = wait_for(
        lambda: sweep_refresh(connection), timeout=max(0.0, seconds_until(expires_at))
    )
    assert attempt is not None, (
        f"{connection.slug}: no sweep refreshed it before its token expired at "
        f"{expires_at:%X} (margin {connection.refresh_margin()} s)"
    )
    assert attempt.started_at < expires_at
    stored = Connection.objects.get(pk=connection.pk)
    assert stored.status == Connection.Status.ACTIVE
    assert stored.version == connection.version + 1
    assert stored.access_token != connection.access_token
    assert stored.access_expires_at > expires_at
    return attempt


def test_qcluster_refreshes_an_expiring_token_without_any_caller(processes: Background) -> None:
    # A 60-s token has a 30-s margin (half its lifetime): by the first sweep, at least 30 s
    # after the cluster starts, it is inside its margin.
    server = processes.auth_server(access_ttl=60, refresh_ttl=3600)
    connection = authorized_connection(provider_for(server), server, "expiring")
    declare_schedules()
    run_later_the_health_check()

    cluster = processes.qcluster()
    assert_uses_configured_broker(cluster)

    attempt = wait_for_sweep_refresh(connection)
    assert attempt.outcome == SUCCESS
    assert attempt.rotated
    # Nobody asked: the sweep's is the only refresh.
    assert RefreshAttempt.objects.count() == 1
    assert server.stats()["refresh_calls"] == 1
    assert cluster.is_alive()


def test_qcluster_refreshes_a_token_that_would_expire_before_the_next_sweep(
    processes: Background,
) -> None:
    # A 52-s token with a 5-s threshold: at the first sweep (~32 s in) it has ~17 s left, more
    # than its margin, and it expires before the second sweep (~60 s in). Only a sweep that
    # refreshes what is due before the next sweep keeps it alive.
    server = processes.auth_server(access_ttl=52, refresh_ttl=3600)
    connection = authorized_connection(
        provider_for(server), server, "short-margin", refresh_threshold=5
    )
    declare_schedules()
    run_later_the_health_check()

    cluster = processes.qcluster()
    assert_uses_configured_broker(cluster)

    wait_for_sweep_refresh(connection)
    assert RefreshAttempt.objects.count() == 1


def test_qcluster_worker_killed_holding_the_lease_blocks_the_connection_only_for_the_lease(
    processes: Background,
) -> None:
    # 40-s tokens: the margin is 20 s, so the token is due at the cluster's first sweep.
    server = processes.auth_server(access_ttl=40, refresh_ttl=3600)
    connection = authorized_connection(provider_for(server), server, "killed")
    # The first refresh request hangs at a gateway in front of the provider, then gets a 504:
    # the provider never sees it, so the refresh token the worker sent stays valid. (Killed
    # after the provider got it, the worker would leave a rotated-away refresh token behind
    # and the next refresh would get invalid_grant: the known risk pinned in
    # tests/connections/test_refresh_engine.py, test_it_loses_the_grant_when_...)
    server.set_fault("stall", count=1, delay=30)
    declare_schedules()
    cluster = processes.qcluster(lease_seconds=LEASE_SECONDS, http_timeout=HTTP_TIMEOUT)
    assert_uses_configured_broker(cluster)

    def leased_and_sent() -> Connection | None:
        current = Connection.objects.get(pk=connection.pk)
        sent = server.stats()["faulted"] == 1
        return current if current.lease_until and sent else None

    leased = wait_for(leased_and_sent, timeout=FIRST_SWEEP_WITHIN, interval=0.05)
    assert leased is not None, "the cluster never started refreshing the connection"
    # lease_owner is host:pid:thread:nonce -- the pid is the worker running the sweep.
    worker_pid = int(leased.lease_owner.split(":")[1])
    assert worker_pid != cluster.pid
    cluster.kill_member(worker_pid)
    killed_at = timezone.now()

    # The dead worker's lease stays in the row until it runs out.
    held = Connection.objects.get(pk=connection.pk)
    assert (held.lease_owner, held.lease_until) == (leased.lease_owner, leased.lease_until)
    assert held.lease_until > killed_at
    assert held.version == connection.version
    assert (held.lease_until - killed_at).total_seconds() <= LEASE_SECONDS

    # A pipeline asks for a token: it waits out the lease, then gets a fresh one, no sooner.
    # (The cluster's health check, also due at its first tick, may be the one that refreshes:
    # single flight serves both from one provider call.)
    served = get_access_token(held)
    served_at = timezone.now()
    attempt = RefreshAttempt.objects.get(connection=connection)
    assert attempt.outcome == SUCCESS
    assert attempt.trigger == RefreshAttempt.Trigger.ON_DEMAND
    assert attempt.started_at >= held.lease_until
    assert served_at - held.lease_until < timedelta(seconds=3)
    assert served.version == connection.version + 1
    assert served.access_token != connection.access_token
    after = Connection.objects.get(pk=connection.pk)
    assert after.status == Connection.Status.ACTIVE
    assert after.access_token == served.access_token
    # The killed request never reached the provider; the one refresh after it did, with the
    # same refresh token, so the grant survived.
    assert server.stats()["refresh_calls"] == 2
    # The cluster replaced its worker and carries on.
    assert wait_for(lambda: "reincarnated worker" in cluster.read_log(), timeout=5)
    assert cluster.is_alive()
