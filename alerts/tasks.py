"""django-q2 entry points for alerts. Thin: run one service, return a short summary.

Idempotent: the worker claims rows with conditional UPDATEs, so a duplicated task sends nothing
twice and a lost one is made up by the next per-minute run.
"""

from alerts import worker


def deliver_alerts() -> str:
    counts = worker.run_once()
    return ", ".join(f"{name}={count}" for name, count in sorted(counts.items())) or "nothing due"


def send_reminders() -> str:
    """Hourly: reminders due before reauthorize-by dates, and client secrets due for rotation."""
    from alerts import reminders

    leads = reminders.send_expiry_reminders()
    rotations = reminders.send_secret_rotation_notices()
    summary = dict(leads) | ({"secret_rotation_due": rotations} if rotations else {})
    return ", ".join(f"{name}={count}" for name, count in sorted(summary.items())) or "nothing due"
