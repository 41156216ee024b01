"""django-q2 entry points. Thin: take ids, re-read state, call one function, return a summary.

Each is idempotent: a duplicated or lost task changes timing, never outcome.
"""

from connections import confirmations, monitoring, sweeps
from connections.lifecycle import TokenUnavailable, refresh_connection
from connections.models import Connection, RefreshAttempt


def _summary(outcomes: dict[str, int]) -> str:
    return ", ".join(f"{name}={count}" for name, count in sorted(outcomes.items())) or "nothing due"


def sweep_access_tokens() -> str:
    return _summary(sweeps.sweep_access_tokens())


def renew_refresh_tokens() -> str:
    outcomes = sweeps.renew_refresh_tokens()
    # Hourly is soon enough for held grants (they wait hours): revoke those nobody confirmed.
    if expired := confirmations.expire_held_grants():
        outcomes["held_grants_expired"] = expired
    return _summary(outcomes)


def monitor_expiry() -> str:
    purged = monitoring.purge_history()
    return _summary(monitoring.monitor_expiry() | {"purged_rows": purged})


def check_all_health() -> str:
    return _summary(monitoring.check_all_health())


def check_health(connection_id: int) -> str:
    connection = Connection.objects.select_related("provider").filter(pk=connection_id).first()
    if connection is None:
        return "deleted"
    check = monitoring.check_health(connection)
    return "skipped" if check is None else "ok" if check.ok else f"failed: {check.error_code}"


def refresh(connection_id: int) -> str:
    connection = Connection.objects.select_related("provider").filter(pk=connection_id).first()
    if connection is None:
        return "deleted"
    try:
        refreshed = refresh_connection(
            connection, trigger=RefreshAttempt.Trigger.FORCED, force=True
        )
    except TokenUnavailable as exc:
        return exc.code
    return f"refreshed (version {refreshed.version})"
