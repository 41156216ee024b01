"""Rows that record what happened to a connection: transitions, failovers, refreshes, consent
trips and the reauthorization links that start them."""

from django.db import models
from django.utils import timezone
from django_cryptography.fields import encrypt

from connections.models.connection import Connection


class StatusChange(models.Model):
    """A transition of a connection's status. Alerts are derived from these rows."""

    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="status_changes"
    )
    from_status = models.CharField(max_length=16, choices=Connection.Status.choices)
    to_status = models.CharField(max_length=16, choices=Connection.Status.choices)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the alert worker claimed it."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["processed_at", "created_at"], name="statuschange_todo_idx")
        ]

    def __str__(self) -> str:
        return f"{self.connection}: {self.from_status} → {self.to_status}"


class RefreshAttempt(models.Model):
    """One call to a provider's token endpoint with a refresh token. Never holds token values."""

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        PERMANENT_ERROR = "permanent_error", "Permanent error"
        TRANSIENT_ERROR = "transient_error", "Transient error"

    class Trigger(models.TextChoices):
        ON_DEMAND = "on_demand", "On demand (API or CLI)"
        FORCED = "forced", "Forced"
        SWEEP = "sweep", "Background sweep"
        RENEWAL = "renewal", "Refresh-token renewal"

    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="refresh_attempts"
    )
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(default=0)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    error_code = models.CharField(max_length=64, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    rotated = models.BooleanField(
        default=False, help_text="The provider issued a new refresh token."
    )
    access_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["connection", "-started_at"], name="attempt_conn_idx")]

    def __str__(self) -> str:
        return f"{self.connection} {self.outcome} at {self.started_at:%Y-%m-%d %H:%M:%S}"


class AuthorizationRequest(models.Model):
    """One trip to a provider's consent page: the `state` (hashed) and PKCE verifier."""

    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="authorization_requests"
    )
    reauth_link = models.ForeignKey(
        "connections.ReauthLink", null=True, blank=True, on_delete=models.SET_NULL
    )
    state_hash = models.CharField(max_length=64, unique=True)
    browser_hash = models.CharField(max_length=64)
    code_verifier = encrypt(models.TextField(db_column="code_verifier_encrypted"))
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=200, blank=True)
    # A grant whose account cannot be checked against a pinned or expected one is held here
    # (encrypted token response) until a logged-in staff user confirms the account.
    held_grant = encrypt(models.TextField(blank=True, db_column="held_grant_encrypted"))
    held_account_id = models.CharField(max_length=255, blank=True)
    held_account_label = models.CharField(max_length=255, blank=True)
    processed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the alert worker claimed a refused grant's alert."
    )

    def __str__(self) -> str:
        return f"authorization of {self.connection} at {self.created_at:%Y-%m-%d %H:%M}"


class HealthCheck(models.Model):
    """One canary call made with a connection's access token."""

    class Method(models.TextChoices):
        USERINFO = "userinfo", "UserInfo endpoint"
        INTROSPECTION = "introspection", "Token introspection (RFC 7662)"
        URL = "url", "Connection's test URL"

    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="health_checks"
    )
    checked_at = models.DateTimeField(default=timezone.now)
    method = models.CharField(max_length=16, choices=Method.choices)
    ok = models.BooleanField()
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    error_code = models.CharField(max_length=64, blank=True)
    message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-checked_at"]
        indexes = [models.Index(fields=["connection", "-checked_at"], name="health_conn_idx")]

    def __str__(self) -> str:
        return (
            f"{self.connection} {'ok' if self.ok else 'failed'} at {self.checked_at:%Y-%m-%d %H:%M}"
        )


class FailoverEvent(models.Model):
    """The start (failover) or end (failback) of an incident in which a primary connection could
    not serve and its backup did. One row per transition, never one per request: the alert
    source for `oauth.failover.activated`."""

    class Kind(models.TextChoices):
        FAILOVER = "failover", "Failed over to the backup"
        FAILBACK = "failback", "Back to the primary"

    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="failover_events"
    )
    backup = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the alert worker claimed it."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["processed_at", "created_at"], name="failover_todo_idx"),
            models.Index(fields=["connection", "-created_at"], name="failover_conn_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.connection}: {self.kind} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class ReauthLink(models.Model):
    """A signed, single-use link that sends a person straight to a provider's consent page.

    Only a hash of the link's nonce is stored: a database reader cannot rebuild the URL.
    """

    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="reauth_links"
    )
    nonce_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    consumed_at = models.DateTimeField(null=True, blank=True)
    created_for = models.CharField(max_length=200, blank=True, help_text="Why it was made.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"reauthorization link for {self.connection} ({self.created_at:%Y-%m-%d})"

    def is_usable(self, *, now=None) -> bool:
        now = now or timezone.now()
        return self.consumed_at is None and self.expires_at > now
