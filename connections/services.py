"""The one place the front doors call: the API, the CLI, the admin and the dashboard parse their
input, call one function here, and render. Each rule lives here once.

Functions take keyword-only, typed arguments and raise `ServiceError` (a bad value, with the
field it belongs to) or the engine's `TokenUnavailable` family; they never name a CLI flag or a
form field in a message, so every front door can show the message as it is.

Sections:
- connections: create, update, enable / disable (validation through the model, due times always
  recomputed, backup chains without cycles, scope rules such as `offline_access`); where a new
  connection's provider comes from is `connections.provider_sources`, called from here only;
- tokens: serve a valid token with safe failover, report a token a provider rejected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.db.models import Model
from django.utils import timezone
from django.utils.text import slugify

from connections import serving
from connections.models import ApiKey, AuthMethod, Connection, ConsumerSchedule, Provider
from connections.presets import REFRESH_SCOPES, PresetError
from connections.provider_sources import provider_from_source
from connections.serving import ServedToken
from connections.status import evaluate_expiry


class ServiceError(ValueError):
    """Input a service refuses; `field` names the value at fault (None: the request as a whole)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# --- connections: create, update, enable / disable --------------------------------------------

# An allow-list: token values, the client secret, status and engine state are never edited by
# hand (a form would render a token into HTML, or an edit would undo a refresh).
EDITABLE_CONNECTION_FIELDS = (
    "name",
    "slug",
    "provider",
    "backup",
    "contact_email",
    "expected_account",
    "client_id",
    "scopes",
    "refresh_threshold",
    "renewal_fraction",
    "refresh_lifetime_override",
    "refresh_expiry_override",
    "health_check_url",
)


@dataclass(frozen=True)
class ConnectionSaved:
    """A created or edited connection, and what to tell the person who asked (`notes`)."""

    connection: Connection
    notes: tuple[str, ...] = ()
    added_scopes: tuple[str, ...] = ()


def connection_create(
    *,
    name: str,
    client_id: str,
    client_secret: str,
    slug: str | None = None,
    provider: Provider | None = None,
    preset: str | None = None,
    preset_params: Mapping[str, str] | None = None,
    issuer: str | None = None,
    authorize_url: str | None = None,
    token_url: str | None = None,
    revoke_url: str | None = None,
    userinfo_url: str | None = None,
    auth_method: str | None = None,
    token_request_params: Mapping[str, str] | None = None,
    token_request_headers: Mapping[str, str] | None = None,
    token_request_encoding: str | None = None,
    scopes: str | Iterable[str] = "",
    refresh_lifetime_override: timedelta | None = None,
    refresh_expiry_override: str = "",
    refresh_threshold: int | None = None,
    renewal_fraction: float | None = None,
    health_check_url: str = "",
    backup: Connection | None = None,
    contact_email: str = "",
    expected_account: str = "",
) -> ConnectionSaved:
    """A new `pending` connection at one provider, which comes from exactly one source: an
    existing `provider`, a `preset` (with `preset_params` for its placeholders), an `issuer` to
    discover, or typed-in endpoints (`authorize_url` + `token_url`, optional `revoke_url`,
    `userinfo_url`, `auth_method`, and the token-request quirks `token_request_params`,
    `token_request_headers`, `token_request_encoding`). The slug defaults to the slugified name.

    `client_secret` is blank exactly for a public client (the provider's client authentication
    is `none`). Everything but the provider is validated first, and the secret against the
    client authentication the source declares, so a bad value never leaves a provider made or
    discovered behind.
    """
    connection = Connection(
        name=name,
        slug=_new_connection_slug(slug, name),
        client_id=client_id,
        client_secret=client_secret,
        client_secret_set_at=timezone.now() if client_secret else None,
        backup=backup,
        contact_email=contact_email,
        expected_account=expected_account,
        refresh_lifetime_override=refresh_lifetime_override,
        refresh_expiry_override=refresh_expiry_override,
        renewal_fraction=renewal_fraction,
        health_check_url=health_check_url,
    )
    if refresh_threshold is not None:
        connection.refresh_threshold = refresh_threshold
    _validate(connection, exclude=["provider"])
    endpoints = {
        "authorize_url": authorize_url,
        "token_url": token_url,
        "revoke_url": revoke_url,
        "userinfo_url": userinfo_url,
        "auth_method": auth_method,
        "token_request_params": token_request_params,
        "token_request_headers": token_request_headers,
        "token_request_encoding": token_request_encoding,
    }
    try:
        connection.provider, notes = provider_from_source(
            has_secret=bool(client_secret),
            provider=provider,
            preset=preset,
            preset_params=preset_params,
            issuer=issuer,
            endpoints=endpoints,
        )
    except PresetError as exc:
        raise ServiceError(str(exc), field=exc.field) from exc
    connection.scopes, added = _with_refresh_scopes(_scope_text(scopes), connection.provider)
    if added:
        notes.append(_refresh_scope_note(added, connection.provider))
    _validate(connection)
    try:
        with transaction.atomic():
            connection.save()
    except IntegrityError as exc:  # the same slug, created since it was checked
        raise ServiceError(_slug_taken(connection.slug), field="slug") from exc
    return ConnectionSaved(connection, tuple(notes), added)


def connection_update(
    *, connection: Connection, changes: Mapping[str, Any], client_secret: str | None = None
) -> ConnectionSaved:
    """Edit allow-listed settings (and the secret, when one is given: blank removes it, which
    only a public client's provider allows) and recompute due times.

    Only the edited columns are written: `connection` may have been loaded before a refresh
    rotated its tokens, and writing its stale copy back would lose the grant (rules 3 and 4).
    """
    refused = [name for name in changes if name not in EDITABLE_CONNECTION_FIELDS]
    if refused:
        raise ServiceError(f"{refused[0]!r} is not an editable setting.", field=refused[0])
    notes: list[str] = []
    if "provider" in changes:
        client_secret, note = choose_client_secret(
            connection=connection, provider=changes["provider"], client_secret=client_secret
        )
        notes += [note] if note else []
    for name, value in changes.items():
        setattr(connection, name, value)
    fields, added = list(changes), ()
    if connection.scopes and ("scopes" in changes or "provider" in changes):
        connection.scopes, added = _with_refresh_scopes(connection.scopes, connection.provider)
        if added:
            fields.append("scopes")
            notes.append(_refresh_scope_note(added, connection.provider))
    if client_secret is not None:
        connection.client_secret = client_secret
        connection.client_secret_set_at = timezone.now() if client_secret else None
        fields += ["client_secret", "client_secret_set_at"]
    _validate(connection)
    try:
        with transaction.atomic():
            connection.save(update_fields=[*dict.fromkeys(fields), "updated_at"])
            # Always: the threshold, overrides and provider move the sweeps' due times.
            Connection.objects.filter(pk=connection.pk).recompute_due_times()
    except IntegrityError as exc:
        raise ServiceError(_slug_taken(connection.slug), field="slug") from exc
    connection.refresh_from_db(fields=["refresh_due_at", "renew_due_at"])
    return ConnectionSaved(connection, tuple(notes), added)


def choose_client_secret(
    *, connection: Connection, provider: Provider, client_secret: str | None
) -> tuple[str | None, str]:
    """The client secret `connection_update` stores when `connection` moves to `provider`
    (None: keep the stored one), and a note saying what happened to it.

    A move to a public client (client authentication `none`) with no secret given removes the
    stored one: it would never be sent, and no front door can leave a stored secret out. A move
    from a public client to one that needs a secret must bring the secret along. Whatever else
    does not fit is refused by `Connection.clean` (a secret given for a public client).

    What is stored decides, not `connection`: a ModelForm has already set its provider."""
    stored = Connection.objects.filter(pk=connection.pk).values_list("provider_id", "client_secret")
    stored_provider_id, stored_secret = stored.first() or (provider.pk, "")
    if provider.pk == stored_provider_id:
        return client_secret, ""
    method = provider.token_endpoint_auth_method
    if method == AuthMethod.NONE:
        if client_secret is None and stored_secret:
            return "", (
                f"Client secret removed: {provider.name} is a public client (client "
                "authentication none), which has no secret."
            )
        return client_secret, ""
    if not (client_secret or (client_secret is None and stored_secret)):
        raise ServiceError(
            f"{provider.name} authenticates with {method}, and this connection has no client "
            "secret: give the client secret along with the move.",
            field="client_secret",
        )
    return client_secret, ""


def provider_create(*, fields: Mapping[str, Any]) -> Provider:
    """A provider typed in field by field (presets and discovery: `connections.presets`)."""
    provider = Provider(**fields)
    _validate(provider)
    provider.save()
    return provider


def provider_update(*, provider: Provider, changes: Mapping[str, Any]) -> Provider:
    """Edit a provider and recompute the due times of every connection at it."""
    editable = {f.name for f in Provider._meta.concrete_fields if f.editable and not f.primary_key}
    refused = [name for name in changes if name not in editable]
    if refused:
        raise ServiceError(f"{refused[0]!r} is not an editable setting.", field=refused[0])
    for name, value in changes.items():
        setattr(provider, name, value)
    _validate(provider)
    with transaction.atomic():
        provider.save(update_fields=[*changes, "updated_at"])
        # Lifetimes, expiry kind, renewal fraction and rotation all move the due times.
        provider.connections.all().recompute_due_times()
    return provider


def connection_disable(*, connection: Connection, reason: str, actor: str) -> bool:
    """Stop serving and refreshing the connection (its tokens are kept); False if it already
    was disabled. Recorded as a status change."""
    why = f"disabled by {actor}: {reason}" if reason else f"disabled by {actor}"
    return connection.change_status(Connection.Status.DISABLED, reason=why)


def connection_enable(*, connection: Connection, actor: str) -> bool:
    """Undo `connection_disable`, to the status the grant is really in; False if the
    connection was not disabled. Recorded as a status change."""
    return connection.change_status(
        _status_after_enabling(connection),
        reason=f"enabled by {actor}",
        expected=(Connection.Status.DISABLED,),
    )


def consumer_add(
    *,
    connection: Connection,
    label: str,
    cron: str,
    timezone: str = "UTC",
    lead_minutes: int | None = None,
    run_minutes: int | None = None,
) -> ConsumerSchedule:
    """Record a pipeline's run schedule (cron on the `timezone` wall clock): the sweep has a
    token ready `lead_minutes` before each run that lasts `run_minutes` (model defaults)."""
    label = label.strip()
    if not label:
        raise ServiceError("A consumer needs a name.", field="label")
    if connection.consumer_schedules.filter(label=label).exists():
        raise ServiceError(
            f"{connection.slug} already has a consumer named {label!r}.", field="label"
        )
    sizes = {"lead_minutes": lead_minutes, "run_minutes": run_minutes}
    schedule = ConsumerSchedule(
        connection=connection,
        label=label,
        cron=cron.strip(),
        timezone=timezone.strip(),
        **{name: value for name, value in sizes.items() if value is not None},
    )
    _validate(schedule)
    # The sweep would fill these within a minute; set now, the first run is covered at once.
    schedule.next_run_at = schedule.next_run_after(_now())
    schedule.prepare_at = schedule.next_run_at - schedule.lead
    schedule.save()
    return schedule


def consumer_remove(*, connection: Connection, label: str) -> None:
    deleted, _ = connection.consumer_schedules.filter(label=label.strip()).delete()
    if not deleted:
        raise ServiceError(f"{connection.slug} has no consumer named {label!r}.", field="label")


def _now() -> datetime:
    return timezone.now()  # `consumer_add` takes an argument named `timezone`


def _validate(instance: Model, *, exclude: Iterable[str] = ()) -> None:
    """The model's own validation (fields, `clean()`, uniqueness), its first complaint raised
    as a ServiceError naming the field, so every front door refuses the same input alike."""
    try:
        instance.full_clean(exclude=list(exclude))
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        field_name = None if field == NON_FIELD_ERRORS else field
        raise ServiceError(" ".join(messages), field=field_name) from exc


def _slug_taken(slug: str) -> str:
    return f"A connection with slug {slug!r} already exists."


def _new_connection_slug(slug: str | None, name: str) -> str:
    slug = (slug or slugify(name)).strip()
    limit = Connection._meta.get_field("slug").max_length
    if not slug:
        raise ServiceError(
            "No slug can be made from this name; give one (letters, digits, - and _).",
            field="slug",
        )
    try:
        validate_slug(slug)
    except ValidationError:
        raise ServiceError(
            f"{slug!r} is not a valid slug (letters, digits, - and _).", field="slug"
        ) from None
    if len(slug) > limit:
        raise ServiceError(f"Slug {slug!r} is too long (at most {limit} characters).", field="slug")
    if Connection.objects.filter(slug=slug).exists():
        raise ServiceError(_slug_taken(slug), field="slug")
    return slug


def _scope_text(scopes: str | Iterable[str]) -> str:
    groups = [scopes] if isinstance(scopes, str) else list(scopes)
    return " ".join(scope for group in groups for scope in group.split())


def _with_refresh_scopes(scopes: str, provider: Provider) -> tuple[str, tuple[str, ...]]:
    """`scopes` (deduplicated) plus the scope the provider needs to issue a refresh token at all
    (`offline_access`, OIDC Core §11; Salesforce's `refresh_token`) when its defaults list one.
    Blank stays blank: the provider's defaults are asked for, and they include it."""
    requested = list(dict.fromkeys(scopes.split()))
    if not requested:
        return "", ()
    needed = [scope for scope in provider.default_scopes.split() if scope in REFRESH_SCOPES]
    added = tuple(scope for scope in needed if scope not in requested)
    return " ".join([*requested, *added]), added


def _refresh_scope_note(added: tuple[str, ...], provider: Provider) -> str:
    # Without it the provider issues no refresh token and the connection cannot live.
    return f"Also requesting {' '.join(added)}: {provider.name} needs it to issue a refresh token."


def _status_after_enabling(connection: Connection) -> str:
    """Where a re-enabled connection stands: disabling never revived or killed a grant."""
    if connection.authorized_at is None:
        return Connection.Status.PENDING
    if not connection.refresh_token:
        return Connection.Status.NEEDS_REAUTH
    before = (
        connection.status_changes.filter(to_status=Connection.Status.DISABLED)
        .values_list("from_status", flat=True)
        .first()
    )
    if before == Connection.Status.NEEDS_REAUTH:
        return Connection.Status.NEEDS_REAUTH  # a dead grant stays dead until reauthorized
    return evaluate_expiry(connection, now=timezone.now())[0]


# --- tokens: serve with failover, rejected-token reports --------------------------------------

TOKEN_SHA256 = re.compile(r"[0-9a-f]{64}")
# The rules live in `connections.serving`; these are the front doors' names for them.


def token_serve(
    *,
    connection: Connection,
    key: ApiKey | None = None,
    min_ttl: int | None = None,
    failover: bool = True,
) -> ServedToken:
    """A valid access token for `connection`, or its backup's when it cannot serve and the key
    may use the backup (never for a disabled primary); failover and failback are recorded once
    per incident. Raises the primary's `TokenUnavailable`."""
    return serving.serve_token(connection=connection, key=key, min_ttl=min_ttl, failover=failover)


def token_refresh(*, connection: Connection) -> ServedToken:
    """Force a refresh of `connection` now (single flight; no failover)."""
    return serving.refresh_token_now(connection=connection)


def token_rejected(
    *,
    connection: Connection,
    token_sha256: str,
    key: ApiKey | None = None,
    failover: bool = True,
) -> ServedToken:
    """A provider rejected the token with this SHA-256: refresh once if it is still current
    (`refreshed=True`), else serve the token that replaced it (`refreshed=False`)."""
    if not TOKEN_SHA256.fullmatch(token_sha256):
        raise ServiceError(
            "token_sha256 must be the token's SHA-256 as 64 lowercase hex digits.",
            field="token_sha256",
        )
    return serving.report_rejected_token(
        connection=connection, token_sha256=token_sha256, key=key, failover=failover
    )
