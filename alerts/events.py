"""What an alert is, before anyone is told: the contract between the code that notices events
(the worker claiming StatusChange / FailoverEvent / refused-grant rows, the reminder job, the
fire drill) and the code that delivers them (rules, channels, transports, messages)."""

from dataclasses import dataclass, field
from typing import Any

from connections.models import AuthorizationRequest, Connection, FailoverEvent, StatusChange


@dataclass(frozen=True)
class Alert:
    """One event about one connection (or none, for a fire drill without one).

    `facts` is JSON-safe and never holds a token or a link: the reason, statuses, ISO 8601 times
    (`reauthorize_by`, `expires_at`), `days_until_expiry` (int or None; rule conditions read it),
    `lead` ("T-7d") for reminders, the backup's slug for failovers, and so on. `dedupe_key` makes
    a notification once-only per channel (reminders: one per deadline and lead time).
    """

    event: str
    connection: Connection | None
    facts: dict[str, Any] = field(default_factory=dict)
    dedupe_key: str = ""
    status_change: StatusChange | None = None
    failover_event: FailoverEvent | None = None
    authorization: AuthorizationRequest | None = None
    is_test: bool = False
