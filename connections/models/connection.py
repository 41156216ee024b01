"""Providers, connections and the rows that record what happened to them.

Token values and the client secret live in encrypted columns (`*_encrypted` in the database);
on the model they are plain attributes that never appear in `__str__`, `repr` or the admin.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from django_cryptography.fields import encrypt

from connections.models.provider import (
    ExpirySource,
    Provider,
    RefreshExpiry,
    client_secret_error,
)
from connections.signals import announce_alert_source
from tokenadmin.hashing import sha256_hex

DEFAULT_RENEWAL_FRACTION = 0.8


class DeadlineSource(models.TextChoices):
    """Why a connection has its reauthorize-by date, or has none (the public shape says so)."""

    HARD_CAP = "hard_cap", "Hard cap that no renewal extends"
    ABSOLUTE_EXPIRY = "absolute_expiry", "Absolute refresh-token expiry"
    EXPIRY_OF_UNKNOWN_KIND = "expiry_of_unknown_kind", "Refresh-token expiry (renewal unproven)"
    RENEWED_AUTOMATICALLY = "renewed_automatically", "None: renewed automatically (sliding)"
    NEVER_EXPIRES = "never_expires", "None: the refresh token never expires"
    UNKNOWN = "unknown", "Unknown"


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

    def extend_lease(self, pk: int, *, owner: str, seconds: float) -> bool:
        """Renew a lease we still hold before more provider work; False if it was lost."""
        until = timezone.now() + timedelta(seconds=seconds)
        return self.filter(pk=pk, lease_owner=owner).update(lease_until=until) == 1

    def release_lease(self, pk: int, *, owner: str) -> None:
        self.filter(pk=pk, lease_owner=owner).update(lease_owner="", lease_until=None)

    def recompute_due_times(self) -> int:
        """Rewrite the sweeps' due times after a setting they derive from was edited (the
        threshold, a lifetime, a renewal fraction). Every edit path must call this.

        Conditional on `version`: a refresh that lands meanwhile has written newer ones.
        """
        updated = 0
        for connection in self.select_related("provider"):
            updated += Connection.objects.filter(
                pk=connection.pk, version=connection.version
            ).update(**connection.due_times())
        return updated


class Connection(models.Model):
    """One authorized grant: one OAuth client at one provider, for one provider account."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (never authorized)"
        ACTIVE = "active", "Active"
        EXPIRING = "expiring", "Expiring (reauthorize soon)"
        NEEDS_REAUTH = "needs_reauth", "Needs reauthorization"
        DEGRADED = "degraded", "Degraded (refresh failing)"
        DISABLED = "disabled", "Disabled"

    # Statuses whose tokens the engine keeps fresh.
    LIVE_STATUSES = (Status.ACTIVE, Status.EXPIRING, Status.DEGRADED)

    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="connections")
    backup = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="primaries"
    )
    # The backup serving in this connection's place during a failover incident (null when the
    # primary serves): claimed and released by conditional UPDATEs, so an incident writes one
    # FailoverEvent at its start and one at its end, whatever the number of requests.
    failed_over_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    failed_over_at = models.DateTimeField(null=True, blank=True, editable=False)
    contact_email = models.EmailField(
        blank=True,
        help_text="The person who owns the provider account; receives reauthorization emails.",
    )

    client_id = models.CharField(max_length=500)
    client_secret = encrypt(models.TextField(blank=True, db_column="client_secret_encrypted"))
    client_secret_set_at = models.DateTimeField(
        null=True, blank=True, help_text="When the client secret was last set (rotation age)."
    )
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
    # What the provider showed about its refresh tokens: a known expiry that a rotation or
    # renewal did not move is absolute; one that moved slides. Blank: nothing learned yet.
    refresh_expiry_learned = models.CharField(
        max_length=16, choices=RefreshExpiry.choices, blank=True
    )
    refresh_expiry_learned_from = models.CharField(max_length=200, blank=True)
    # A hard cap no renewal extends (e.g. x_refresh_token_hard_expires_in): always a deadline.
    refresh_hard_expires_at = models.DateTimeField(null=True, blank=True)
    authorized_at = models.DateTimeField(null=True, blank=True)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)

    account_id = models.CharField(
        max_length=255, blank=True, help_text="Pinned provider account (OIDC sub or userinfo id)."
    )
    account_label = models.CharField(max_length=255, blank=True)
    expected_account = models.CharField(
        max_length=255,
        blank=True,
        help_text="Account the first grant must belong to when none is pinned yet.",
    )

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

    renewal_fraction = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.05), MaxValueValidator(0.95)],
        help_text="Overrides the provider's renewal fraction.",
    )
    health_check_url = models.URLField(
        max_length=500,
        blank=True,
        help_text="A cheap GET that needs the access token; blank uses userinfo or introspection.",
    )
    # When the sweeps should act, kept beside the token fields they derive from (see
    # `due_times`) so that the every-minute selection is one indexed range scan.
    refresh_due_at = models.DateTimeField(null=True, blank=True, editable=False)
    renew_due_at = models.DateTimeField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        # The sweeps filter on status and range-scan a due time; status leads so the rows of
        # dead connections (whose due times lie in the past forever) are never scanned.
        indexes = [
            models.Index(fields=["status", "refresh_due_at"], name="conn_refresh_due_idx"),
            models.Index(fields=["status", "renew_due_at"], name="conn_renew_due_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    # Dashboard pages at /connections/<word>/ that a connection's page would otherwise shadow.
    RESERVED_SLUGS = frozenset({"add", "discover"})

    def clean_fields(self, exclude: Iterable[str] | None = None) -> None:
        """The fields, then the client secret against the provider's client authentication: it
        is there exactly when the provider needs one (a public client has none).

        Here, not in `clean()`, because only this method knows what is excluded (Django's
        documented way for such rules): a ModelForm without the `client_secret` field (the
        admin's, with its write-only secret input) excludes it and applies the rule itself, at
        its own input; Django could not show an error for a field the form does not have."""
        super().clean_fields(exclude=exclude)
        if "client_secret" in (exclude or ()) or self.provider_id is None:
            return
        if error := client_secret_error(
            auth_method=self.provider.token_endpoint_auth_method,
            has_secret=bool(self.client_secret),
        ):
            raise ValidationError({"client_secret": error})

    def clean(self) -> None:
        """A slug must not name a dashboard page. A backup chain must end somewhere: the token
        service follows it when a primary cannot serve, so a connection may not back itself up,
        directly or around a loop."""
        if self.slug in self.RESERVED_SLUGS:
            raise ValidationError(
                {"slug": f"{self.slug!r} names a dashboard page; choose another slug."}
            )
        if self.backup_id is None or self.pk is None:
            return  # nothing can point back at a connection that is not saved yet
        if self.backup_id == self.pk:
            raise ValidationError({"backup": "A connection cannot be its own backup."})
        chain, seen, current = [self.slug], {self.pk}, self.backup_id
        while current is not None and current not in seen:
            seen.add(current)
            row = Connection.objects.filter(pk=current).values_list("slug", "backup_id").first()
            if row is None:
                return
            chain.append(row[0])
            current = row[1]
        if current == self.pk:
            loop = " -> ".join([*chain, self.slug])
            raise ValidationError({"backup": f"Backups may not go round in a loop: {loop}."})

    # --- token predicates -----------------------------------------------------------------
    def access_token_valid_for(self, seconds: float, *, now: datetime | None = None) -> bool:
        """True when the access token exists and will not expire within `seconds`.

        Never "valid forever": a token stored without an expiry (before lifetimes were assumed)
        is taken to live `TOKENADMIN_DEFAULT_ACCESS_LIFETIME` from when it was issued.
        """
        if not self.access_token:
            return False
        expires_at = self.access_expires_at
        if expires_at is None:
            issued_at = self.last_refreshed_at or self.authorized_at
            if issued_at is None:
                return False
            expires_at = issued_at + timedelta(
                seconds=settings.TOKENADMIN["DEFAULT_ACCESS_LIFETIME"]
            )
        now = now or timezone.now()
        return expires_at - now > timedelta(seconds=seconds)

    def refresh_margin(self, min_ttl: int | None = None) -> int:
        """Seconds of validity below which the access token is refreshed.

        The connection's threshold, but at most half the token's lifetime, so a provider whose
        tokens live shorter than the threshold is not refreshed on every call; raised to the
        caller's `min_ttl` when one is asked for (capped at 90 % of the token's lifetime).
        """
        margin = self.refresh_threshold
        if self.access_expires_at and self.last_refreshed_at:
            lifetime = (self.access_expires_at - self.last_refreshed_at).total_seconds()
            margin = min(margin, max(0, int(lifetime // 2)))
            if min_ttl:
                # No refresh can give more than the provider's lifetime: asking for more would
                # call the provider on every request. A fresh token is the best there is.
                min_ttl = min(min_ttl, int(lifetime * 0.9))
        return max(margin, min_ttl or 0)

    @property
    def effective_renewal_fraction(self) -> float:
        return self.renewal_fraction or self.provider.renewal_fraction or DEFAULT_RENEWAL_FRACTION

    @property
    def is_renewable(self) -> bool:
        """Whether renewal (using the refresh token at its renewal age) is worth trying: the
        token slides, or it rotates and is not known to be absolute. Only a sliding one counts
        as renewed for the deadline (`reauthorize_by`); a rotating one of unknown kind does not.
        """
        kind = self.refresh_expiry_kind
        if kind == RefreshExpiry.ABSOLUTE or kind == RefreshExpiry.NONE:
            return False
        return kind == RefreshExpiry.SLIDING or bool(self.provider.rotates_refresh_tokens)

    def due_times(self) -> dict[str, datetime | None]:
        """`refresh_due_at` and `renew_due_at` from the token fields; saved with every token write.

        The access token is due `refresh_margin()` before it expires. A renewable refresh token is
        due once it is `effective_renewal_fraction` of its lifetime old, counted from its last use
        (`last_refreshed_at`): day 72 of a 90-day sliding window by default.
        """
        refresh_due_at = renew_due_at = None
        if self.access_expires_at and self.refresh_token:
            refresh_due_at = self.access_expires_at - timedelta(seconds=self.refresh_margin())
        anchor = self.last_refreshed_at
        cap = self.refresh_hard_expires_at
        capped = (
            cap is not None
            and self.refresh_expires_at is not None
            and (self.refresh_expires_at >= cap)
        )
        # At the hard cap no renewal can extend the token: renewing would only burn calls.
        if anchor and self.refresh_token and self.is_renewable and not capped:
            lifetime = self.effective_refresh_lifetime
            if self.refresh_expires_at and self.refresh_expiry_source in (
                ExpirySource.RESPONSE,
                ExpirySource.JWT,
                ExpirySource.INTROSPECTION,
            ):
                lifetime = self.refresh_expires_at - anchor
            if lifetime:
                renew_due_at = anchor + lifetime * self.effective_renewal_fraction
        return {"refresh_due_at": refresh_due_at, "renew_due_at": renew_due_at}

    @property
    def refresh_expiry_kind(self) -> str:
        """How the refresh token in force dies (`RefreshExpiry`): what the provider showed
        (`refresh_expiry_learned`), else the connection's override, else the provider's policy."""
        return (
            self.refresh_expiry_learned
            or self.refresh_expiry_override
            or self.provider.refresh_token_expiry
        )

    # The configured kind's old name, kept for callers that read it.
    effective_refresh_expiry = refresh_expiry_kind

    @property
    def effective_refresh_lifetime(self) -> timedelta | None:
        return self.refresh_lifetime_override or self.provider.refresh_token_lifetime

    # The columns `reauthorization_deadline` reads (for `.only()` with
    # `select_related("provider")`): a list or a scrape that defers one of them pays a query per
    # row, silently. Change them together.
    DEADLINE_FIELDS = (
        "refresh_expires_at",
        "refresh_hard_expires_at",
        "refresh_expiry_learned",
        "refresh_expiry_override",
        "provider__refresh_token_expiry",
    )

    @property
    def reauthorization_deadline(self) -> tuple[datetime | None, str]:
        """The date a person must re-consent by, and why (`DeadlineSource`).

        The earliest deadline wins: a hard cap always is one; so is the known expiry of an
        absolute token, and of one whose kind is unknown (rotation alone proves no renewal).
        Only a sliding token is renewed by use and has none unless capped; the expiry monitor
        still flags one whose renewal stopped working. None with `unknown` means nobody knows.
        """
        kind = self.refresh_expiry_kind
        candidates = []
        if self.refresh_hard_expires_at is not None:
            candidates.append((self.refresh_hard_expires_at, DeadlineSource.HARD_CAP))
        if self.refresh_expires_at is not None and kind == RefreshExpiry.ABSOLUTE:
            candidates.append((self.refresh_expires_at, DeadlineSource.ABSOLUTE_EXPIRY))
        elif self.refresh_expires_at is not None and kind == RefreshExpiry.UNKNOWN:
            candidates.append((self.refresh_expires_at, DeadlineSource.EXPIRY_OF_UNKNOWN_KIND))
        if candidates:
            return min(candidates, key=lambda candidate: candidate[0])
        if kind == RefreshExpiry.SLIDING:
            return None, DeadlineSource.RENEWED_AUTOMATICALLY
        if kind == RefreshExpiry.NONE:
            return None, DeadlineSource.NEVER_EXPIRES
        return None, DeadlineSource.UNKNOWN

    @property
    def reauthorize_by(self) -> datetime | None:
        return self.reauthorization_deadline[0]

    @property
    def reauthorize_by_source(self) -> str:
        return self.reauthorization_deadline[1]

    def fingerprint(self, field: str) -> str:
        """A short, non-reversible tag for a secret, so admins can tell tokens apart."""
        value = getattr(self, field)
        if not value:
            return ""
        return sha256_hex(value)[:8]

    # --- single-row state changes ---------------------------------------------------------
    def change_status(
        self, to_status: str, *, reason: str, expected: Iterable[str] | None = None
    ) -> bool:
        """Move to `to_status` and record the transition; a no-op if already there.

        `expected` names the statuses the caller decided from: if another process moved the
        connection meanwhile (say an admin disabled it during a refresh), nothing changes.
        """
        with transaction.atomic():
            current = (
                Connection.objects.select_for_update()
                .filter(pk=self.pk)
                .values_list("status", flat=True)
                .first()
            )
            if (
                current is None
                or current == to_status
                or (expected is not None and current not in expected)
            ):
                self.status = current or self.status
                return False
            now = timezone.now()
            Connection.objects.filter(pk=self.pk).update(
                status=to_status, status_reason=reason[:500], status_changed_at=now
            )
            change = self.status_changes.create(
                from_status=current, to_status=to_status, reason=reason[:500]
            )
            announce_alert_source(kind="status_change", pk=change.pk)
        self.status, self.status_reason, self.status_changed_at = to_status, reason[:500], now
        return True
