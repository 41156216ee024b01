"""The token endpoint's hot path: one SQL statement per request, compiled once.

`GET /api/v1/connections/<slug>/token` is what every pipeline run calls, so it should cost about
what Django costs to answer the same URL with 401. One statement authenticates the API key (by
its SHA-256), checks its scope (all connections, or the key's M2M row) and reads only the columns
that serving needs: the answer, the validity check, the reauthorize-by date and the failover
state. Only the access token is decrypted; the refresh token and the client secret are not even
fetched. The full row is read later only when a refresh or a failover is really needed.

Nothing is cached between requests, so a revoked key, a disabled connection or a `needs_reauth`
grant takes effect on the very next request. What is cached is the statement's text: the ORM
builds it (so it follows the models and each database's dialect), but compiling it costs more
than everything else on this path together, so it is compiled once per database connection
object (one per thread) and re-executed with new parameters.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.models import Exists, OuterRef, Subquery

from connections.models import ApiKey, Connection, Provider

# What serving a valid token reads (`connections.serving.can_serve_at_once`: the status,
# `refresh_margin`, `access_token_valid_for`; the payload: `token_type`, `reauthorize_by`), plus
# `backup_id` and `failed_over_to_id` for failover and failback. A field read there and missing
# here costs a query per request: tests/connections/test_token_hot_path.py counts them.
CONNECTION_FIELDS = frozenset(
    {
        "id",
        "slug",
        "provider_id",
        "backup_id",
        "failed_over_to_id",
        "access_token",
        "token_type",
        "access_expires_at",
        "refresh_expires_at",
        "refresh_hard_expires_at",
        "refresh_expiry_override",
        "refresh_expiry_learned",
        "authorized_at",
        "last_refreshed_at",
        "refresh_threshold",
        "status",
    }
)
PROVIDER_FIELDS = frozenset({"id", "refresh_token_expiry"})
KEY_COLUMNS = ("api_key_id", "api_key_all_connections", "api_key_last_used_at", "api_key_linked")
# Placeholders the statement is compiled with; each is replaced by the request's value.
_SLUG, _KEY_HASH = "\x00slug", "\x00key_hash"


@dataclass(frozen=True)
class TokenLookup:
    """One request's view of a connection and of the API key that asks for it.

    `connection` is a deferred instance holding only `CONNECTION_FIELDS` (any other attribute
    costs a query); `key` is None when no active key has that hash.
    """

    connection: Connection
    key: ApiKey | None
    key_allowed: bool


def _ordered(model: type[Any], names: frozenset[str]) -> list[str]:
    # Model.from_db takes the loaded values in the order of the model's concrete fields.
    return [f.attname for f in model._meta.concrete_fields if f.attname in names]


@dataclass(frozen=True)
class _Statement:
    sql: str
    params: tuple[Any, ...]
    compiler: Any
    converters: dict[int, Any]
    connection_fields: list[str]
    provider_fields: list[str]

    def bind(self, *, slug: str, key_hash: str) -> list[Any]:
        values = {_SLUG: slug, _KEY_HASH: key_hash}
        return [values.get(p, p) if isinstance(p, str) else p for p in self.params]


def _compile(using: str) -> _Statement:
    keys = ApiKey.objects.active().filter(key_hash=_KEY_HASH)
    links = ApiKey.connections.through.objects.filter(
        connection_id=OuterRef("pk"), apikey__key_hash=_KEY_HASH, apikey__revoked_at__isnull=True
    )
    connection_fields = _ordered(Connection, CONNECTION_FIELDS)
    provider_fields = _ordered(Provider, PROVIDER_FIELDS)
    queryset = (
        Connection.objects.using(using)
        .filter(slug=_SLUG)
        .order_by()
        .annotate(
            api_key_id=Subquery(keys.values("pk")[:1]),
            api_key_all_connections=Subquery(keys.values("all_connections")[:1]),
            api_key_last_used_at=Subquery(keys.values("last_used_at")[:1]),
            api_key_linked=Exists(links),
        )
        .values_list(
            *connection_fields,
            *(f"provider__{name}" for name in provider_fields if name != "id"),
            *KEY_COLUMNS,
        )
    )
    compiler = queryset.query.get_compiler(using=using)
    sql, params = compiler.as_sql()
    if _SLUG not in params or _KEY_HASH not in params:
        raise RuntimeError("the token lookup statement lost a parameter")
    converters = compiler.get_converters([column for column, _, _ in compiler.select])
    return _Statement(sql, tuple(params), compiler, converters, connection_fields, provider_fields)


_compiled = threading.local()


def _statement(using: str) -> _Statement:
    """The compiled statement for this thread's connection object of `using`."""
    db = connections[using]
    cached = getattr(_compiled, using, None)
    if cached is None or cached[0] is not db:
        cached = (db, _compile(using))
        setattr(_compiled, using, cached)
    return cached[1]


def lookup_token(*, slug: str, key_hash: str, using: str = "default") -> TokenLookup | None:
    """Read the connection `slug` and the active key with `key_hash` (one query); None when no
    connection has that slug."""
    statement = _statement(using)
    with connections[using].cursor() as cursor:
        cursor.execute(statement.sql, statement.bind(slug=slug, key_hash=key_hash))
        row = cursor.fetchone()
    if row is None:
        return None
    if statement.converters:
        row = next(statement.compiler.apply_converters([row], statement.converters))
    width = len(statement.connection_fields)
    connection = Connection.from_db(using, statement.connection_fields, row[:width])
    end = width + len(statement.provider_fields) - 1  # the provider's id is the connection's
    provider_values = [connection.provider_id, *row[width:end]]
    provider = Provider.from_db(using, statement.provider_fields, provider_values)
    Connection._meta.get_field("provider").set_cached_value(connection, provider)
    key_id, all_connections, last_used_at, linked = row[end:]
    if key_id is None:
        return TokenLookup(connection=connection, key=None, key_allowed=False)
    key = ApiKey.from_db(
        using, ["id", "all_connections", "last_used_at"], [key_id, all_connections, last_used_at]
    )
    return TokenLookup(connection=connection, key=key, key_allowed=bool(all_connections or linked))
