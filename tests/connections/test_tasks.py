from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from connections import tasks
from connections.authorize import start_authorization
from connections.models import AuthorizationRequest
from tests.factories import ConnectionFactory


@pytest.mark.django_db
def test_it_purges_consent_trips_older_than_a_day():
    connection = ConnectionFactory()
    start_authorization(connection, browser_secret="b")
    with time_machine.travel(timezone.now() + timedelta(days=1, minutes=1)):
        start_authorization(connection, browser_secret="b")
        summary = tasks.monitor_expiry()
    assert "purged_requests=1" in summary
    assert AuthorizationRequest.objects.count() == 1


@pytest.mark.django_db
def test_tasks_say_what_they_did_in_a_short_string():
    assert tasks.sweep_access_tokens() == "nothing due"
    assert tasks.refresh(123456) == "deleted"
    assert tasks.check_health(123456) == "deleted"
