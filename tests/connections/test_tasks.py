from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from connections import tasks
from connections.authorize import start_authorization
from connections.models import AuthorizationRequest, HealthCheck, RefreshAttempt
from tests.factories import ConnectionFactory


@pytest.mark.django_db
def test_it_purges_consent_trips_older_than_a_day_and_old_history():
    connection = ConnectionFactory()
    start_authorization(connection, browser_secret="b")
    HealthCheck.objects.create(connection=connection, method="url", ok=True)
    RefreshAttempt.objects.create(connection=connection, trigger="sweep", outcome="success")
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        start_authorization(connection, browser_secret="b")
        summary = tasks.monitor_expiry()
    assert "purged_rows=2" in summary  # the old consent trip and the 31-day-old health check
    assert AuthorizationRequest.objects.count() == 1
    assert not HealthCheck.objects.exists()
    assert RefreshAttempt.objects.count() == 1  # kept 90 days


@pytest.mark.django_db
def test_tasks_say_what_they_did_in_a_short_string():
    assert tasks.sweep_access_tokens() == "nothing due"
    assert tasks.refresh(123456) == "deleted"
    assert tasks.check_health(123456) == "deleted"
