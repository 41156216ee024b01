"""`manage.py setup_schedules`: every periodic task declared once, idempotently."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.forms.models import model_to_dict
from django_q.models import Schedule

pytestmark = pytest.mark.django_db

SWEEP = "tokenadmin: access-token sweep"
RENEWAL = "tokenadmin: refresh-token renewal"
MONITOR = "tokenadmin: expiry monitor"
HEALTH = "tokenadmin: health checks"
ALERTS = "tokenadmin: alert delivery"
REMINDERS = "tokenadmin: expiry reminders"


def setup_schedules() -> str:
    out = StringIO()
    call_command("setup_schedules", stdout=out)
    return out.getvalue()


def rows() -> dict[str, dict]:
    return {s.name: model_to_dict(s) for s in Schedule.objects.order_by("pk")}


def test_it_declares_the_six_periodic_tasks():
    output = setup_schedules()
    declared = {
        s.name: (s.func, s.schedule_type, s.minutes, s.cron, s.repeats)
        for s in Schedule.objects.all()
    }
    assert declared == {
        SWEEP: ("connections.tasks.sweep_access_tokens", Schedule.MINUTES, 1, None, -1),
        RENEWAL: ("connections.tasks.renew_refresh_tokens", Schedule.HOURLY, None, None, -1),
        MONITOR: ("connections.tasks.monitor_expiry", Schedule.CRON, None, "0 3 * * *", -1),
        HEALTH: ("connections.tasks.check_all_health", Schedule.MINUTES, 360, None, -1),
        ALERTS: ("alerts.tasks.deliver_alerts", Schedule.MINUTES, 1, None, -1),
        REMINDERS: ("alerts.tasks.send_reminders", Schedule.HOURLY, None, None, -1),
    }
    assert output.count("created: ") == 6


def test_it_takes_timings_from_the_settings(settings):
    settings.TOKENADMIN = settings.TOKENADMIN | {
        "SWEEP_INTERVAL_SECONDS": 120,
        "MONITOR_CRON": "30 4 * * *",
        "HEALTH_CHECK_HOURS": 2,
    }
    setup_schedules()
    assert Schedule.objects.get(name=SWEEP).minutes == 2
    assert Schedule.objects.get(name=MONITOR).cron == "30 4 * * *"
    assert Schedule.objects.get(name=HEALTH).minutes == 120


def test_it_changes_nothing_when_run_again():
    setup_schedules()
    before = rows()
    output = setup_schedules()
    assert rows() == before
    assert Schedule.objects.count() == 6
    assert output.count("kept: ") == 6
    assert "created" not in output


def test_it_keeps_the_timing_an_admin_gave_a_schedule():
    setup_schedules()
    Schedule.objects.filter(name=SWEEP).update(minutes=5)
    Schedule.objects.filter(name=MONITOR).update(cron="15 1 * * 1-5")
    Schedule.objects.filter(name=RENEWAL).update(schedule_type=Schedule.MINUTES, minutes=30)
    before = rows()

    output = setup_schedules()

    assert rows() == before
    assert "kept: tokenadmin: access-token sweep (every 5 min)" in output
    assert "kept: tokenadmin: expiry monitor (cron 15 1 * * 1-5)" in output
    assert "kept: tokenadmin: refresh-token renewal (every 30 min)" in output


def test_it_corrects_a_wrong_task_function_and_keeps_the_timing():
    setup_schedules()
    Schedule.objects.filter(name=HEALTH).update(func="connections.tasks.old_name", minutes=90)
    setup_schedules()
    health = Schedule.objects.get(name=HEALTH)
    assert (health.func, health.minutes) == ("connections.tasks.check_all_health", 90)


def test_it_brings_back_a_deleted_schedule_with_the_default_timing():
    setup_schedules()
    Schedule.objects.filter(name=MONITOR).delete()
    output = setup_schedules()
    assert Schedule.objects.get(name=MONITOR).cron == "0 3 * * *"
    assert "created: tokenadmin: expiry monitor" in output
    assert Schedule.objects.count() == 6


def test_it_points_every_schedule_at_a_real_task():
    from importlib import import_module

    setup_schedules()
    for schedule in Schedule.objects.all():
        module, _, name = schedule.func.rpartition(".")
        assert module in ("connections.tasks", "alerts.tasks")
        assert callable(getattr(import_module(module), name))


def test_it_survives_a_duplicate_left_by_two_concurrent_runs():
    setup_schedules()
    sweep = Schedule.objects.get(name=SWEEP)
    sweep.pk = None
    sweep.save()

    setup_schedules()

    assert Schedule.objects.filter(name=SWEEP).count() == 1
