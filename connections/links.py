"""Signed, single-use reauthorization links.

A link is `SITE_URL/reauth/<token>/` where the token is a random nonce signed with SECRET_KEY
(django.core.signing, its own salt). The nonce's hash finds the ReauthLink row, which carries the
connection, the expiry and whether the link was consumed. Opening a link does not consume it
(mail scanners open links too); completing the provider's consent does.
"""

import secrets
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from connections.models import ReauthLink
from tokenadmin.hashing import sha256_hex

SALT = "tokenadmin.reauth-link"


class LinkError(Exception):
    """A link that cannot be used; `reason` is one of invalid, expired, consumed. `connection`
    is the link's connection when the link was genuine (expired or consumed), else None."""

    def __init__(self, reason: str, message: str, *, connection=None) -> None:
        super().__init__(message)
        self.reason = reason
        self.connection = connection


def build_reauth_link(connection, *, created_for: str = "", days: int | None = None) -> str:
    """Make a new link for `connection` and return its absolute URL."""
    days = days if days is not None else settings.TOKENADMIN["REAUTH_LINK_DAYS"]
    nonce = secrets.token_urlsafe(24)
    ReauthLink.objects.create(
        connection=connection,
        nonce_hash=sha256_hex(nonce),
        expires_at=timezone.now() + timedelta(days=days),
        created_for=created_for[:200],
    )
    token = signing.dumps(nonce, salt=SALT, compress=False)
    return settings.SITE_URL + reverse("reauth", args=[token])


def resolve_reauth_link(token: str) -> ReauthLink:
    """Return the usable link behind `token`, or raise LinkError saying why not."""
    try:
        nonce = signing.loads(token, salt=SALT)
    except signing.BadSignature as exc:
        raise LinkError("invalid", "This link is not valid: it may have been altered.") from exc
    link = (
        ReauthLink.objects.select_related("connection__provider")
        .filter(nonce_hash=sha256_hex(str(nonce)))
        .first()
    )
    if link is None:
        raise LinkError("invalid", "This link is not valid: it may have been altered.")
    if link.consumed_at is not None:
        raise LinkError(
            "consumed",
            "This link was already used to reauthorize the connection.",
            connection=link.connection,
        )
    if link.expires_at <= timezone.now():
        raise LinkError("expired", "This link has expired.", connection=link.connection)
    return link


def consume_reauth_link(link: ReauthLink) -> bool:
    """Mark the link used; False when another request consumed it first."""
    return (
        ReauthLink.objects.filter(pk=link.pk, consumed_at__isnull=True).update(
            consumed_at=timezone.now()
        )
        == 1
    )
