"""Admin for reauthorization links: a read-only list.

Only a hash of each link's nonce is stored, so the admin cannot show a link's URL; new links are
made with the "Create reauthorization link" action on connections.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from alerts.models import ReauthLink


@admin.register(ReauthLink)
class ReauthLinkAdmin(admin.ModelAdmin):
    list_display = ("connection", "created_at", "expires_at", "consumed_at", "created_for")
    list_filter = ("connection",)
    list_select_related = ("connection",)
    search_fields = ("connection__name", "connection__slug", "created_for")
    date_hierarchy = "created_at"
    fields = ("connection", "created_for", "created_at", "expires_at", "consumed_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
