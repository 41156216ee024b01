"""Grants held until a staff user confirms whose account they belong to.

A grant whose account cannot be checked (the connection's pinned account was never known, or a
first grant arrives with no readable identity and no expected account) is neither stored nor
refused: its token response is kept, encrypted, on its AuthorizationRequest for a few hours. A
logged-in staff user confirms it on `/oauth/confirm/<token>/`, where <token> is the request's id
signed with SECRET_KEY (a URL that cannot be guessed or altered; the page is staff-only anyway).

The row's `outcome` says where it stands: "held: …" while waiting, then "authorized (confirmed
by …)", "discarded: …" or "held_expired: …". While held, `expires_at` is the hold's deadline.
This module only reads and writes those rows; `authorize` stores, refuses and revokes grants.
"""

import dataclasses
import json
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.db.models import QuerySet
from django.urls import reverse

from connections import oauth
from connections.models import AuthorizationRequest

HELD_GRANT_LIFETIME = timedelta(hours=4)
HELD = "held"
SALT = "tokenadmin.held-grant"


class HeldGrantNotFound(Exception):
    """A confirmation URL that names no request (altered, or from another installation)."""


def held_requests() -> QuerySet[AuthorizationRequest]:
    # `held_grant` is encrypted and cannot be filtered on; the outcome says a grant is held.
    return AuthorizationRequest.objects.filter(outcome__startswith=f"{HELD}:")


def is_held(request: AuthorizationRequest, *, now: datetime) -> bool:
    return request.outcome.startswith(f"{HELD}:") and request.expires_at > now


def hold_grant(
    request: AuthorizationRequest,
    token: oauth.TokenResponse,
    *,
    account_id: str,
    account_label: str,
    reason: str,
    now: datetime,
) -> None:
    """Keep `token` on `request` until a staff user confirms it or HELD_GRANT_LIFETIME passes."""
    request.held_grant = json.dumps(dataclasses.asdict(token))
    request.held_account_id = account_id[:255]
    request.held_account_label = account_label[:255]
    request.outcome = f"{HELD}: {reason}"[:200]
    request.expires_at = now + HELD_GRANT_LIFETIME
    request.save(
        update_fields=[
            "held_grant",
            "held_account_id",
            "held_account_label",
            "outcome",
            "expires_at",
        ]
    )


def held_token(request: AuthorizationRequest, *, now: datetime) -> oauth.TokenResponse:
    """The held token response, its relative lifetimes shortened by the time spent waiting, so
    the stored expiries are those the provider meant (at least 1 s: an expired access token is
    then simply refreshed by the next sweep)."""
    token = oauth.TokenResponse(**json.loads(request.held_grant))
    waited = max(0, int(now.timestamp() - token.received_at))

    def shortened(seconds: int | None) -> int | None:
        return None if seconds is None else max(1, seconds - waited)

    return dataclasses.replace(
        token,
        expires_in=shortened(token.expires_in),
        refresh_expires_in=shortened(token.refresh_expires_in),
        refresh_hard_expires_in=shortened(token.refresh_hard_expires_in),
    )


def confirmation_url(request: AuthorizationRequest, *, absolute: bool = True) -> str:
    token = signing.dumps(request.pk, salt=SALT, compress=False)
    path = reverse("oauth-confirm", args=[token])
    return settings.SITE_URL + path if absolute else path


def find_held_request(token: str) -> AuthorizationRequest:
    """The request a confirmation URL names, whatever its state; HeldGrantNotFound otherwise."""
    try:
        pk = signing.loads(token, salt=SALT)
    except signing.BadSignature as exc:
        raise HeldGrantNotFound("This confirmation link is not valid.") from exc
    request = (
        AuthorizationRequest.objects.select_related("connection__provider", "reauth_link")
        .filter(pk=pk)
        .first()
    )
    if request is None:
        raise HeldGrantNotFound("This confirmation link names nothing that is waiting.")
    return request
