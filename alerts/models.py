"""Who is told what, through which channel, and every attempt to tell them.

`alerts` depends on `connections`, never the reverse: events are derived from the rows the engine
writes (StatusChange, FailoverEvent, refused authorizations) and from the reauthorize-by dates,
never from polling a status, so one incident gives one alert and one recovered notice.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_cryptography.fields import encrypt

from connections.models import Connection, FailoverEvent, StatusChange


class Event(models.TextChoices):
    EXPIRY_WARNING = "oauth.token.expiry.warning", "Reauthorize-by date approaching"
    REFRESH_FAILED = "oauth.token.refresh.failed", "Refresh failing (degraded)"
    NEEDS_REAUTH = "oauth.connection.needs_reauth", "Needs reauthorization"
    RECOVERED = "oauth.connection.recovered", "Recovered"
    HEALTH_FAILED = "oauth.health.failed", "Health check failed"
    FAILOVER = "oauth.failover.activated", "Failed over to the backup"
    ACCOUNT_MISMATCH = "oauth.account.mismatch", "Grant from the wrong account refused"
    SECRET_ROTATION_DUE = "oauth.client_secret.rotation_due", "Client secret due for rotation"


class Channel(models.Model):
    """Where alerts go: email addresses, a signed webhook, or a Slack incoming webhook."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Signed webhook"
        SLACK = "slack", "Slack incoming webhook"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    email_addresses = models.TextField(
        blank=True, help_text="Email: addresses, one per line or comma-separated."
    )
    to_connection_contact = models.BooleanField(
        default=False, help_text="Email: also send to the connection's owner contact."
    )
    # A Slack incoming-webhook URL is itself a credential: stored encrypted, like the secret.
    url = encrypt(models.TextField(blank=True, db_column="url_encrypted"))
    secret = encrypt(models.TextField(blank=True, db_column="secret_encrypted"))
    enabled = models.BooleanField(default=True)
    broken_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when the channel failed permanently (e.g. HTTP 410)."
    )
    broken_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class AlertRule(models.Model):
    """An event, an optional condition, which connections, and the channels to tell."""

    name = models.CharField(max_length=200)
    event = models.CharField(max_length=64, choices=Event.choices)
    condition = models.CharField(
        max_length=200,
        blank=True,
        help_text="Optional, e.g. 'days_until_expiry <= 10'. Blank: every such event.",
    )
    all_connections = models.BooleanField(default=True)
    connections = models.ManyToManyField(Connection, blank=True, related_name="alert_rules")
    channels = models.ManyToManyField(Channel, related_name="rules")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["event", "name"]

    def __str__(self) -> str:
        return self.name


class Notification(models.Model):
    """One attempt to deliver one alert through one channel. Never holds a token or a link."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        RETRYING = "retrying", "Failed, will retry"
        FAILED = "failed", "Failed"

    event = models.CharField(max_length=64, choices=Event.choices)
    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.SET_NULL)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="notifications")
    connection = models.ForeignKey(
        Connection,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
    )
    status_change = models.ForeignKey(
        StatusChange, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    failover_event = models.ForeignKey(
        FailoverEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Reminders are keyed by deadline and lead time ("2027-03-01T00:00Z/T-7d"), so the same lead
    # time is never sent twice for one reauthorize-by date.
    dedupe_key = models.CharField(max_length=200, blank=True)
    recipient = models.CharField(max_length=500, blank=True)
    is_test = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="notification_due_idx"),
            models.Index(fields=["connection", "-created_at"], name="notification_conn_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "connection", "event", "dedupe_key"],
                condition=~models.Q(dedupe_key=""),
                name="notification_once_per_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} via {self.channel} ({self.status})"


class CalendarKey(models.Model):
    """A user's secret key for the calendar feed (`/calendar.ics?key=…`), shown to its user in the
    dashboard; looked up by hash, stored encrypted."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_key"
    )
    key = encrypt(models.TextField(db_column="key_encrypted"))
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"calendar key of {self.user}"
