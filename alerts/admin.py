"""Admin for reauthorization links: a read-only list.

Only a hash of each link's nonce is stored, so the admin cannot show a link's URL; new links are
made with the "Create reauthorization link" action on connections.
"""

from django.contrib import admin

from alerts.models import ReauthLink
from connections.admin_records import ReadOnlyHistoryAdmin


@admin.register(ReauthLink)
class ReauthLinkAdmin(ReadOnlyHistoryAdmin):
    list_display = ("connection", "created_at", "expires_at", "consumed_at", "created_for")
    list_filter = ("connection",)
    search_fields = ("connection__name", "connection__slug", "created_for")
    date_hierarchy = "created_at"
    fields = ("connection", "created_for", "created_at", "expires_at", "consumed_at")
    readonly_fields = fields
