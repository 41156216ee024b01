"""One host name for a consent trip: SITE_URL's.

A consent trip is bound to the browser that starts it by a secret in its session (authorize.py),
and the session cookie belongs to one host name: a cookie set by `localhost` is never sent to
`127.0.0.1`, although both reach the same server (RFC 6265 §5.3 step 6, host-only cookies; ports
do not matter, §8.5). The provider always sends the person back to the one callback on SITE_URL.
So a trip started on another name of the site ends on the callback with no session that knows
it ("started in another browser"). The rule, here and nowhere else:

- a request that begins a trip on another host name than SITE_URL's is first redirected to the
  same path on SITE_URL, before anything is written to its session (`on_site_host`);
- a callback that still fails on another host name says which address to use
  (`explain_wrong_host`).

Never an open redirect: the target is SITE_URL plus this request's path, never a host taken from
the request. Host has already passed ALLOWED_HOSTS (`request.get_host()` raises DisallowedHost,
a 400, before this code decides anything); it only decides *whether* to redirect.

A proxy that rewrites Host (say, nginx without `proxy_set_header Host $host`) makes every request
look like another host name, and a redirect would loop: the redirect carries a marker, and a
request that arrives with it on another name still is served where it is, with a warning in the
log naming the fix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from connections.authorize import WRONG_BROWSER, AuthorizationFailed

logger = logging.getLogger(__name__)

# Added to the redirect's query: seen again on another host name means a redirect loop.
REDIRECT_MARK = "site_redirect"

View = Callable[..., HttpResponse]


def site_hostname() -> str:
    return (urlsplit(settings.SITE_URL).hostname or "").lower()


def request_hostname(request: HttpRequest) -> str:
    """The host name this request was made to (validated against ALLOWED_HOSTS), no port."""
    return (urlsplit("//" + request.get_host()).hostname or "").lower()


def is_site_host(request: HttpRequest) -> bool:
    """Whether the request shares SITE_URL's cookies: the same host name (any port)."""
    return request_hostname(request) == site_hostname()


def site_url_for(request: HttpRequest) -> str:
    """This request's path and query on SITE_URL, marked as a redirect (see the module)."""
    separator = "&" if request.META.get("QUERY_STRING") else "?"
    return f"{settings.SITE_URL}{request.get_full_path()}{separator}{REDIRECT_MARK}=1"


def redirect_to_site_host(request: HttpRequest) -> HttpResponse | None:
    """A redirect to SITE_URL when a GET arrives on another host name; None to serve it here."""
    if request.method != "GET" or is_site_host(request):
        return None
    if REDIRECT_MARK in request.GET:
        logger.warning(
            "a request redirected to SITE_URL (%s) arrived as host %r again: does the proxy in "
            "front pass the Host header on (nginx: proxy_set_header Host $host)? Serving it "
            "here; a consent started this way may fail at the callback.",
            settings.SITE_URL,
            request_hostname(request),
        )
        return None
    response = HttpResponseRedirect(site_url_for(request))
    # The URL can carry a link token: keep it out of any Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def on_site_host(view: View) -> View:
    """Decorator: a GET on another host name than SITE_URL's goes to SITE_URL first."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        return redirect_to_site_host(request) or view(request, *args, **kwargs)

    return wrapper


def origin_of(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}"


def explain_wrong_host(request: HttpRequest, exc: AuthorizationFailed) -> AuthorizationFailed:
    """`exc`, saying which address to use when the request came to another host name.

    The checks that refused the callback are untouched: only the sentence changes. A session
    that does not know the trip (`wrong_browser`) is most likely just the other host name's
    cookie, so "another browser" would mislead."""
    if is_site_host(request):
        return exc
    here = origin_of(request)
    advice = (
        f"This tokenadmin runs at {settings.SITE_URL} (its SITE_URL), and this page was opened "
        f"at {here}: sessions are kept per host name. Open tokenadmin at {settings.SITE_URL} "
        f"and start the authorization again from there, not from {here}."
    )
    first = "This authorization was not started at this address. Nothing was stored."
    message = f"{first if exc.kind == WRONG_BROWSER else exc} {advice}"
    return AuthorizationFailed(exc.kind, message, connection=exc.connection)
