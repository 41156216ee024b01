"""A nudge for whoever reacts to the rows the engine writes, without `connections` importing them.

The rows themselves (StatusChange, FailoverEvent, a refused AuthorizationRequest) are the source of
truth and are claimed by a worker with a conditional UPDATE; this only says "look now" once the
writing transaction has committed, so delivery starts within seconds instead of at the next
sweep. Receivers must be cheap (queue a task) and never raise: a lost nudge changes timing only.
"""

from django.db import transaction
from django.dispatch import Signal

# Sent with `kind` ("status_change", "failover", "authorization") and `pk` of the written row.
alert_source_written = Signal()


def announce_alert_source(*, kind: str, pk: int) -> None:
    """Send `alert_source_written` after the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: alert_source_written.send_robust(sender=None, kind=kind, pk=pk))
