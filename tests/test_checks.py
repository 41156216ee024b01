import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from connections.checks import check_refresh_timing


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
