"""Reminders before each reauthorize-by date, and client-secret age notices.

A reminder goes out at each lead time: every one of TOKENADMIN_WARNING_LEAD_TIMES (default
14, 7, 3 and 1 days; the demo's 10 and 5 minutes) to every expiry-warning rule whose condition
holds, plus the moment each rule's own condition first becomes true (`days_until_expiry <= 10`:
ten days before) to that rule alone. The job runs every TOKENADMIN_REMINDER_MINUTES (60) and
computes leads from exact times, so each goes out within that long after its moment.

Once only: a reminder's `dedupe_key` is "<deadline>/T-<lead>" (T-7d, T-10m) and Notification's
unique constraint (channel, connection, event, dedupe_key) makes a second one impossible, also
with two jobs running. A reauthorization makes a new deadline, hence new keys; reminders are
computed from the deadline in force now, so one for a deadline no longer current is never made. A
job that ran late (or a connection created inside the window) sends the most urgent lead only,
never a burst.

Cost: one query for the rules, then per batch of connections one for them, one for their
pipelines' schedules and one for the reminders already sent; only the reminders actually due
cost more (their deliveries).
"""

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from alerts.conditions import parse_condition
from alerts.dispatch import dispatch
from alerts.events import Alert
from alerts.models import AlertRule, Event, Notification
from alerts.sources import reminder_facts
from connections.models import Connection
from connections.status import warning_lead_times
from tokenadmin.durations import format_duration

DAY = timedelta(days=1)
BATCH = 500
# A condition's threshold is searched up to this many days ahead of a deadline.
MAX_LEAD_DAYS = 366
# Never read by the reminder job; keeping them out also keeps them out of memory.
ENCRYPTED_FIELDS = ("access_token", "refresh_token", "client_secret")


@dataclass(frozen=True)
class Lead:
    """A moment before a deadline at which a reminder is due, and the rules it goes to."""

    before: timedelta
    # None: every expiry-warning rule whose condition holds (a configured lead time);
    # otherwise only the rules whose condition first becomes true at this lead.
    rules: tuple[AlertRule, ...] | None = None

    @property
    def label(self) -> str:
        # Whole days keep the "T-7d" keys of reminders already sent.
        return f"T-{format_duration(self.before)}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def reminder_key(deadline: datetime, lead: Lead) -> str:
    return f"{_iso(deadline)}/{lead.label}"


def is_current_reminder(dedupe_key: str, connection: Connection) -> bool:
    """Whether a reminder keyed `dedupe_key` is still about the deadline in force: a retry of one
    made before the connection was reauthorized must not go out."""
    deadline = connection.reauthorize_by
    return deadline is not None and dedupe_key.startswith(f"{_iso(deadline)}/")


def condition_thresholds(condition: str) -> list[int]:
    """The day counts at which `condition` becomes true as a deadline approaches: the n where it
    holds for `days_until_expiry` n but not n + 1 (`<= 10` → [10]; `== 5` → [5])."""
    try:
        clauses = parse_condition(condition)
    except ValidationError:
        return []  # the dispatcher reports an invalid condition; it sets no lead time
    if not any(clause.fact == "days_until_expiry" for clause in clauses):
        return []

    def holds(days: int) -> bool:
        return all(clause.matches({"days_until_expiry": days}) for clause in clauses)

    return [n for n in range(MAX_LEAD_DAYS + 1) if holds(n) and not holds(n + 1)]


def lead_times(rules: Iterable[AlertRule]) -> list[Lead]:
    """Every lead time, longest first: the configured ones, then each rule's own threshold
    (a threshold equal to a configured lead adds nothing: that lead already asks every rule)."""
    configured = set(warning_lead_times())
    by_threshold: dict[timedelta, list[AlertRule]] = {}
    for rule in rules:
        for days in condition_thresholds(rule.condition):
            if days > 0 and days * DAY not in configured:
                by_threshold.setdefault(days * DAY, []).append(rule)
    leads = [Lead(before) for before in configured if before > timedelta(0)]
    leads += [Lead(before, tuple(chosen)) for before, chosen in by_threshold.items()]
    return sorted(leads, key=lambda lead: lead.before, reverse=True)


def due_lead(deadline: datetime, leads: Sequence[Lead], *, now: datetime) -> Lead | None:
    """The most urgent lead time already reached before `deadline` (None: none yet, or past).

    A past deadline gets none, so some run must fall between the shortest lead and the deadline:
    system check tokenadmin.E006 keeps the job's period shorter than that lead."""
    left = deadline - now
    if left <= timedelta(0):
        return None
    reached = [lead for lead in leads if left <= lead.before]
    return min(reached, key=lambda lead: lead.before) if reached else None


def _batches(queryset, size: int = BATCH) -> Iterator[list]:
    rows = queryset.iterator(chunk_size=size)
    while batch := list(islice(rows, size)):
        yield batch


def _already_sent(event: str, wanted: dict[int, str]) -> set[tuple[int, str]]:
    """The (connection id, dedupe key) pairs of `wanted` that a notification exists for."""
    if not wanted:
        return set()
    sent = Notification.objects.filter(
        event=event, connection_id__in=wanted, dedupe_key__in=set(wanted.values())
    ).values_list("connection_id", "dedupe_key")
    return set(sent)


def send_expiry_reminders(*, now: datetime | None = None) -> Counter[str]:
    """Dispatch every reminder due now; return counts per lead ("T-7d": 2)."""
    now = now or timezone.now()
    # Only their conditions are read here; dispatch() takes their channels and scope.
    rules = list(
        AlertRule.objects.filter(event=Event.EXPIRY_WARNING, enabled=True).only("condition")
    )
    leads = lead_times(rules)
    if not leads:
        return Counter()
    horizon = now + max(lead.before for lead in leads)
    # reauthorize_by is a rule on the model (absolute expiry, or a hard cap); the window on the
    # two columns it is made of narrows the rows, the property decides.
    in_window = Q(refresh_expires_at__gt=now, refresh_expires_at__lte=horizon) | Q(
        refresh_hard_expires_at__gt=now, refresh_hard_expires_at__lte=horizon
    )
    candidates = (
        Connection.objects.filter(in_window, status__in=Connection.LIVE_STATUSES)
        .select_related("provider")
        .prefetch_related("consumer_schedules")
        .defer(*ENCRYPTED_FIELDS)
        .order_by("pk")
    )
    sent: Counter[str] = Counter()
    for batch in _batches(candidates):
        due: dict[int, tuple[Connection, datetime, Lead]] = {}
        for connection in batch:
            deadline = connection.reauthorize_by
            lead = due_lead(deadline, leads, now=now) if deadline else None
            if lead is not None:
                due[connection.pk] = (connection, deadline, lead)
        keys = {pk: reminder_key(deadline, lead) for pk, (_, deadline, lead) in due.items()}
        done = _already_sent(Event.EXPIRY_WARNING, keys)
        for pk, (connection, deadline, lead) in due.items():
            if (pk, keys[pk]) in done:
                continue
            alert = Alert(
                event=Event.EXPIRY_WARNING,
                connection=connection,
                facts=reminder_facts(deadline, lead=lead.label, now=now),
                dedupe_key=keys[pk],
            )
            dispatch(alert, rules=list(lead.rules) if lead.rules is not None else rules)
            sent[lead.label] += 1
    return sent


def secret_rotation_key(set_at: datetime) -> str:
    return f"secret set {_iso(set_at)}"


def send_secret_rotation_notices(*, now: datetime | None = None) -> int:
    """Dispatch one `oauth.client_secret.rotation_due` per client secret older than
    TOKENADMIN_CLIENT_SECRET_MAX_AGE_DAYS (keyed on when it was set: a new secret, a new one)."""
    now = now or timezone.now()
    max_age = settings.TOKENADMIN["CLIENT_SECRET_MAX_AGE_DAYS"]
    candidates = (
        Connection.objects.filter(client_secret_set_at__lte=now - max_age * DAY)
        .exclude(status=Connection.Status.DISABLED)
        .select_related("provider")
        .defer(*ENCRYPTED_FIELDS)
        .order_by("pk")
    )
    dispatched = 0
    for batch in _batches(candidates):
        keys = {c.pk: secret_rotation_key(c.client_secret_set_at) for c in batch}
        done = _already_sent(Event.SECRET_ROTATION_DUE, keys)
        for connection in batch:
            if (connection.pk, keys[connection.pk]) in done:
                continue
            age = (now - connection.client_secret_set_at).days
            alert = Alert(
                event=Event.SECRET_ROTATION_DUE,
                connection=connection,
                facts={
                    "secret_age_days": age,
                    "reason": f"the client secret is {age} days old (rotate after {max_age})",
                },
                dedupe_key=keys[connection.pk],
            )
            dispatch(alert)
            dispatched += 1
    return dispatched
