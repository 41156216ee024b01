"""Providers, connections and the rows that record what happened to them.

Token values and the client secret live in encrypted columns (`*_encrypted` in the database);
on the model they are plain attributes that never appear in `__str__`, `repr` or the admin.
"""

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from django_cryptography.fields import encrypt


class AuthMethod(models.TextChoices):
    CLIENT_SECRET_BASIC = "client_secret_basic", "HTTP Basic (client_secret_basic)"
    CLIENT_SECRET_POST = "client_secret_post", "Form body (client_secret_post)"


class RefreshExpiry(models.TextChoices):
    """How a provider's refresh tokens die."""

    UNKNOWN = "unknown", "Unknown"
    SLIDING = "sliding", "Sliding (renewed by use)"
    ABSOLUTE = "absolute", "Absolute (fixed deadline from consent)"
    NONE = "none", "Never expires"


class ExpirySource(models.TextChoices):
    """Where an expiry time came from, in the order they are trusted."""

    RESPONSE = "response", "Token response"
    JWT = "jwt", "JWT exp claim"
    INTROSPECTION = "introspection", "Token introspection"
    OVERRIDE = "override", "Connection override"
    POLICY = "policy", "Provider policy"
    UNKNOWN = "unknown", "Unknown"


class Provider(models.Model):
    """An authorization server: its endpoints and how its tokens behave."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    preset = models.CharField(max_length=64, blank=True, help_text="Preset this was made from.")
    issuer = models.URLField(blank=True, help_text="OpenID Connect / RFC 8414 issuer, if any.")
    authorize_url = models.URLField(max_length=500)
    token_url = models.URLField(max_length=500)
    revoke_url = models.URLField(max_length=500, blank=True)
    introspect_url = models.URLField(max_length=500, blank=True)
    userinfo_url = models.URLField(max_length=500, blank=True)
    default_scopes = models.CharField(max_length=1000, blank=True)
    extra_authorize_params = models.JSONField(
        default=dict,
        blank=True,
        help_text='Sent on every authorization request, e.g. {"prompt": "consent"}.',
    )
    token_endpoint_auth_method = models.CharField(
        max_length=32, choices=AuthMethod.choices, default=AuthMethod.CLIENT_SECRET_BASIC
    )
    use_pkce = models.BooleanField(default=True)
    access_token_lifetime = models.DurationField(
        null=True, blank=True, help_text="Used only when a token response has no expires_in."
    )
    refresh_token_lifetime = models.DurationField(null=True, blank=True)
    refresh_token_expiry = models.CharField(
        max_length=16, choices=RefreshExpiry.choices, default=RefreshExpiry.UNKNOWN
    )
    rotates_refresh_tokens = models.BooleanField(
        null=True, blank=True, help_text="Yes, no, or unknown."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ConnectionQuerySet(models.QuerySet):
    def claim_lease(self, pk: int, *, owner: str, seconds: float) -> bool:
        """Take the refresh lease if nobody holds a live one (one conditional UPDATE)."""
        now = timezone.now()
        claimed = (
            self.filter(pk=pk)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .update(lease_owner=owner, lease_until=now + timedelta(seconds=seconds))
        )
        return claimed == 1

    def release_lease(self, pk: int, *, owner: str) -> None:
        self.filter(pk=pk, lease_owner=owner).update(lease_owner="", lease_until=None)


class Connection(models.Model):
    """One authorized grant: one OAuth client at one provider, for one provider account."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (never authorized)"
        ACTIVE = "active", "Active"
        EXPIRING = "expiring", "Expiring (reauthorize soon)"
        NEEDS_REAUTH = "needs_reauth", "Needs reauthorization"
        DEGRADED = "degraded", "Degraded (refresh failing)"
        DISABLED = "disabled", "Disabled"

    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="connections")
    backup = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="primaries"
    )

    client_id = models.CharField(max_length=500)
    client_secret = encrypt(models.TextField(blank=True, db_column="client_secret_encrypted"))
    scopes = models.CharField(
        max_length=1000, blank=True, help_text="Space-separated; blank uses the provider's."
    )
    granted_scopes = models.CharField(max_length=1000, blank=True)

    access_token = encrypt(models.TextField(blank=True, db_column="access_token_encrypted"))
    token_type = models.CharField(max_length=40, blank=True)
    access_expires_at = models.DateTimeField(null=True, blank=True)
    access_expiry_source = models.CharField(
        max_length=16, choices=ExpirySource.choices, default=ExpirySource.UNKNOWN
    )
    refresh_token = encrypt(models.TextField(blank=True, db_column="refresh_token_encrypted"))
    refresh_issued_at = models.DateTimeField(
        null=True, blank=True, help_text="When the current refresh token was issued or renewed."
    )
    refresh_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_expiry_source = models.CharField(
        max_length=16, choices=ExpirySource.choices, default=ExpirySource.UNKNOWN
    )
    refresh_lifetime_override = models.DurationField(null=True, blank=True)
    refresh_expiry_override = models.CharField(
        max_length=16, choices=RefreshExpiry.choices, blank=True
    )
    authorized_at = models.DateTimeField(null=True, blank=True)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)

    account_id = models.CharField(
        max_length=255, blank=True, help_text="Pinned provider account (OIDC sub or userinfo id)."
    )
    account_label = models.CharField(max_length=255, blank=True)

    refresh_threshold = models.PositiveIntegerField(
        default=300, help_text="Refresh when the access token expires within this many seconds."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    status_reason = models.CharField(max_length=500, blank=True)
    status_changed_at = models.DateTimeField(default=timezone.now)

    failure_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error_code = models.CharField(max_length=64, blank=True)

    lease_owner = models.CharField(max_length=128, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    version = models.PositiveBigIntegerField(default=0, help_text="Bumped on every token write.")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["status", "access_expires_at"], name="conn_status_access_idx"),
            models.Index(fields=["refresh_expires_at"], name="conn_refresh_expires_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    # --- token predicates -----------------------------------------------------------------
    @property
    def is_authorized(self) -> bool:
        return bool(self.access_token)

    def access_token_valid_for(self, seconds: float, *, now: datetime | None = None) -> bool:
        """True when the access token exists and will not expire within `seconds`.

        An access token of unknown expiry counts as valid: there is nothing to go by.
        """
        if not self.access_token:
            return False
        if self.access_expires_at is None:
            return True
        now = now or timezone.now()
        return self.access_expires_at - now > timedelta(seconds=seconds)

    def refresh_margin(self, min_ttl: int | None = None) -> int:
        """Seconds of validity below which the access token is refreshed.

        The connection's threshold, but at most half the token's lifetime, so a provider whose
        tokens live shorter than the threshold is not refreshed on every call; raised to the
        caller's `min_ttl` when one is asked for.
        """
        margin = self.refresh_threshold
        if self.access_expires_at and self.last_refreshed_at:
            lifetime = (self.access_expires_at - self.last_refreshed_at).total_seconds()
            margin = min(margin, max(0, int(lifetime // 2)))
        return max(margin, min_ttl or 0)

    @property
    def effective_refresh_expiry(self) -> str:
        return self.refresh_expiry_override or self.provider.refresh_token_expiry

    @property
    def effective_refresh_lifetime(self) -> timedelta | None:
        return self.refresh_lifetime_override or self.provider.refresh_token_lifetime

    @property
    def reauthorize_by(self) -> datetime | None:
        """The date a person must re-consent by, when no renewal can push it back.

        Sliding refresh tokens are renewed by use, so they have none; absolute ones (and ones
        whose kind is unknown but whose expiry is known) must be reauthorized before they die.
        """
        if self.refresh_expires_at is None:
            return None
        if self.effective_refresh_expiry == RefreshExpiry.SLIDING:
            return None
        return self.refresh_expires_at

    def fingerprint(self, field: str) -> str:
        """A short, non-reversible tag for a secret, so admins can tell tokens apart."""
        value = getattr(self, field)
        if not value:
            return ""
        return hashlib.sha256(value.encode()).hexdigest()[:8]

    # --- single-row state changes ---------------------------------------------------------
    def change_status(self, to_status: str, *, reason: str) -> bool:
        """Move to `to_status` and record the transition; a no-op if already there."""
        with transaction.atomic():
            current = (
                Connection.objects.select_for_update()
                .filter(pk=self.pk)
                .values_list("status", flat=True)
                .first()
            )
            if current is None or current == to_status:
                self.status = current or self.status
                return False
            now = timezone.now()
            Connection.objects.filter(pk=self.pk).update(
                status=to_status, status_reason=reason[:500], status_changed_at=now
            )
            StatusChange.objects.create(
                connection=self, from_status=current, to_status=to_status, reason=reason[:500]
            )
        self.status, self.status_reason, self.status_changed_at = to_status, reason[:500], now
        return True


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
        "alerts.ReauthLink", null=True, blank=True, on_delete=models.SET_NULL
    )
    state_hash = models.CharField(max_length=64, unique=True)
    browser_hash = models.CharField(max_length=64)
    code_verifier = encrypt(models.TextField(db_column="code_verifier_encrypted"))
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"authorization of {self.connection} at {self.created_at:%Y-%m-%d %H:%M}"


class ApiKeyQuerySet(models.QuerySet):
    def active(self) -> "ApiKeyQuerySet":
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A pipeline's credential for the token API.

    Keys are 32 random bytes, so a single SHA-256 is enough to store them safely; a slow password
    hash would only slow the hot path. The first characters (`prefix`) identify a key in lists.
    """

    PREFIX = "tka_"

    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, help_text="The key's first characters, for humans.")
    key_hash = models.CharField(max_length=64, unique=True)
    connections = models.ManyToManyField(Connection, blank=True, related_name="api_keys")
    all_connections = models.BooleanField(
        default=False, help_text="Grants every connection, including future ones."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(raw_key: str) -> str:
        return hashlib.sha256(raw_key.encode()).hexdigest()

    @classmethod
    def issue(
        cls, *, name: str, connections: Iterable[Connection] = (), all_connections: bool = False
    ) -> tuple["ApiKey", str]:
        """Create a key; return (ApiKey, raw key). The raw key is shown once and never stored."""
        raw_key = cls.PREFIX + secrets.token_urlsafe(32)
        key = cls.objects.create(
            name=name,
            prefix=raw_key[: len(cls.PREFIX) + 6],
            key_hash=cls.hash_key(raw_key),
            all_connections=all_connections,
        )
        key.connections.set(connections)
        return key, raw_key

    def allows(self, connection: Connection) -> bool:
        return self.all_connections or self.connections.filter(pk=connection.pk).exists()
