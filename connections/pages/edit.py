"""Add and edit pages, and the discovery preview.

Both save through `services.connection_create` / `connection_update`; a refusal shows next to the
field it names. "Save and authorize" then sends this browser to the provider's consent page
through a fresh link, as the connection page's Reauthorize button does.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from connections import actions, services
from connections.forms import ConnectionAddForm, ConnectionEditForm
from connections.models import Connection
from connections.oauth import ProviderMetadata
from connections.pages.detail import SECRET_COLUMNS
from connections.presets import list_presets
from connections.services import ConnectionSaved, ServiceError

AUTHORIZE = "save_authorize"


def _form_page(request: HttpRequest, context: dict[str, Any], *, status: int = 200) -> HttpResponse:
    context = {"presets": list_presets(), **context}
    response = render(request, "connections/connection_form.html", context, status=status)
    # Same-origin only: CSRF checks the Origin of the POST that follows.
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _after_save(request: HttpRequest, saved: ConnectionSaved, verb: str) -> HttpResponse:
    connection = saved.connection
    for note in saved.notes:
        messages.info(request, note)
    if AUTHORIZE in request.POST:
        try:
            link = actions.connection_reauth_link(
                connection=connection, requested_by=f"{request.user.get_username()} on saving"
            )
        except ServiceError as exc:
            messages.error(request, f"{connection.name} was {verb}, but: {exc}")
        else:
            return redirect(link)
    messages.success(request, f"{connection.name} was {verb}.")
    return redirect("connection-detail", slug=connection.slug)


@staff_member_required
@require_http_methods(["GET", "POST"])
@never_cache
def connection_add(request: HttpRequest) -> HttpResponse:
    form = ConnectionAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.connection_create(**form.creation_arguments())
        except ServiceError as exc:
            form.add_service_error(exc.field, str(exc))
        else:
            return _after_save(request, saved, "added")
    status = 400 if form.is_bound else 200
    return _form_page(request, {"form": form, "adding": True}, status=status)


@staff_member_required
@require_http_methods(["GET", "POST"])
@never_cache
def connection_edit(request: HttpRequest, slug: str) -> HttpResponse:
    # Loaded without its encrypted columns: `connection_update` writes only the edited ones.
    connection = get_object_or_404(
        Connection.objects.select_related("provider", "backup").defer(*SECRET_COLUMNS), slug=slug
    )
    form = ConnectionEditForm(request.POST or None, connection=connection)
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.connection_update(
                connection=connection, changes=form.changes(), client_secret=form.typed_secret()
            )
        except ServiceError as exc:
            form.add_service_error(exc.field, str(exc))
        else:
            return _after_save(request, saved, "saved")
    status = 400 if form.is_bound else 200
    context = {"form": form, "adding": False, "connection": connection}
    return _form_page(request, context, status=status)


@staff_member_required
@require_POST
@never_cache
def connection_discover(request: HttpRequest) -> HttpResponse:
    """The endpoints an issuer publishes, before anything is saved (htmx: just the preview)."""
    issuer = request.POST.get("issuer", "")
    found: ProviderMetadata | None = None
    error = ""
    try:
        found = actions.provider_discover(issuer=issuer)
    except ServiceError as exc:
        error = str(exc)
    context = {"discovered": found, "discovery_error": error, "issuer": issuer}
    if request.htmx:
        return render(request, "connections/partials/discovery.html", context)
    form = ConnectionAddForm(request.POST)
    form.is_valid()  # to show the inputs as typed; nothing is saved here
    return _form_page(request, {"form": form, "adding": True, **context})
