import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from connections.checks import check_refresh_timing, check_secrets_decrypt
from tests.databases import test_database_url
from tests.factories import ConnectionFactory


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
