"""Admin for providers and connections.

Token values and the client secret never reach a page: they are not form fields, and the
read-only summaries show only presence, expiry and a short fingerprint. Adding, editing,
disabling and enabling go through `connections.services`, like every other front door.
"""

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.contrib import admin, messages
from django.db import models
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from connections import actions, services
from connections.admin_inlines import (
    ConsumerScheduleInline,
    HealthCheckInline,
    RefreshAttemptInline,
    StatusChangeInline,
)
from connections.forms import ConnectionAdminForm
from connections.links import build_reauth_link
from connections.models import Connection, ConsumerSchedule, Provider
from connections.models.connection import DeadlineSource


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
            "Token requests",
            {
                "description": "Sent on the code exchange and every refresh, where the "
                "provider's documentation asks for them (presets set them).",
                "fields": (
                    "token_request_params",
                    "token_request_headers",
                    "token_request_encoding",
                ),
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
        if change:
            changes = {name: form.cleaned_data[name] for name in form.changed_data}
            services.provider_update(provider=obj, changes=changes)
        else:
            fields = {name: form.cleaned_data[name] for name in form.fields}
            _adopt(obj, services.provider_create(fields=fields))

    @admin.display(description="Token endpoint", ordering="token_url")
    def token_endpoint_host(self, obj: Provider) -> str:
        return urlsplit(obj.token_url).netloc


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
        "client_secret_set_at",
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
            {
                "fields": (
                    "client_id",
                    "new_client_secret",
                    "client_secret_summary",
                    "client_secret_set_at",
                    "scopes",
                )
            },
        ),
        ("Provider account", {"fields": ("contact_email", "expected_account")}),
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
        # The form ran the model's validation, the services' own, so a refusal was shown there.
        if change:
            saved = services.connection_update(
                connection=obj, changes=form.changes(), client_secret=form.typed_secret()
            )
        else:
            saved = services.connection_create(**form.creation_arguments())
            _adopt(obj, saved.connection)
        for note in saved.notes:
            self.message_user(request, note, messages.INFO)

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
    def reauthorize_by(self, obj: Connection) -> str:
        """The date and why, or why there is none: "renewed automatically" is never "unknown"."""
        deadline, source = obj.reauthorization_deadline
        label = DeadlineSource(source).label
        if deadline is None:
            return label
        return f"{_when(deadline)} ({label[0].lower()}{label[1:]})"

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
        # Queued: one click over many rows must not hold the request for each provider call.
        queued = actions.queue_refresh(connection_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"Queued a refresh of {queued} connection(s).", messages.SUCCESS)

    @admin.action(description="Health check now (queued for the workers)")
    def check_now(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        queued = actions.queue_health_check(connection_ids=queryset.values_list("pk", flat=True))
        self.message_user(
            request, f"Queued a health check of {queued} connection(s).", messages.SUCCESS
        )

    @admin.action(description="Disable")
    def disable(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        actor = f"{request.user} in the admin"
        changed = [
            connection
            for connection in queryset
            if services.connection_disable(connection=connection, reason="", actor=actor)
        ]
        self.message_user(request, f"Disabled {len(changed)} connection(s).", messages.SUCCESS)

    @admin.action(description="Enable")
    def enable(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        actor = f"{request.user} in the admin"
        changed = [
            connection
            for connection in queryset.filter(status=Connection.Status.DISABLED)
            if services.connection_enable(connection=connection, actor=actor)
        ]
        self.message_user(request, f"Enabled {len(changed)} connection(s).", messages.SUCCESS)


def _adopt(obj: Model, saved: Model) -> None:
    """Turn the admin's unsaved `obj` into the row a service created: the inlines, the history
    entry and the redirect that follow all hang on that object."""
    obj.pk = saved.pk
    obj.refresh_from_db()
    obj._state.adding = False


# Registers the read-only history and API-key admins.
from connections import admin_records  # noqa: E402, F401
