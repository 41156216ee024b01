"""Admin pages for the rows that record history, and for API keys (issued by the CLI)."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from connections.models import (
    ApiKey,
    FailoverEvent,
    HealthCheck,
    ReauthLink,
    RefreshAttempt,
    StatusChange,
)


class ReadOnlyHistoryAdmin(admin.ModelAdmin):
    """Rows that record what happened: browsable, never edited by hand."""

    list_select_related = ("connection",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(StatusChange)
class StatusChangeAdmin(ReadOnlyHistoryAdmin):
    list_display = (
        "connection",
        "from_status",
        "to_status",
        "reason",
        "created_at",
        "processed_at",
    )
    list_filter = ("to_status", "connection")
    date_hierarchy = "created_at"


@admin.register(RefreshAttempt)
class RefreshAttemptAdmin(ReadOnlyHistoryAdmin):
    list_display = (
        "connection",
        "started_at",
        "trigger",
        "outcome",
        "error_code",
        "http_status",
        "rotated",
        "duration_ms",
    )
    list_filter = ("outcome", "trigger", "connection")
    date_hierarchy = "started_at"


@admin.register(HealthCheck)
class HealthCheckAdmin(ReadOnlyHistoryAdmin):
    list_display = ("connection", "checked_at", "method", "ok", "http_status", "latency_ms")
    list_filter = ("ok", "method", "connection")
    date_hierarchy = "checked_at"


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are issued by `manage.py apikey create` (the raw key is shown once there); here they
    are listed, re-scoped and revoked. Only the hash is stored, so no page can show a key."""

    list_display = ("name", "prefix", "all_connections", "created_at", "last_used_at", "revoked_at")
    list_filter = ("all_connections",)
    search_fields = ("name", "prefix")
    fields = (
        "name",
        "prefix",
        "connections",
        "all_connections",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    filter_horizontal = ("connections",)
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


@admin.register(FailoverEvent)
class FailoverEventAdmin(ReadOnlyHistoryAdmin):
    list_display = ("connection", "kind", "backup", "reason", "created_at", "processed_at")
    list_filter = ("kind", "connection")
    date_hierarchy = "created_at"


@admin.register(ReauthLink)
class ReauthLinkAdmin(ReadOnlyHistoryAdmin):
    """Only a hash of each link's nonce is stored, so the admin cannot show a link's URL; new
    links are made with the "Create reauthorization link" action on connections."""

    list_display = ("connection", "created_at", "expires_at", "consumed_at", "created_for")
    list_filter = ("connection",)
    search_fields = ("connection__name", "connection__slug", "created_for")
    date_hierarchy = "created_at"
    fields = ("connection", "created_for", "created_at", "expires_at", "consumed_at")
    readonly_fields = fields
