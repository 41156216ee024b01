"""Driving the Django admin's connection pages as a browser would."""

from typing import Any

from django.urls import reverse

from connections.models import Connection

INLINES = ("consumer_schedules", "status_changes", "refresh_attempts", "health_checks")
# The management forms of a connection page's inlines, for a POST that adds no inline rows.
NO_INLINE_ROWS = {
    f"{prefix}-{name}": 0 for prefix in INLINES for name in ("TOTAL_FORMS", "INITIAL_FORMS")
}


def change_url(connection: Connection) -> str:
    return reverse("admin:connections_connection_change", args=[connection.pk])


def changelist_url() -> str:
    return reverse("admin:connections_connection_changelist")


def form_data(response: Any) -> dict[str, Any]:
    """What a browser would POST back unchanged from an admin change page."""
    form = response.context["adminform"].form
    data: dict[str, Any] = {}
    for name in form.fields:
        value = form[name].value()
        if value is None or value is False:
            continue
        data[name] = value
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
    return data
