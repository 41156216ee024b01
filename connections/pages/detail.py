"""The connection page: configuration (never a secret), token facts, consumers, failover state
and the timeline. A fixed number of queries, whatever the history holds."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from connections.models import Connection, RefreshExpiry
from connections.models.connection import DeadlineSource
from connections.pages.timeline import page_number, timeline_page

# The encrypted columns: a page shows none of them, so none is fetched or decrypted.
SECRET_COLUMNS = ("access_token", "refresh_token", "client_secret")
_RELATED_SECRETS = [
    f"{rel}__{name}" for rel in ("backup", "failed_over_to") for name in SECRET_COLUMNS
]


def load_for_page(slug: str) -> Connection:
    connection = (
        Connection.objects.select_related("provider", "backup", "failed_over_to")
        .defer(*SECRET_COLUMNS, *_RELATED_SECRETS)
        .filter(slug=slug)
        .first()
    )
    if connection is None:
        raise Http404("No such connection.")
    return connection


def page_context(request: HttpRequest, connection: Connection) -> dict[str, Any]:
    """Everything the page and its fragments show about `connection`."""
    deadline, source = connection.reauthorization_deadline
    learned = connection.refresh_expiry_learned
    return {
        "connection": connection,
        "provider": connection.provider,
        "scopes": connection.scopes.split() or connection.provider.default_scopes.split(),
        "scopes_are_default": not connection.scopes,
        "granted_scopes": connection.granted_scopes.split(),
        "deadline": deadline,
        "deadline_source": DeadlineSource(source).label,
        "refresh_kind": RefreshExpiry(connection.refresh_expiry_kind).label,
        "refresh_kind_learned": RefreshExpiry(learned).label if learned else "",
        "is_disabled": connection.status == Connection.Status.DISABLED,
        "consumers": list(connection.consumer_schedules.all()),
        "primaries": list(
            Connection.objects.filter(backup=connection).only("name", "slug").order_by("name")
        ),
        "timeline": timeline_page(connection, number=page_number(request.GET.get("page"))),
    }


@staff_member_required
@require_GET
@never_cache
def connection_detail(request: HttpRequest, slug: str) -> HttpResponse:
    connection = load_for_page(slug)
    context = page_context(request, connection)
    if request.htmx and request.htmx.target == "timeline":
        return render(request, "connections/partials/timeline.html", context)
    return render(request, "connections/connection_detail.html", context)
