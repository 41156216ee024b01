"""Admin for alert channels, rules and the notification history.

A channel's URL and secret are write-only (forms.py) and its list shows a webhook's host at most.
A broken channel says so, with the reason, in the list; "Mark repaired" (or a new URL) clears it.
"Send test alert" on rules and on channels is the fire drill: it sends now and records the
attempt as a notification with `is_test`.
"""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from alerts import dispatch
from alerts.drills import send_test_alert
from alerts.forms import AlertRuleAdminForm, ChannelAdminForm
from alerts.models import AlertRule, Channel, Notification
from alerts.transports import host_of


def _report_drill(
    admin_site: admin.ModelAdmin, request: HttpRequest, what: str, notes: list[Notification]
) -> None:
    if not notes:
        admin_site.message_user(request, f"{what}: no channel to test.", messages.WARNING)
        return
    failed = [n for n in notes if n.status != Notification.Status.SENT]
    details = "; ".join(
        f"{n.channel.name}: {n.status}" + (f" ({n.error})" if n.error else "") for n in notes
    )
    level = messages.ERROR if failed else messages.SUCCESS
    admin_site.message_user(request, f"Test alert for {what}: {details}", level)


class BrokenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "broken"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Broken"), ("no", "Working")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(broken_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(broken_at__isnull=True)
        return queryset


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelAdminForm
    list_display = ("name", "kind", "target", "enabled", "state")
    list_filter = ("kind", "enabled", BrokenFilter)
    search_fields = ("name", "email_addresses")
    readonly_fields = ("broken_at", "broken_reason", "created_at")
    actions = ("send_test_alert", "mark_repaired")
    fieldsets = (
        (None, {"fields": ("name", "kind", "enabled")}),
        ("Email", {"fields": ("email_addresses", "to_connection_contact")}),
        ("Webhook / Slack", {"fields": ("new_url", "new_secret")}),
        ("State", {"fields": ("broken_at", "broken_reason", "repaired", "created_at")}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Channel | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and obj.broken_at:
            return fieldsets
        # "repaired" exists on the form only while the channel is broken.
        return [
            (name, {**opts, "fields": tuple(f for f in opts["fields"] if f != "repaired")})
            for name, opts in fieldsets
        ]

    @admin.display(description="sends to")
    def target(self, channel: Channel) -> str:
        if channel.kind == Channel.Kind.EMAIL:
            addresses = dispatch.split_addresses(channel.email_addresses)
            if channel.to_connection_contact:
                addresses.append("the connection's contact")
            return ", ".join(addresses) or "-"
        # Never the URL: a Slack URL's path is its credential.
        return host_of(channel.url) if channel.url else "(no URL)"

    @admin.display(description="state", ordering="broken_at")
    def state(self, channel: Channel) -> str:
        if channel.broken_at:
            since = timezone.localtime(channel.broken_at).strftime("%Y-%m-%d %H:%M %Z")
            return format_html(
                '<strong style="color:#ba2121">broken since {}</strong>: {}',
                since,
                channel.broken_reason,
            )
        return "working" if channel.enabled else "disabled"

    @admin.action(description="Send test alert")
    def send_test_alert(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        for channel in queryset:
            notes = send_test_alert(channel=channel, requested_by=str(request.user))
            _report_drill(self, request, f"channel {channel.name}", notes)

    @admin.action(description="Mark repaired (clear the broken state)")
    def mark_repaired(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        count = dispatch.clear_broken(queryset)
        self.message_user(request, f"{count} channel(s) will be used again.", messages.SUCCESS)


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleAdminForm
    list_display = ("name", "event", "condition", "all_connections", "channel_names", "enabled")
    list_filter = ("event", "enabled")
    search_fields = ("name", "condition")
    filter_horizontal = ("connections", "channels")
    actions = ("send_test_alert",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertRule]:
        return super().get_queryset(request).prefetch_related("channels")

    @admin.display(description="channels")
    def channel_names(self, rule: AlertRule) -> str:
        return ", ".join(channel.name for channel in rule.channels.all()) or "-"

    @admin.action(description="Send test alert")
    def send_test_alert(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        for rule in queryset:
            notes = send_test_alert(rule=rule, requested_by=str(request.user))
            _report_drill(self, request, f"rule {rule.name}", notes)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Every delivery attempt, as history: browsable, never edited."""

    list_display = (
        "created_at",
        "event",
        "connection",
        "channel",
        "recipient",
        "status",
        "attempts",
        "response_code",
        "error",
        "is_test",
        "sent_at",
    )
    list_filter = ("status", "event", "is_test", "channel")
    search_fields = ("recipient", "error", "connection__name", "connection__slug")
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Notification]:
        # Names only: the connection's tokens and the channel's URL and secret stay encrypted.
        return (
            super()
            .get_queryset(request)
            .select_related("connection", "channel", "rule")
            .defer(
                "connection__access_token",
                "connection__refresh_token",
                "connection__client_secret",
                "channel__url",
                "channel__secret",
            )
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
