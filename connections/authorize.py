"""The authorization code flow: from a reauthorization link to stored tokens.

One callback URL serves every connection (`SITE_URL/oauth/callback/`). Each trip to the consent
page is an AuthorizationRequest row keyed by a hash of its `state`, holding the PKCE verifier
(RFC 7636) and a hash of a secret kept in the starting browser's session, so a callback is
accepted once, only in the browser that started it, and only within a few minutes. Nothing is
stored unless the grant is complete: tokens, a refresh token, and the right account.

Whose account (DESIGN: "the new grant must belong to the pinned provider account"):
- a pinned `account_id` must be the grant's identity; an unreadable identity is not a match;
- with nothing pinned, an `expected_account` (set at creation) must be the grant's identity;
- otherwise a grant nothing can check (the pinned account was never known, or a first grant
  without a readable identity) is held until a staff user confirms it (see `held_grants`).
A mismatch stores nothing, revokes the grant and is alerted (`oauth.account.mismatch`).
"""

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from connections import held_grants, oauth
from connections.lifecycle import client_for, enrich_stored_tokens, token_fields
from connections.links import consume_reauth_link
from connections.models import AuthorizationRequest, Connection, ReauthLink
from connections.signals import announce_alert_source
from connections.status import evaluate_expiry
from tokenadmin.hashing import sha256_hex

logger = logging.getLogger(__name__)

REQUEST_LIFETIME = timedelta(minutes=15)
ACCOUNT_MISMATCH = "account_mismatch"
WRONG_BROWSER = "wrong_browser"


class AuthorizationFailed(Exception):
    """The flow ended without storing anything. `kind` is a stable machine-readable reason."""

    def __init__(self, kind: str, message: str, *, connection: Connection | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.connection = connection


@dataclass(frozen=True)
class Identity:
    account_id: str
    label: str


@dataclass(frozen=True)
class Authorized:
    """A finished consent: stored, or `held` (the request) until a staff user confirms it."""

    connection: Connection
    held: AuthorizationRequest | None = None


def callback_url() -> str:
    return settings.SITE_URL + reverse("oauth-callback")


def requested_scope(connection: Connection) -> str:
    return connection.scopes or connection.provider.default_scopes


def start_authorization(
    connection: Connection, *, browser_secret: str, link: ReauthLink | None = None
) -> str:
    """Record a new authorization request and return the provider's consent-page URL."""
    _refuse_if_disabled(connection)
    provider = connection.provider
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64) if provider.use_pkce else ""
    now = timezone.now()
    AuthorizationRequest.objects.create(
        connection=connection,
        reauth_link=link,
        state_hash=sha256_hex(state),
        browser_hash=sha256_hex(browser_secret),
        code_verifier=verifier,
        expires_at=now + REQUEST_LIFETIME,
    )
    return oauth.build_authorization_url(
        authorize_url=provider.authorize_url,
        client_id=connection.client_id,
        redirect_uri=callback_url(),
        scope=requested_scope(connection),
        state=state,
        code_verifier=verifier or None,
        extra_params={str(k): str(v) for k, v in provider.extra_authorize_params.items()},
    )


def _claim_request(*, state: str, browser_secret: str) -> AuthorizationRequest:
    request = (
        AuthorizationRequest.objects.select_related("connection__provider", "reauth_link")
        .filter(state_hash=sha256_hex(state))
        .first()
        if state
        else None
    )
    if request is None:
        raise AuthorizationFailed(
            "unknown_state",
            "This response does not match any authorization started here (the state is unknown "
            "or forged). Nothing was stored.",
        )
    connection = request.connection
    if request.completed_at is not None:
        raise AuthorizationFailed(
            "replayed",
            "This authorization response was already used. Nothing was stored.",
            connection=connection,
        )
    if request.expires_at <= timezone.now():
        raise AuthorizationFailed(
            "expired",
            "This authorization took too long and expired. Open the link again.",
            connection=connection,
        )
    if not secrets.compare_digest(request.browser_hash, sha256_hex(browser_secret)):
        raise AuthorizationFailed(
            WRONG_BROWSER,
            "This authorization was started in another browser. Open the link again here.",
            connection=connection,
        )
    claimed = AuthorizationRequest.objects.filter(pk=request.pk, completed_at__isnull=True).update(
        completed_at=timezone.now()
    )
    if not claimed:
        raise AuthorizationFailed(
            "replayed",
            "This authorization response was already used. Nothing was stored.",
            connection=connection,
        )
    return request


def _missing_refresh_token_hint(connection: Connection) -> str:
    provider = connection.provider
    scopes = requested_scope(connection).split()
    params = provider.extra_authorize_params
    hints = []
    if "offline_access" not in scopes and params.get("access_type") != "offline":
        hints.append(
            "add the offline_access scope (or access_type=offline for Google-style providers)"
        )
    if params.get("prompt") != "consent":
        hints.append("send prompt=consent so the provider issues a new refresh token")
    if not hints:
        hints.append("check that the client is allowed the refresh_token grant at the provider")
    return "; ".join(hints)


def _bare(issuer: str) -> str:
    # Google documents both `https://accounts.google.com` and `accounts.google.com` as `iss`.
    return issuer.removeprefix("https://").rstrip("/")


def _identity(connection: Connection, token: oauth.TokenResponse) -> Identity | None:
    provider = connection.provider
    claims = oauth.jwt_claims(token.id_token)
    if claims.get("sub"):
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if connection.client_id not in audiences:
            raise AuthorizationFailed(
                "bad_id_token", "The id_token was issued to another client.", connection=connection
            )
        if provider.issuer and _bare(str(claims.get("iss", ""))) != _bare(provider.issuer):
            raise AuthorizationFailed(
                "bad_id_token", "The id_token names another issuer.", connection=connection
            )
        label = claims.get("email") or claims.get("preferred_username") or claims.get("name") or ""
        return Identity(str(claims["sub"]), str(label))
    if provider.userinfo_url:
        try:
            info = oauth.fetch_userinfo(provider.userinfo_url, access_token=token.access_token)
        except oauth.OAuthError as exc:
            logger.warning("connection %s: userinfo failed (%s)", connection.slug, exc.code)
            return None
        account = info.get("sub") or info.get("id") or info.get("user_id")
        if account:
            label = info.get("email") or info.get("preferred_username") or info.get("name") or ""
            return Identity(str(account), str(label))
    return None


def complete_authorization(
    *, state: str, code: str, error: str, browser_secret: str, issuer: str = ""
) -> Authorized:
    """Finish the flow from the callback's query parameters; raise AuthorizationFailed.

    Every claimed request ends with its outcome recorded, so a refused grant (say, consent given
    as the wrong account) leaves a trace for the admin and the alerts.
    """
    request = _claim_request(state=state, browser_secret=browser_secret)
    try:
        result = _finish(request, code=code, error=error, issuer=issuer)
    except AuthorizationFailed as exc:
        _record_refusal(request, exc)
        raise
    if result.held is None:
        AuthorizationRequest.objects.filter(pk=request.pk).update(outcome="authorized")
    return result


def _record_refusal(request: AuthorizationRequest, exc: AuthorizationFailed) -> None:
    AuthorizationRequest.objects.filter(pk=request.pk).update(outcome=f"{exc.kind}: {exc}"[:200])
    logger.warning("authorization of %s failed: %s", request.connection.slug, exc.kind)
    if exc.kind == ACCOUNT_MISMATCH:
        # The alert worker claims refused-account rows by this outcome prefix.
        announce_alert_source(kind="authorization", pk=request.pk)


def _refuse_if_disabled(connection: Connection) -> None:
    if connection.status == Connection.Status.DISABLED:
        raise AuthorizationFailed(
            "disabled",
            "This connection is disabled; an admin must enable it before it can be authorized.",
            connection=connection,
        )


def _finish(request: AuthorizationRequest, *, code: str, error: str, issuer: str) -> Authorized:
    connection = request.connection
    _refuse_if_disabled(connection)
    expected = connection.provider.issuer
    if issuer and expected and _bare(issuer) != _bare(expected):
        # RFC 9207: a response naming another issuer is a mix-up attack; never send it the code.
        raise AuthorizationFailed(
            "issuer_mismatch",
            "The response names a different authorization server than this connection's. "
            "Nothing was stored.",
            connection=connection,
        )
    if error:
        message = (
            "Consent was declined at the provider. Nothing was stored."
            if error == "access_denied"
            else f"The provider returned an error ({error}). Nothing was stored."
        )
        raise AuthorizationFailed(error[:64], message, connection=connection)
    if not code:
        raise AuthorizationFailed(
            "no_code", "The provider sent no authorization code.", connection=connection
        )
    if request.reauth_link and not request.reauth_link.is_usable():
        raise AuthorizationFailed(
            "link_used",
            "This reauthorization link was already used or expired. Nothing was stored.",
            connection=connection,
        )
    try:
        token = oauth.exchange_code(
            client_for(connection),
            code=code,
            redirect_uri=callback_url(),
            code_verifier=request.code_verifier or None,
        )
    except oauth.OAuthError as exc:
        if exc.code == "invalid_grant":
            message = "The provider rejected the authorization code (already used or expired)."
        elif exc.permanent:
            message = f"The provider refused the code exchange ({exc.code})."
        else:
            message = f"The provider could not be reached ({exc.code}); open the link again."
        raise AuthorizationFailed(
            exc.code[:64], message + " Nothing was stored.", connection=connection
        ) from exc
    try:
        identity, hold_reason = _accept(request, connection, token)
    except AuthorizationFailed:
        _discard_grant(connection, token)
        raise
    if hold_reason:
        held_grants.hold_grant(
            request,
            token,
            account_id=identity.account_id if identity else "",
            account_label=identity.label if identity else "",
            reason=hold_reason,
            now=timezone.now(),
        )
        logger.info("connection %s: grant held for a staff confirmation", connection.slug)
        return Authorized(connection=connection, held=request)
    store_grant(connection, token, identity)
    return Authorized(
        connection=Connection.objects.select_related("provider").get(pk=connection.pk)
    )


def _discard_grant(connection: Connection, token: oauth.TokenResponse) -> None:
    """Best effort: revoke (RFC 7009) a grant the provider issued but we refused to store, so
    it does not linger at the provider (say, a wrong account's grant to our client)."""
    revoke_url = connection.provider.revoke_url
    if not revoke_url:
        return
    value, hint = (
        (token.refresh_token, "refresh_token")
        if token.refresh_token
        else (token.access_token, "access_token")
    )
    try:
        oauth.revoke(client_for(connection), revoke_url, token=value, hint=hint)
    except oauth.OAuthError as exc:
        logger.warning(
            "connection %s: could not revoke a refused grant (%s)", connection.slug, exc.code
        )


def _accept(
    request: AuthorizationRequest, connection: Connection, token: oauth.TokenResponse
) -> tuple[Identity | None, str]:
    """Check that the grant is complete and whose it is; consume the link unless it is held.

    Returns the identity and, for a grant to hold, why (blank: store it now)."""
    if not token.refresh_token:
        raise AuthorizationFailed(
            "no_refresh_token",
            "The provider granted access but issued no refresh token, so the connection could "
            "not be kept alive. Nothing was stored. To fix: "
            f"{_missing_refresh_token_hint(connection)}.",
            connection=connection,
        )
    identity = _identity(connection, token)
    hold_reason = _check_account(connection, identity)
    if hold_reason:
        return identity, hold_reason
    if request.reauth_link and not consume_reauth_link(request.reauth_link):
        raise AuthorizationFailed(
            "link_used",
            "This reauthorization link was already used. Nothing was stored.",
            connection=connection,
        )
    return identity, ""


def _describe(identity: Identity | None) -> str:
    if identity is None:
        return "an account the provider did not name"
    return identity.label or identity.account_id


def _is_expected(identity: Identity, expected: str) -> bool:
    # The expected account is what an admin knows: the provider's account id, or its e-mail
    # or user name as the provider reports it (compared without regard to case).
    return identity.account_id == expected or (
        bool(identity.label) and identity.label.casefold() == expected.casefold()
    )


def _check_account(connection: Connection, identity: Identity | None) -> str:
    """Blank when the grant's account is the right one; why to hold it when nothing can tell;
    raise AuthorizationFailed(ACCOUNT_MISMATCH) when it is the wrong one."""
    pinned = connection.account_label or connection.account_id
    expected = connection.expected_account.strip()
    if connection.account_id:
        if identity is not None and identity.account_id == connection.account_id:
            return ""
        raise _mismatch(connection, f"This connection belongs to {pinned}", identity)
    if expected:
        if identity is None:
            return f"the provider did not say which account this is; {expected} is expected"
        if _is_expected(identity, expected):
            return ""
        raise _mismatch(connection, f"This connection expects {expected}", identity)
    if connection.authorized_at is not None:
        return "the account of this connection's earlier grant was never known"
    if identity is None:
        return "the provider did not say which account this is, and none is expected"
    return ""


def _mismatch(
    connection: Connection, belongs: str, identity: Identity | None
) -> AuthorizationFailed:
    return AuthorizationFailed(
        ACCOUNT_MISMATCH,
        f"{belongs}, but consent was given as {_describe(identity)}. Nothing was stored.",
        connection=connection,
    )


def store_grant(
    connection: Connection, token: oauth.TokenResponse, identity: Identity | None
) -> None:
    """Write a new grant's tokens. Bumping `version` makes any in-flight refresh of the old grant
    discard its result instead of overwriting this one."""
    now = timezone.now()
    fields = token_fields(connection, token, now=now, new_grant=True)
    fields.setdefault("granted_scopes", requested_scope(connection)[:1000])
    if identity is not None:
        fields |= {"account_id": identity.account_id[:255], "account_label": identity.label[:255]}
    Connection.objects.filter(pk=connection.pk).update(**fields)
    fresh = Connection.objects.select_related("provider").get(pk=connection.pk)
    # Stored first (refresh rule 3); introspecting the new refresh token comes after.
    fresh = enrich_stored_tokens(fresh, token, before=connection, new_grant=True, now=now)
    target, reason = evaluate_expiry(fresh, now=timezone.now())
    fresh.change_status(
        target,
        reason=f"authorized at the provider's consent page; {reason}",
        # An admin may have disabled it while the person was at the consent page.
        expected=[s for s in Connection.Status.values if s != Connection.Status.DISABLED],
    )
