"""The connection page's inlines: its consumers (editable) and the newest rows of its history
(read-only; the full history is one link away)."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from connections.models import ConsumerSchedule, HealthCheck, RefreshAttempt, StatusChange

INLINE_ROWS = 20


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
