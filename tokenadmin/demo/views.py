"""The demo provider's own pages: its login (pre-filled demo user), its consent page, userinfo.

It shares the site's session cookie with the dashboard, so it never calls Django's `login()`:
that would replace the admin's session (and the consent flow's browser secret in it) with the
demo user's. The demo user's id sits under its own session key instead, read only here. The
consent request waiting for the sign-in waits in the session too, not in a `?next=` URL: its
`state` would reach the access log there, past the redaction of `state=` parameters.
"""

from typing import Any

from django.contrib.auth import authenticate, get_user_model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods
from oauth2_provider.decorators import protected_resource
from oauth2_provider.views import AuthorizationView

from tokenadmin.demo.setup import DEMO_PASSWORD, DEMO_USERNAME

SESSION_KEY = "demo_provider_user_id"
NEXT_KEY = "demo_provider_next"


def _signed_in_user(request: HttpRequest) -> Any | None:
    user_id = request.session.get(SESSION_KEY)
    if user_id is None:
        return None
    return get_user_model().objects.filter(pk=user_id, is_active=True, is_staff=False).first()


@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    """Sign in to the demo provider (not to tokenadmin): the demo user is filled in."""
    error = ""
    username = DEMO_USERNAME
    if request.method == "POST":
        username = request.POST.get("username", "")
        user = authenticate(request, username=username, password=request.POST.get("password", ""))
        if user is None or user.is_staff:
            error = f"Unknown user or wrong password: sign in as {DEMO_USERNAME} / {DEMO_PASSWORD}."
        else:
            request.session[SESSION_KEY] = user.pk
            # Back to the consent request that sent here (a path on this site only).
            return redirect(request.session.pop(NEXT_KEY, reverse("oauth2_provider:demo-login")))
    context = {
        "username": username,
        "password": DEMO_PASSWORD,
        "next": request.session.get(NEXT_KEY, ""),
        "error": error,
        "signed_in": _signed_in_user(request),
    }
    return render(request, "demo_provider/login.html", context, status=400 if error else 200)


class DemoAuthorizationView(AuthorizationView):
    """DOT's consent page, for the user signed in to the demo provider."""

    template_name = "demo_provider/authorize.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = _signed_in_user(request)
        if user is None:
            request.session[NEXT_KEY] = request.get_full_path()
            return redirect("oauth2_provider:demo-login")
        request.user = user
        return super().dispatch(request, *args, **kwargs)


@require_GET
@protected_resource(scopes=["read"])
def userinfo(request: HttpRequest) -> JsonResponse:
    """Who granted the token (OIDC-style claims): tokenadmin pins the connection to `sub`."""
    user = request.resource_owner
    return JsonResponse(
        {
            "sub": user.get_username(),
            "preferred_username": user.get_username(),
            "name": user.get_full_name() or user.get_username(),
        }
    )
