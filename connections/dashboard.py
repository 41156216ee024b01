"""The dashboard's list of connections (`/`): parse the query, call the selector, render.

One view, one template: an htmx poll (every 30 s while the tab is visible) asks the same URL
and gets only the live region (tiles, rows, pagination) back, as django-htmx's docs suggest.
Without JavaScript the page is a plain GET form and links.
"""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from connections.listing import TILE_STATUSES, dashboard_page, parse_dashboard_query
from connections.templatetags.status_badge import BADGES

LIVE_REGION_ID = "dashboard-live"
POLL_SECONDS = 30
# Shorter than Status labels ("Pending (never authorized)"): what a tile or a badge says.
SHORT_LABELS = {status: label for status, (_, label) in BADGES.items()}


def connection_url(slug: str) -> str:
    """The connection's page; its URL name belongs to the connection-page module."""
    try:
        return reverse("connection-detail", args=[slug])
    except NoReverseMatch:
        return f"/connections/{slug}/"


@staff_member_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    query = parse_dashboard_query(request.GET)
    now = timezone.now()
    page = dashboard_page(query=query, now=now)
    for row in page.rows:
        row.detail_url = connection_url(row.slug)
        row.backup_url = connection_url(row.backup.slug) if row.backup_id else ""
    context = {
        "page": page,
        "query": query,
        "selected_status": query.statuses[0] if len(query.statuses) == 1 else "",
        "tiles": [(status, SHORT_LABELS[status], page.tiles[status]) for status in TILE_STATUSES],
        "status_choices": [(status, SHORT_LABELS[status]) for status in SHORT_LABELS],
        "live_region_id": LIVE_REGION_ID,
        "poll_seconds": POLL_SECONDS,
        "now": now,
    }
    live_only = request.htmx and request.htmx.target == LIVE_REGION_ID
    template = "connections/_dashboard_live.html" if live_only else "connections/dashboard.html"
    response = render(request, template, context)
    # The same URL answers a whole page or the live region: caches must keep them apart.
    patch_vary_headers(response, ("HX-Request",))
    return response
