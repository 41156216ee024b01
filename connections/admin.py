"""Admin for providers and connections.

Token values and the client secret never reach a page: they are not form fields, and the
read-only summaries show only presence, expiry and a short fingerprint. Status changes go
through `Connection.change_status` (actions), so each one is recorded as a StatusChange row.
"""

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django_q.tasks import async_task

from connections.forms import ConnectionAdminForm
from connections.lifecycle import settle_status
from connections.links import build_reauth_link
from connections.models import (
    Connection,
    ConsumerSchedule,
    HealthCheck,
    Provider,
    RefreshAttempt,
    StatusChange,
)

INLINE_ROWS = 20


def _when(value: datetime | None) -> str:
    if value is None:
        return "unknown"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M %Z")


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "slug",
        "preset",
        "token_endpoint_host",
        "refresh_token_expiry",
        "refresh_token_lifetime",
    )
    list_filter = ("refresh_token_expiry", "preset")
    search_fields = ("name", "slug", "issuer", "token_url")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_at", "updated_at")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fieldsets = (
        (None, {"fields": ("name", "slug", "preset")}),
        (
            "Endpoints",
            {
                "fields": (
                    "issuer",
                    "authorize_url",
                    "token_url",
                    "revoke_url",
                    "introspect_url",
                    "userinfo_url",
                )
            },
        ),
        (
            "Scopes and parameters",
            {
                "fields": (
                    "default_scopes",
                    "extra_authorize_params",
                    "token_endpoint_auth_method",
                    "use_pkce",
                )
            },
        ),
        (
            "Token behaviour",
            {
                "fields": (
                    "access_token_lifetime",
                    "refresh_token_lifetime",
                    "refresh_token_expiry",
                    "renewal_fraction",
                    "rotates_refresh_tokens",
                )
            },
        ),
        ("History", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    def save_model(self, request: HttpRequest, obj: Provider, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change:
            obj.connections.all().recompute_due_times()

    @admin.display(description="Token endpoint", ordering="token_url")
    def token_endpoint_host(self, obj: Provider) -> str:
        return urlsplit(obj.token_url).netloc


class RecentRowsFormSet(BaseInlineFormSet):
    """Only the newest rows: a connection refreshed every hour has thousands of attempts."""

    def get_queryset(self) -> QuerySet:
        if not hasattr(self, "_recent"):
            self._recent = super().get_queryset()[:INLINE_ROWS]
        return self._recent


class ReadOnlyInline(admin.TabularInline):
    formset = RecentRowsFormSet
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StatusChangeInline(ReadOnlyInline):
    model = StatusChange
    fields = ("created_at", "from_status", "to_status", "reason", "processed_at")
    readonly_fields = fields
    verbose_name_plural = f"Status changes (newest {INLINE_ROWS})"


class RefreshAttemptInline(ReadOnlyInline):
    model = RefreshAttempt
    fields = (
        "started_at",
        "trigger",
        "outcome",
        "error_code",
        "http_status",
        "rotated",
        "duration_ms",
        "message",
    )
    readonly_fields = fields
    verbose_name_plural = f"Refresh attempts (newest {INLINE_ROWS})"


class HealthCheckInline(ReadOnlyInline):
    model = HealthCheck
    fields = ("checked_at", "method", "ok", "http_status", "latency_ms", "error_code", "message")
    readonly_fields = fields
    verbose_name_plural = f"Health checks (newest {INLINE_ROWS})"


class ConsumerScheduleInline(admin.TabularInline):
    """The pipelines using this connection; the sweep has a token ready before each run."""

    model = ConsumerSchedule
    extra = 0
    fields = ("label", "cron", "timezone", "lead_minutes", "run_minutes", "next_run_at")
    readonly_fields = ("next_run_at",)


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    form = ConnectionAdminForm
    list_display = (
        "name",
        "slug",
        "provider",
        "status",
        "access_expires_at",
        "reauthorize_by",
        "last_refreshed_at",
    )
    list_filter = ("status", "provider")
    list_select_related = ("provider",)
    search_fields = ("name", "slug", "account_label")
    prepopulated_fields = {"slug": ("name",)}
    autocomplete_fields = ("backup",)
    inlines = (ConsumerScheduleInline, StatusChangeInline, RefreshAttemptInline, HealthCheckInline)
    actions = ("create_reauth_links", "refresh_now", "check_now", "disable", "enable")
    readonly_fields = (
        "status",
        "status_reason",
        "status_changed_at",
        "client_secret_summary",
        "access_token_summary",
        "refresh_token_summary",
        "token_type",
        "granted_scopes",
        "access_expiry_source",
        "refresh_issued_at",
        "refresh_expiry_source",
        "reauthorize_by",
        "authorized_at",
        "last_refreshed_at",
        "account_id",
        "account_label",
        "failure_count",
        "next_attempt_at",
        "last_error_code",
        "lease_owner",
        "lease_until",
        "version",
        "refresh_due_at",
        "renew_due_at",
        "history_links",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("name", "slug", "provider", "backup", "status", "status_reason")}),
        (
            "OAuth client",
            {"fields": ("client_id", "new_client_secret", "client_secret_summary", "scopes")},
        ),
        (
            "Tokens",
            {
                "fields": (
                    "access_token_summary",
                    "token_type",
                    "refresh_token_summary",
                    "reauthorize_by",
                    "granted_scopes",
                    "authorized_at",
                    "last_refreshed_at",
                    "account_id",
                    "account_label",
                )
            },
        ),
        (
            "Refresh behaviour",
            {
                "fields": (
                    "refresh_threshold",
                    "renewal_fraction",
                    "refresh_lifetime_override",
                    "refresh_expiry_override",
                    "health_check_url",
                )
            },
        ),
        (
            "Engine state",
            {
                "classes": ("collapse",),
                "fields": (
                    "status_changed_at",
                    "failure_count",
                    "next_attempt_at",
                    "refresh_due_at",
                    "renew_due_at",
                    "last_error_code",
                    "lease_owner",
                    "lease_until",
                    "version",
                    "access_expiry_source",
                    "refresh_issued_at",
                    "refresh_expiry_source",
                    "created_at",
                    "updated_at",
                ),
            },
        ),
        ("History", {"fields": ("history_links",)}),
    )

    def save_model(self, request: HttpRequest, obj: Connection, form: Any, change: bool) -> None:
        if change:
            # Never a full save: the tokens loaded for this form may have been rotated since.
            obj.save(update_fields=form.changed_model_fields())
            # The threshold, renewal fraction and overrides move the sweeps' due times.
            Connection.objects.filter(pk=obj.pk).recompute_due_times()
        else:
            obj.save()

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is ConsumerSchedule:
            for schedule in formset.save(commit=False):
                # Cleared, the sweep computes the next run from the new cron within a minute.
                schedule.next_run_at = schedule.prepare_at = None
                schedule.save()
            for schedule in formset.deleted_objects:
                schedule.delete()
            return
        super().save_formset(request, form, formset, change)

    # --- read-only summaries (never a token value) ----------------------------------------
    @admin.display(description="Client secret")
    def client_secret_summary(self, obj: Connection) -> str:
        if not obj.pk or not obj.client_secret:
            return "not set"
        return f"set, fingerprint {obj.fingerprint('client_secret')}"

    @admin.display(description="Access token")
    def access_token_summary(self, obj: Connection) -> str:
        if not obj.pk or not obj.access_token:
            return "none"
        return (
            f"present, expires {_when(obj.access_expires_at)}, "
            f"fingerprint {obj.fingerprint('access_token')}"
        )

    @admin.display(description="Refresh token")
    def refresh_token_summary(self, obj: Connection) -> str:
        if not obj.pk or not obj.refresh_token:
            return "none"
        return (
            f"present, expires {_when(obj.refresh_expires_at)} "
            f"({obj.get_refresh_expiry_source_display().lower()}), "
            f"fingerprint {obj.fingerprint('refresh_token')}"
        )

    @admin.display(description="Reauthorize by")
    def reauthorize_by(self, obj: Connection) -> datetime | None:
        return obj.reauthorize_by

    @admin.display(description="Full history")
    def history_links(self, obj: Connection) -> str:
        if not obj.pk:
            return "-"
        links = (
            ("admin:connections_statuschange_changelist", "all status changes"),
            ("admin:connections_refreshattempt_changelist", "all refresh attempts"),
            ("admin:connections_healthcheck_changelist", "all health checks"),
        )
        return format_html_join(
            " · ",
            '<a href="{}?connection__id__exact={}">{}</a>',
            ((reverse(name), obj.pk, label) for name, label in links),
        )

    # --- actions ----------------------------------------------------------------------------
    @admin.action(description="Create reauthorization link")
    def create_reauth_links(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        for connection in queryset.select_related("provider"):
            url = build_reauth_link(connection, created_for=f"admin: {request.user}")
            self.message_user(
                request,
                format_html(
                    'Reauthorization link for {}: <a href="{}">{}</a>', connection, url, url
                ),
                messages.SUCCESS,
            )

    @admin.action(description="Refresh now (queued for the workers)")
    def refresh_now(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        self._queue(request, queryset, "connections.tasks.refresh", "refresh")

    @admin.action(description="Health check now (queued for the workers)")
    def check_now(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        self._queue(request, queryset, "connections.tasks.check_health", "health check")

    def _queue(
        self, request: HttpRequest, queryset: QuerySet[Connection], task: str, what: str
    ) -> None:
        # Provider calls happen in the cluster, not in the admin's request; results land in the
        # refresh-attempt and health-check history below.
        ids = list(queryset.values_list("pk", flat=True))
        for pk in ids:
            async_task(task, pk, task_name=f"{what} of connection {pk}")
        self.message_user(
            request, f"Queued a {what} of {len(ids)} connection(s).", messages.SUCCESS
        )

    @admin.action(description="Disable")
    def disable(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        changed = [
            connection
            for connection in queryset
            if connection.change_status(
                Connection.Status.DISABLED, reason=f"disabled in the admin by {request.user}"
            )
        ]
        self.message_user(request, f"Disabled {len(changed)} connection(s).", messages.SUCCESS)

    @admin.action(description="Enable")
    def enable(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        changed = [
            connection
            for connection in queryset.filter(status=Connection.Status.DISABLED)
            if connection.change_status(
                _status_before_disabling(connection),
                reason=f"enabled in the admin by {request.user}",
            )
        ]
        self.message_user(request, f"Enabled {len(changed)} connection(s).", messages.SUCCESS)


def _status_before_disabling(connection: Connection) -> str:
    """Back to where the connection was: a disabled `needs_reauth` grant is still dead."""
    change = connection.status_changes.filter(to_status=Connection.Status.DISABLED).first()
    if change is not None and change.from_status != Connection.Status.DISABLED:
        return change.from_status
    if not connection.refresh_token:
        return Connection.Status.PENDING
    return settle_status(connection)


# Registers the read-only history and API-key admins.
from connections import admin_records  # noqa: E402, F401
