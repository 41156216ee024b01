"""`manage.py connection consumers SLUG`: the pipelines using a connection, by cron schedule."""

import json
from datetime import UTC, datetime
from unittest import mock

import pytest
import time_machine

from connections import services
from connections.models import ConsumerSchedule
from tests.factories import ConnectionFactory
from tests.support.cli import command_fails, run_command

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def connection():
    return ConnectionFactory(slug="analytics", authorized=True)


def consumers(*args: str) -> tuple[str, str]:
    return run_command("connection", "consumers", "analytics", *args)


def fails(*args: str, returncode: int = 1) -> str:
    return command_fails("connection", "consumers", "analytics", *args, returncode=returncode)


@time_machine.travel(NOW, tick=False)
def test_it_adds_a_consumer_through_the_service_with_its_next_run(connection):
    with mock.patch.object(services, "consumer_add", wraps=services.consumer_add) as spy:
        out, _ = consumers(
            "--add", "nightly", "--cron", "0 2 * * *", "--tz", "Europe/Berlin", "--lead", "30",
            "--json",
        )  # fmt: skip
    spy.assert_called_once()
    assert json.loads(out) == {
        "label": "nightly",
        "cron": "0 2 * * *",
        "timezone": "Europe/Berlin",
        "lead_minutes": 30,
        "run_minutes": 60,
        "next_run_at": "2026-07-02T00:00:00Z",  # 02:00 CEST
    }
    stored = ConsumerSchedule.objects.get(connection=connection)
    assert stored.prepare_at == datetime(2026, 7, 1, 23, 30, tzinfo=UTC)


@time_machine.travel(NOW, tick=False)
def test_it_lists_consumers_as_a_table_and_as_json(connection):
    out, _ = consumers("--add", "hourly sync", "--cron", "15 * * * *")
    assert "Added consumer 'hourly sync' to analytics" in out
    assert "next run 2026-07-01T12:15:00Z" in out
    table, _ = consumers()
    header, row = table.splitlines()
    assert header.split()[:3] == ["CONSUMER", "CRON", "TIME"]
    assert "hourly sync" in row and "UTC" in row and "2026-07-01T12:15:00Z" in row
    listed, _ = consumers("--json")
    assert [item["label"] for item in json.loads(listed)] == ["hourly sync"]


def test_it_says_how_to_add_the_first_consumer(connection):
    out, _ = consumers()
    assert "analytics has no consumers" in out
    assert json.loads(consumers("--json")[0]) == []


def test_it_removes_a_consumer_through_the_service(connection):
    services.consumer_add(connection=connection, label="nightly", cron="0 2 * * *")
    with mock.patch.object(services, "consumer_remove", wraps=services.consumer_remove) as spy:
        out, _ = consumers("--remove", "nightly")
    spy.assert_called_once()
    assert out.strip() == "Removed consumer 'nightly' from analytics."
    assert not ConsumerSchedule.objects.exists()
    assert fails("--remove", "nightly") == "--remove: analytics has no consumer named 'nightly'."


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--cron", "every night"], "--cron: 'every night' is not a valid cron expression"),
        (["--cron", "0 2 * * *", "--tz", "Mars/Olympus"], "--tz: 'Mars/Olympus' is not a known"),
        ([], "--add needs --cron"),
    ],
)
def test_it_refuses_a_bad_schedule_and_stores_nothing(connection, args, words):
    assert words in fails("--add", "nightly", *args)
    assert not ConsumerSchedule.objects.exists()


def test_it_refuses_a_duplicate_name(connection):
    consumers("--add", "nightly", "--cron", "0 2 * * *")
    message = fails("--add", "nightly", "--cron", "0 3 * * *")
    assert message == "--add: analytics already has a consumer named 'nightly'."
    assert ConsumerSchedule.objects.get().cron == "0 2 * * *"


def test_it_takes_schedule_options_only_with_add(connection):
    assert "--cron goes with --add NAME" in fails("--cron", "0 2 * * *")
    assert "--lead goes with --add NAME" in fails("--remove", "x", "--lead", "5")


def test_it_says_when_the_connection_is_unknown(db):
    assert "No connection with slug 'analytics'" in fails(returncode=2)
