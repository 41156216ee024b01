"""`/healthz`: the database, the broker and the scheduler; 200 when all are healthy, else 503.

`/healthz?ready` checks only the database: what a web process needs to serve. Readiness probes of
a just-started gunicorn use it (tests/e2e/harness.py, bench/), since no sweep has run yet then.
"""

import io
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest
import time_machine
from django.core.management import call_command
from django.db import OperationalError
from django.db import connection as db_connection
from django.test import Client
from django_q.models import Schedule, Task

from tests.background.cluster import Background, background, declare_schedules
from tests.support.polling import wait_for

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SWEEP_NAME = "tokenadmin: access-token sweep"
SWEEP_FUNC = "connections.tasks.sweep_access_tokens"


def healthz(query: str = "") -> tuple[int, dict]:
    response = Client().get("/healthz" + query)
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


def record_sweep(*, stopped: datetime, success: bool = True) -> None:
    """A finished sweep, as django-q2's monitor saves it (either broker)."""
    Task.objects.create(
        id=uuid.uuid4().hex,
        name=f"sweep-{uuid.uuid4().hex[:8]}",
        func=SWEEP_FUNC,
        group=SWEEP_NAME,
        started=stopped - timedelta(seconds=2),
        stopped=stopped,
        success=success,
    )


def declared_at(moment: datetime) -> None:
    with time_machine.travel(moment, tick=False):
        call_command("setup_schedules", stdout=io.StringIO())


@pytest.mark.django_db
def test_it_answers_200_when_the_database_broker_and_scheduler_are_healthy(settings):
    settings.REDIS_URL = ""  # the ORM broker, also in CI's Redis pass
    declared_at(T0)
    record_sweep(stopped=T0 + timedelta(seconds=40))
    with time_machine.travel(T0 + timedelta(seconds=70), tick=False):
        status, body = healthz()
    assert status == 200
    assert body["status"] == "ok"
    assert body["database"]["status"] == "ok"
    assert body["broker"] == {"status": "ok", "reason": "ORM broker (the database)"}
    assert body["scheduler"] == {"status": "ok", "reason": "the sweep last finished 30 s ago"}


@pytest.mark.django_db
def test_it_reports_a_declared_sweep_that_has_not_run_yet_as_starting():
    declared_at(T0)
    with time_machine.travel(T0 + timedelta(seconds=30), tick=False):
        status, body = healthz()
    assert status == 200
    assert body["scheduler"]["status"] == "starting"


@pytest.mark.django_db
def test_it_fails_when_no_sweep_ran_within_three_intervals_of_the_schedule_being_due():
    declared_at(T0)
    with time_machine.travel(T0 + timedelta(seconds=180), tick=False):
        assert healthz()[0] == 200
    with time_machine.travel(T0 + timedelta(seconds=181), tick=False):
        status, body = healthz()
    assert status == 503
    assert body["status"] == "error"
    assert body["scheduler"]["status"] == "error"
    assert "qcluster" in body["scheduler"]["reason"]
    # The other checks still say what they saw.
    assert body["database"]["status"] == "ok"


@pytest.mark.django_db
def test_it_fails_when_the_last_successful_sweep_is_older_than_three_intervals():
    declared_at(T0)
    last = T0 + timedelta(minutes=10)
    record_sweep(stopped=last)
    record_sweep(stopped=last + timedelta(minutes=1), success=False)
    with time_machine.travel(last + timedelta(seconds=180), tick=False):
        assert healthz()[0] == 200
    with time_machine.travel(last + timedelta(seconds=181), tick=False):
        status, body = healthz()
    assert status == 503
    assert body["scheduler"] == {
        "status": "error",
        "reason": "the sweep last succeeded 3 min 1 s ago, more than 3 intervals of 60 s: "
        "is `manage.py qcluster` running?",
    }


@pytest.mark.django_db
def test_it_measures_staleness_in_the_interval_an_admin_gave_the_schedule():
    declared_at(T0)
    Schedule.objects.filter(name=SWEEP_NAME).update(minutes=5)
    record_sweep(stopped=T0)
    with time_machine.travel(T0 + timedelta(minutes=15), tick=False):
        assert healthz()[0] == 200
    with time_machine.travel(T0 + timedelta(minutes=15, seconds=1), tick=False):
        assert healthz()[0] == 503


@pytest.mark.django_db
def test_it_gives_long_ages_in_two_units_a_person_reads_at_a_glance():
    declared_at(T0)
    Schedule.objects.filter(name=SWEEP_NAME).update(minutes=5)
    record_sweep(stopped=T0)
    with time_machine.travel(T0 + timedelta(hours=2, minutes=5, seconds=9), tick=False):
        _status, body = healthz()
    assert body["scheduler"]["reason"].startswith(
        "the sweep last succeeded 2 h 5 min ago, more than 3 intervals of 5 min:"
    )
    with time_machine.travel(T0 + timedelta(days=3, hours=4, minutes=1), tick=False):
        _status, body = healthz()
    assert body["scheduler"]["reason"].startswith("the sweep last succeeded 3 d 4 h ago")


@pytest.mark.django_db
def test_it_fails_when_every_sweep_so_far_failed():
    declared_at(T0)
    record_sweep(stopped=T0 + timedelta(seconds=30), success=False)
    with time_machine.travel(T0 + timedelta(seconds=40), tick=False):
        status, body = healthz()
    assert status == 503
    assert body["scheduler"]["reason"].startswith("no sweep has succeeded yet")


@pytest.mark.django_db
def test_it_fails_when_the_schedules_were_never_declared():
    status, body = healthz()
    assert status == 503
    assert body["scheduler"]["status"] == "error"
    assert "manage.py setup_schedules" in body["scheduler"]["reason"]


@pytest.mark.django_db
def test_it_fails_when_an_admin_switched_the_sweep_off():
    declared_at(T0)
    Schedule.objects.filter(name=SWEEP_NAME).update(repeats=0)
    record_sweep(stopped=T0)
    with time_machine.travel(T0 + timedelta(seconds=10), tick=False):
        status, body = healthz()
    assert status == 503
    assert "switched off" in body["scheduler"]["reason"]


@pytest.mark.django_db
def test_ready_checks_only_the_database_so_a_fresh_web_process_passes_its_probe():
    # Nothing declared, nothing run: the full check fails, the readiness probe does not.
    assert healthz()[0] == 503
    status, body = healthz("?ready")
    assert status == 200
    assert set(body) == {"status", "database"}
    assert body["status"] == "ok"


@pytest.mark.django_db
def test_it_fails_when_the_database_does_not_answer(settings):
    settings.REDIS_URL = ""  # the ORM broker, whose health is the database's
    declared_at(T0)
    record_sweep(stopped=T0)
    refused = OperationalError("could not connect to server: Connection refused")
    with (
        time_machine.travel(T0 + timedelta(seconds=10), tick=False),
        mock.patch.object(db_connection, "cursor", side_effect=refused),
    ):
        full = healthz()
        ready = healthz("?ready")
    assert full[0] == ready[0] == 503
    body = full[1]
    assert body["database"] == {
        "status": "error",
        "reason": "the database did not answer (OperationalError)",
    }
    assert body["broker"]["status"] == "error"
    assert body["scheduler"] == {
        "status": "error",
        "reason": "unknown: the database did not answer",
    }
    assert ready[1]["database"]["status"] == "error"


@pytest.mark.django_db
def test_it_fails_quickly_when_the_redis_broker_does_not_answer(settings):
    declared_at(T0)
    record_sweep(stopped=T0)
    settings.REDIS_URL = "redis://:broker-password@127.0.0.1:1/0"
    started = time.monotonic()
    with time_machine.travel(T0 + timedelta(seconds=10), tick=False):
        response = Client().get("/healthz")
    assert time.monotonic() - started < 3
    assert response.status_code == 503
    body = response.json()
    assert body["broker"]["status"] == "error"
    assert body["broker"]["reason"].startswith("Redis did not answer a PING")
    assert body["scheduler"]["status"] == "ok"
    assert "broker-password" not in response.content.decode()


@pytest.mark.django_db
def test_it_gives_up_on_an_unreachable_redis_broker_within_its_timeout(settings):
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): nothing answers there, at best the connect times out.
    settings.REDIS_URL = "redis://192.0.2.1:6379/0"
    started = time.monotonic()
    status, body = healthz()
    assert time.monotonic() - started < 3
    assert status == 503
    assert body["broker"]["status"] == "error"


@pytest.mark.django_db
def test_it_pings_the_configured_redis_broker(settings):
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (CI's Redis pass)")
    _status, body = healthz()
    assert body["broker"]["status"] == "ok"
    assert body["broker"]["reason"].startswith("Redis answered a PING")


# --- with a real cluster ------------------------------------------------------------------------
@pytest.fixture
def processes(transactional_db: None, tmp_path: Path) -> Iterator[Background]:
    with background(tmp_path) as processes:
        yield processes


def test_qcluster_sweep_turns_the_scheduler_from_starting_to_ok(processes: Background) -> None:
    """The real cluster (ORM broker, or Redis in CI's Redis pass) runs the declared sweep and the
    check reads what it left behind."""
    declare_schedules()
    status, body = healthz()
    assert (status, body["scheduler"]["status"]) == (200, "starting")

    processes.qcluster(workers=1)
    swept = wait_for(
        lambda: Task.objects.filter(func=SWEEP_FUNC, success=True).exists(), timeout=60
    )
    assert swept, "the cluster ran no sweep within 60 s"

    status, body = healthz()
    assert status == 200, body
    assert body["scheduler"]["status"] == "ok"
    assert body["scheduler"]["reason"].startswith("the sweep last finished")
    assert body["broker"]["status"] == "ok"
