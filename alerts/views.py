from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from alerts.calendar import build_calendar, feed_url, issue_calendar_key, user_for_calendar_key
from alerts.models import CalendarKey


@require_GET
@never_cache
def calendar_feed(request: HttpRequest) -> HttpResponse:
    """The reauthorize-by calendar (`?key=`), for calendar apps: no session, the key is the
    credential. Missing key: 403; a key nobody holds: 404; same work either way."""
    key = request.GET.get("key", "")
    if user_for_calendar_key(key) is None:
        status = 403 if not key else 404
        return HttpResponse(
            "A valid calendar key is required: copy the feed URL from /calendar/.",
            status=status,
            content_type="text/plain; charset=utf-8",
        )
    response = HttpResponse(build_calendar(), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="tokenadmin-reauthorize-by.ics"'
    return response


@staff_member_required
@require_http_methods(["GET", "POST"])
@never_cache
def calendar_page(request: HttpRequest) -> HttpResponse:
    """Show the user's feed URL; POST makes a new key (the old URL stops working)."""
    if request.method == "POST":
        issue_calendar_key(user=request.user)
        messages.success(request, "New calendar key made: the old feed URL no longer works.")
        return redirect("calendar")
    calendar_key = CalendarKey.objects.filter(user=request.user).first()
    url = feed_url(calendar_key) if calendar_key else ""
    response = render(request, "alerts/calendar.html", {"feed_url": url})
    # The page shows a credential: keep it out of Referer headers of any link followed from it.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
