"""System checks: settings combinations that would break the refresh rules fail at start-up."""

import pickle
from datetime import datetime, timedelta
from typing import Any

from croniter import croniter
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.signing import BadSignature
from django.db import DatabaseError
from django_cryptography.utils.crypto import InvalidToken

from connections.oauth import CONNECT_TIMEOUT
from tokenadmin.durations import format_duration


@register()
def check_refresh_timing(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    cfg = settings.TOKENADMIN
    errors = []
    # A call may spend the connect timeout and then the read timeout. A lease that ran out
    # mid-call would let a second caller send the same refresh token, which rotating providers
    # punish by revoking the grant.
    longest_call = min(CONNECT_TIMEOUT, cfg["HTTP_TIMEOUT"]) + cfg["HTTP_TIMEOUT"]
    if cfg["LEASE_SECONDS"] <= longest_call:
        errors.append(
            Error(
                f"TOKENADMIN_LEASE_SECONDS ({cfg['LEASE_SECONDS']} s) must exceed the longest "
                f"provider call: connect + TOKENADMIN_HTTP_TIMEOUT = {longest_call:g} s.",
                hint="Raise the lease or lower the HTTP timeout.",
                id="tokenadmin.E001",
            )
        )
    if cfg["WAIT_SECONDS"] <= cfg["LEASE_SECONDS"]:
        errors.append(
            Error(
                "TOKENADMIN_WAIT_SECONDS must exceed TOKENADMIN_LEASE_SECONDS, so a caller "
                "outwaits "
                "a crashed holder's lease instead of failing.",
                id="tokenadmin.E002",
            )
        )
    # A job may start just before the budget runs out and then hold its lease (twice, with the
    # timeout retry) before the task ends.
    if cfg["SWEEP_BUDGET_SECONDS"] + 2 * cfg["LEASE_SECONDS"] >= settings.Q_CLUSTER["timeout"]:
        errors.append(
            Error(
                "TOKENADMIN_SWEEP_BUDGET_SECONDS plus twice TOKENADMIN_LEASE_SECONDS must stay "
                "below Q_CLUSTER's task timeout, or the cluster kills a sweep mid-refresh.",
                id="tokenadmin.E003",
            )
        )
    if cfg["SWEEP_INTERVAL_SECONDS"] % 60:
        errors.append(
            Error(
                "TOKENADMIN_SWEEP_INTERVAL_SECONDS must be a whole number of minutes: django-q2 "
                "schedules run at most once a minute.",
                id="tokenadmin.E004",
            )
        )
    return errors


@register()
def check_reminder_timing(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The jobs that act on lead times must run more often than the lead times are long.

    Reads the settings that `setup_schedules` declares the jobs with; a timing an admin edited in
    the Django admin afterwards is not seen here.
    """
    cfg = settings.TOKENADMIN
    leads = [lead for lead in cfg["WARNING_LEAD_TIMES"] if lead > timedelta(0)]
    if not leads:
        return []
    messages: list[CheckMessage] = []
    shortest, longest = min(leads), max(leads)
    # A reminder is due from its lead time until the deadline and the job sends nothing once the
    # deadline has passed: with a period as long as the shortest lead, a deadline can fall between
    # two runs with no lead reached at the first (10:30 seen at 10:00 and 11:00 with 10m,5m).
    reminder_period = timedelta(minutes=max(1, cfg["REMINDER_MINUTES"]))
    if shortest <= reminder_period:
        messages.append(
            Error(
                f"The shortest of TOKENADMIN_WARNING_LEAD_TIMES ({format_duration(shortest)}) "
                "must be longer than the reminder job's period (TOKENADMIN_REMINDER_MINUTES="
                f"{cfg['REMINDER_MINUTES']}): a deadline could pass between two runs with no "
                "reminder sent.",
                hint=_reminder_hint(shortest),
                id="tokenadmin.E006",
            )
        )
    cron = cfg["MONITOR_CRON"]
    if not croniter.is_valid(cron):
        messages.append(
            Error(
                f"TOKENADMIN_MONITOR_CRON ({cron!r}) is not a cron expression.",
                hint="Give five fields, e.g. TOKENADMIN_MONITOR_CRON='0 3 * * *' (daily at 3:00).",
                id="tokenadmin.E007",
            )
        )
        return messages
    # The expiry monitor marks connections `expiring` once inside the longest lead; runs further
    # apart than that let a connection go from active to past its deadline unmarked.
    monitor_gap = longest_cron_gap(cron, at_least=longest)
    if longest < monitor_gap:
        messages.append(
            Warning(
                f"The longest of TOKENADMIN_WARNING_LEAD_TIMES ({format_duration(longest)}) is "
                f"shorter than the expiry monitor's period (TOKENADMIN_MONITOR_CRON={cron!r}: up "
                f"to {format_duration(monitor_gap)} between runs): a connection can reach its "
                "reauthorize-by date before it is marked expiring.",
                hint=_monitor_hint(longest),
                id="tokenadmin.W002",
            )
        )
    return messages


def _reminder_hint(shortest: timedelta) -> str:
    minutes = int(shortest.total_seconds() // 60)
    if shortest <= timedelta(minutes=1):
        return (
            "Lengthen the shortest lead time beyond a minute (the reminder job runs at most once "
            "a minute), e.g. TOKENADMIN_WARNING_LEAD_TIMES=10m,5m."
        )
    # Half the lead leaves room for a run that starts late.
    suggested = max(1, minutes // 2)
    return (
        f"Run the reminder job more often, e.g. TOKENADMIN_REMINDER_MINUTES={suggested}, or "
        "lengthen the shortest lead time."
    )


def _monitor_hint(longest: timedelta) -> str:
    cron = "0 * * * *" if longest >= timedelta(hours=1) else "* * * * *"
    return (
        f"Run the monitor more often, e.g. TOKENADMIN_MONITOR_CRON='{cron}', or lengthen the "
        "longest lead time."
    )


def longest_cron_gap(
    cron: str, *, at_least: timedelta | None = None, runs: int = 1500
) -> timedelta:
    """The longest time between two runs of `cron`, over a year from a fixed date or `runs` runs,
    whichever ends first (enough for the minute to month patterns a schedule uses). Stops early at
    a gap longer than `at_least`: the caller only asks whether there is one."""
    schedule = croniter(cron, datetime(2025, 1, 1))
    previous = schedule.get_next(datetime)
    end = previous + timedelta(days=366)
    longest = timedelta(0)
    for _ in range(runs):
        run = schedule.get_next(datetime)
        longest = max(longest, run - previous)
        if run > end or (at_least is not None and longest > at_least):
            break
        previous = run
    return longest


@register(deploy=True)
def check_site_url(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    if settings.SITE_URL.startswith("http://"):
        return [
            Warning(
                "SITE_URL is not https: authorization codes and reauthorization links would "
                "travel in clear text.",
                id="tokenadmin.W001",
            )
        ]
    return []


@register(Tags.database)
def check_secrets_decrypt(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[Error]:
    """Stored tokens must decrypt with the configured keys.

    Runs with `migrate` (so `make run` stops before serving) and `check --database default`.
    django-cryptography derives its cipher key from ENCRYPTION_KEY but signs with SECRET_KEY,
    so changing either without re-encrypting makes every stored secret unreadable.
    """
    if not databases:
        return []
    from connections.models import Connection

    try:
        Connection.objects.only("client_secret", "access_token", "refresh_token").first()
    except (InvalidToken, BadSignature, pickle.UnpicklingError):
        return [
            Error(
                "Stored tokens and client secrets cannot be decrypted with the configured keys.",
                hint="Set ENCRYPTION_KEY and SECRET_KEY back to the values the data was "
                "encrypted with.",
                id="tokenadmin.E005",
            )
        ]
    except DatabaseError:
        return []  # not migrated yet: nothing stored to check
    return []
