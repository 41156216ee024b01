"""`{% status_badge status %}`: a connection's status as icon + text (never colour alone)."""

from django import template
from django.utils.html import format_html

from connections.models import Connection

register = template.Library()

BADGES = {
    Connection.Status.ACTIVE: ("✓", "Active"),
    Connection.Status.EXPIRING: ("◷", "Expiring"),
    Connection.Status.NEEDS_REAUTH: ("✕", "Needs reauth"),
    Connection.Status.DEGRADED: ("⚠\ufe0e", "Degraded"),
    Connection.Status.PENDING: ("○", "Pending"),
    Connection.Status.DISABLED: ("⊘", "Disabled"),
}


@register.simple_tag
def status_badge(status: str) -> str:
    icon, label = BADGES.get(status, ("?", status))
    return format_html(
        '<span class="badge badge-{}"><span class="icon" aria-hidden="true">{}</span>{}</span>',
        status,
        icon,
        label,
    )
