"""`{% countdown when %}`: a `<time>` that static/countdown.js keeps ticking.

The server writes the same words the script would ("in 3 h 12 min", "expired"), so a page read
without JavaScript (or before the script runs) says the right thing.
"""

from datetime import UTC, datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html

from connections.status import warning_window

register = template.Library()


def describe_remaining(seconds: int) -> str:
    """Whole seconds left → words; mirrors `describe` in static/countdown.js."""
    days, hours = seconds // 86400, seconds % 86400 // 3600
    minutes, secs = seconds % 3600 // 60, seconds % 60
    if days >= 2:
        return f"in {days} d {hours} h"
    if seconds >= 3600:
        return f"in {days * 24 + hours} h {minutes} min"
    if seconds >= 60:
        return f"in {minutes} min {secs:02d} s"
    return f"in {secs} s"


@register.simple_tag
def countdown(
    when: datetime | None,
    *,
    warn_seconds: int | None = None,
    missing: str = "unknown",
    expired: str = "expired",
    now: datetime | None = None,
) -> str:
    """The ticking `<time>`; `missing` (said plainly) when there is no date at all."""
    if when is None:
        return format_html('<span class="countdown-none">{}</span>', missing)
    now = now or timezone.now()
    left = int((when - now).total_seconds())
    classes = "countdown-expired" if left <= 0 else ""
    if 0 < left <= (warn_seconds if warn_seconds is not None else -1):
        classes = "countdown-urgent"
    text = describe_remaining(left) if left > 0 else expired
    utc = when.astimezone(UTC)
    return format_html(
        '<time data-countdown datetime="{}" title="{}"{}{}{}>{}</time>',
        utc.isoformat().replace("+00:00", "Z"),
        utc.strftime("%Y-%m-%d %H:%M UTC"),
        format_html(' class="{}"', classes) if classes else "",
        format_html(' data-warn-seconds="{}"', warn_seconds) if warn_seconds is not None else "",
        format_html(' data-expired-text="{}"', expired) if expired != "expired" else "",
        text,
    )


@register.simple_tag
def warning_seconds() -> int:
    """The warning window in seconds, for `warn_seconds=` on reauthorize-by countdowns."""
    return int(warning_window().total_seconds())
