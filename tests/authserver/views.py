"""JSON control endpoints for tests. Unauthenticated on purpose: this server only runs in tests."""

import json
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import (
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_id_token_model,
    get_refresh_token_model,
)

from tests.authserver import state

DEFAULT_USERS = {"alice": "pw-alice", "bob": "pw-bob"}
TOKEN_ENDPOINT_AUTH_METHODS = {"basic", "post"}


def parse_json(request: HttpRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    data = json.loads(request.body)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def bad_request(message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=400)


def ensure_user(*, username: str, password: str) -> None:
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.set_password(password)
    user.save()


def ensure_default_users() -> None:
    for username, password in DEFAULT_USERS.items():
        ensure_user(username=username, password=password)


@csrf_exempt
@require_POST
def create_client(request: HttpRequest) -> JsonResponse:
    data = parse_json(request)
    redirect_uri = data.get("redirect_uri")
    if not redirect_uri:
        return bad_request("redirect_uri is required")
    # DOT accepts client_secret_basic and client_secret_post from any confidential client, so
    # the method is only validated here, not stored.
    if data.get("token_endpoint_auth", "basic") not in TOKEN_ENDPOINT_AUTH_METHODS:
        return bad_request(
            f"token_endpoint_auth must be one of {sorted(TOKEN_ENDPOINT_AUTH_METHODS)}"
        )
    Application = get_application_model()
    # DOT hashes client_secret on save; the plaintext exists only here.
    client_secret = generate_client_secret()
    application = Application.objects.create(
        name=data.get("name", "tokenadmin test client"),
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=redirect_uri,
        skip_authorization=bool(data.get("skip_authorization", True)),
        algorithm=Application.RS256_ALGORITHM,
        client_secret=client_secret,
    )
    return JsonResponse(
        {"client_id": application.client_id, "client_secret": client_secret}, status=201
    )


@csrf_exempt
@require_POST
def create_user(request: HttpRequest) -> JsonResponse:
    data = parse_json(request)
    if not data.get("username") or not data.get("password"):
        return bad_request("username and password are required")
    ensure_user(username=data["username"], password=data["password"])
    return JsonResponse({"username": data["username"]}, status=201)


@csrf_exempt
@require_POST
def set_faults(request: HttpRequest) -> JsonResponse:
    data = parse_json(request)
    if "latency" in data:
        state.set_latency(seconds=float(data["latency"]))
    if "mode" in data:
        try:
            state.set_fault(
                mode=str(data["mode"]),
                count=int(data.get("count", 1)),
                delay=float(data.get("delay", 3.0)),
            )
        except ValueError as exc:
            return bad_request(str(exc))
    return JsonResponse({"ok": True})


@require_GET
def stats(request: HttpRequest) -> JsonResponse:
    return JsonResponse(state.get_stats())


@csrf_exempt
@require_POST
def reset(request: HttpRequest) -> JsonResponse:
    state.reset()
    return JsonResponse({"ok": True})


@csrf_exempt
@require_POST
def age(request: HttpRequest) -> JsonResponse:
    """Move every token and code N seconds into the past, instead of tests sleeping.

    Refresh-token expiry needs nothing of its own: DOT checks it as
    ``access_token.expires + REFRESH_TOKEN_EXPIRE_SECONDS <= now``.
    """
    seconds = float(parse_json(request).get("seconds", 0))
    delta = timedelta(seconds=seconds)
    with transaction.atomic():
        access = get_access_token_model().objects.update(expires=F("expires") - delta)
        get_grant_model().objects.update(expires=F("expires") - delta)
        get_id_token_model().objects.update(expires=F("expires") - delta)
    return JsonResponse({"aged_access_tokens": access})


@csrf_exempt
@require_POST
def revoke_all(request: HttpRequest) -> JsonResponse:
    """Revoke every token of a user, as if they removed the app in the provider's UI."""
    username = parse_json(request).get("username", "")
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        return JsonResponse({"error": f"no user {username!r}"}, status=404)
    refresh_tokens = get_refresh_token_model().objects.filter(user=user, revoked__isnull=True)
    revoked_refresh = 0
    for refresh_token in refresh_tokens:
        refresh_token.revoke()  # also deletes its access token
        revoked_refresh += 1
    access_tokens = get_access_token_model().objects.filter(user=user)
    revoked_access = 0
    for access_token in access_tokens:
        access_token.revoke()
        revoked_access += 1
    return JsonResponse(
        {"revoked_refresh_tokens": revoked_refresh, "revoked_access_tokens": revoked_access}
    )
