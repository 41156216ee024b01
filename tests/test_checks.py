import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from connections.checks import (
    check_refresh_timing,
    check_reminder_timing,
    check_secrets_decrypt,
    longest_cron_gap,
)
from tests.databases import test_database_url
from tests.factories import ConnectionFactory
from tests.support.settings_env import real_settings_env


def test_it_accepts_the_default_timing():
    assert check_refresh_timing() == []


def test_it_rejects_a_lease_that_a_slow_call_could_outlive(settings):
    settings.TOKENADMIN = {**settings.TOKENADMIN, "LEASE_SECONDS": 13, "HTTP_TIMEOUT": 10}
    assert [e.id for e in check_refresh_timing()] == ["tokenadmin.E001"]
    with pytest.raises(SystemCheckError, match="LEASE_SECONDS"):
        call_command("check")


def test_it_rejects_a_wait_shorter_than_the_lease(settings):
    settings.TOKENADMIN = {**settings.TOKENADMIN, "WAIT_SECONDS": 30, "LEASE_SECONDS": 30}
    assert [e.id for e in check_refresh_timing()] == ["tokenadmin.E002"]


def test_it_rejects_a_sweep_budget_beyond_the_task_timeout(settings):
    settings.TOKENADMIN = {**settings.TOKENADMIN, "SWEEP_BUDGET_SECONDS": 500}
    assert [e.id for e in check_refresh_timing()] == ["tokenadmin.E003"]


def test_it_rejects_a_sweep_interval_that_is_not_whole_minutes(settings):
    settings.TOKENADMIN = {**settings.TOKENADMIN, "SWEEP_INTERVAL_SECONDS": 90}
    assert [e.id for e in check_refresh_timing()] == ["tokenadmin.E004"]


@pytest.mark.django_db(transaction=True)
def test_it_stops_start_up_when_stored_secrets_do_not_decrypt():
    ConnectionFactory(authorized=True)
    assert check_secrets_decrypt(databases=["default"]) == []

    def check_with(**keys: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": test_database_url(),
            **keys,
        }
        return subprocess.run(
            [sys.executable, "manage.py", "check", "--database", "default"],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert check_with().returncode == 0
    wrong = check_with(ENCRYPTION_KEY="not-the-key-the-data-was-encrypted-with")
    assert wrong.returncode != 0
    assert "tokenadmin.E005" in wrong.stderr and "cannot be decrypted" in wrong.stderr
    assert "Traceback" not in wrong.stderr


SHORT_LEADS = (timedelta(minutes=10), timedelta(minutes=5))


def test_it_rejects_lead_times_the_reminder_job_could_run_past(settings):
    # An hourly job sees a 10:30 deadline at 10:00 (30 min left: no lead reached) and at 11:00
    # (past): no reminder would ever go out.
    settings.TOKENADMIN = {**settings.TOKENADMIN, "WARNING_LEAD_TIMES": SHORT_LEADS}
    [error] = [m for m in check_reminder_timing() if m.id == "tokenadmin.E006"]
    assert "TOKENADMIN_WARNING_LEAD_TIMES (5m)" in error.msg
    assert "TOKENADMIN_REMINDER_MINUTES=60" in error.msg
    assert "TOKENADMIN_REMINDER_MINUTES=2" in error.hint
    with pytest.raises(SystemCheckError, match=r"tokenadmin\.E006"):
        call_command("check")


def test_it_rejects_a_reminder_period_exactly_as_long_as_the_shortest_lead(settings):
    settings.TOKENADMIN = {
        **settings.TOKENADMIN,
        "WARNING_LEAD_TIMES": (timedelta(hours=2), timedelta(hours=1)),
        "MONITOR_CRON": "0 * * * *",
    }
    assert [m.id for m in check_reminder_timing()] == ["tokenadmin.E006"]
    settings.TOKENADMIN = {**settings.TOKENADMIN, "REMINDER_MINUTES": 59}
    assert check_reminder_timing() == []


def test_it_says_a_lead_time_of_a_minute_or_less_cannot_be_served(settings):
    settings.TOKENADMIN = {
        **settings.TOKENADMIN,
        "WARNING_LEAD_TIMES": (timedelta(seconds=45),),
        "REMINDER_MINUTES": 1,
        "MONITOR_CRON": "* * * * *",
    }
    [error] = [m for m in check_reminder_timing() if m.id == "tokenadmin.E006"]
    assert "Lengthen the shortest lead time beyond a minute" in error.hint


def test_it_warns_when_the_monitor_runs_less_often_than_the_longest_lead(settings):
    settings.TOKENADMIN = {
        **settings.TOKENADMIN,
        "WARNING_LEAD_TIMES": SHORT_LEADS,
        "REMINDER_MINUTES": 1,
    }
    [warning] = check_reminder_timing()
    assert warning.id == "tokenadmin.W002"
    assert isinstance(warning, checks.Warning)
    assert "TOKENADMIN_MONITOR_CRON='0 3 * * *': up to 1d between runs" in warning.msg
    assert "TOKENADMIN_MONITOR_CRON='* * * * *'" in warning.hint
    settings.TOKENADMIN = {**settings.TOKENADMIN, "MONITOR_CRON": "*/10 * * * *"}
    assert check_reminder_timing() == []  # every 10 min: exactly the longest lead


@pytest.mark.parametrize(
    ("cron", "gap"),
    [
        ("* * * * *", timedelta(minutes=1)),
        ("0 3 * * *", timedelta(days=1)),
        ("0 3 * * 1-5", timedelta(days=3)),  # Friday to Monday
        ("*/15 9-17 * * *", timedelta(hours=15, minutes=15)),  # 17:45 to 9:00
    ],
)
def test_it_measures_a_cron_by_its_longest_gap(cron, gap):
    assert longest_cron_gap(cron) == gap


def test_it_rejects_a_monitor_cron_it_cannot_read(settings):
    settings.TOKENADMIN = {**settings.TOKENADMIN, "MONITOR_CRON": "0 3 * *"}
    assert [m.id for m in check_reminder_timing()] == ["tokenadmin.E007"]


def run_check(**env: str) -> subprocess.CompletedProcess[str]:
    """`manage.py check` under the project's real settings and a clean TOKENADMIN_ environment."""
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env=real_settings_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_defaults_and_demo_mode_pass_and_short_leads_alone_stop_start_up():
    assert run_check().returncode == 0
    demo = run_check(TOKENADMIN_DEMO="1")  # 10m,5m with a job every minute
    assert demo.returncode == 0, demo.stderr
    assert "tokenadmin." not in demo.stderr + demo.stdout
    short = run_check(TOKENADMIN_WARNING_LEAD_TIMES="10m,5m")
    assert short.returncode != 0
    assert "tokenadmin.E006" in short.stderr and "tokenadmin.W002" in short.stderr
    assert (
        run_check(
            TOKENADMIN_WARNING_LEAD_TIMES="10m,5m",
            TOKENADMIN_REMINDER_MINUTES="1",
            TOKENADMIN_MONITOR_CRON="* * * * *",
        ).returncode
        == 0
    )
