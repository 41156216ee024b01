"""The token endpoint's hot path: one SQL statement per request, compiled once.

`GET /api/v1/connections/<slug>/token` is what every pipeline run calls, so it should cost about
what Django costs to answer the same URL with 401. One statement authenticates the API key (by
its SHA-256), checks its scope (all connections, or the key's M2M row) and reads only the columns
that serving needs: the answer, the validity check, the reauthorize-by date and the failover
state. Only the access token is decrypted; the refresh token and the client secret are not even
fetched. The full row is read later only when a refresh or a failover is really needed.

Nothing is cached between requests, so a revoked key, a disabled connection or a `needs_reauth`
grant takes effect on the very next request. What is cached is the statement: its text is built
from the models' metadata (tables and columns quoted by the backend, so it follows the models on
SQLite and PostgreSQL alike) and its values go through the ORM's own converters, but it is put
together once per database connection object (one per thread) and re-executed with new
parameters. It is written by hand rather than by the ORM because the ORM can only reach the key
through three scalar subqueries, and a short statement is also a cheap one to hand the driver.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.models import DEFERRED

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


def _slots(model: type[Any], names: list[str]) -> tuple[int, ...]:
    """Where each loaded value goes among the model's concrete fields: `Model.from_db` given a
    full row skips matching names against every field (60 of them for a connection)."""
    attnames = [f.attname for f in model._meta.concrete_fields]
    return tuple(attnames.index(name) for name in names)


def _instance(model: type[Any], using: str, names: list[str], slots: tuple[int, ...], values):
    row = [DEFERRED] * len(model._meta.concrete_fields)
    for slot, value in zip(slots, values, strict=True):
        row[slot] = value
    return model.from_db(using, names, row)


@dataclass(frozen=True)
class _Statement:
    sql: str
    driver_sql: str | None
    compiler: Any  # any compiler of this database: `apply_converters` needs one
    converters: dict[int, Any]
    connection_fields: list[str]
    provider_fields: list[str]
    connection_slots: tuple[int, ...]
    provider_slots: tuple[int, ...]


def _columns(model: type[Any]) -> dict[str, str]:
    return {f.attname: f.column for f in model._meta.concrete_fields}


def _converters(using: str, queryset: Any, offset: int) -> tuple[Any, dict[int, Any]]:
    """The ORM's converters for the columns of `queryset.values_list(…)`, shifted by `offset`."""
    compiler = queryset.query.get_compiler(using=using)
    compiler.setup_query()
    converters = compiler.get_converters([column for column, _, _ in compiler.select])
    return compiler, {index + offset: value for index, value in converters.items()}


def _compile(using: str) -> _Statement:
    quote = connections[using].ops.quote_name
    connection_fields = _ordered(Connection, CONNECTION_FIELDS)
    provider_fields = _ordered(Provider, PROVIDER_FIELDS)
    provider_columns = [name for name in provider_fields if name != "id"]
    conn, prov, keys = _columns(Connection), _columns(Provider), _columns(ApiKey)
    link = ApiKey.connections.through
    link_columns = {f.attname: f.column for f in link._meta.concrete_fields}
    select = [
        *(f"c.{quote(conn[name])}" for name in connection_fields),
        *(f"p.{quote(prov[name])}" for name in provider_columns),
        *(f"k.{quote(keys[name])}" for name in ("id", "all_connections", "last_used_at")),
        (
            f"EXISTS (SELECT 1 FROM {quote(link._meta.db_table)} l "
            f"WHERE l.{quote(link_columns['apikey_id'])} = k.{quote(keys['id'])} "
            f"AND l.{quote(link_columns['connection_id'])} = c.{quote(conn['id'])})"
        ),
    ]
    sql = (
        f"SELECT {', '.join(select)} "
        f"FROM {quote(Connection._meta.db_table)} c "
        f"INNER JOIN {quote(Provider._meta.db_table)} p "
        f"ON p.{quote(prov['id'])} = c.{quote(conn['provider_id'])} "
        f"LEFT JOIN {quote(ApiKey._meta.db_table)} k "
        f"ON k.{quote(keys['key_hash'])} = %s AND k.{quote(keys['revoked_at'])} IS NULL "
        f"WHERE c.{quote(conn['slug'])} = %s"
    )
    compiler, converters = _converters(
        using,
        Connection.objects.values_list(
            *connection_fields, *(f"provider__{name}" for name in provider_columns)
        ),
        0,
    )
    _, key_converters = _converters(
        using,
        ApiKey.objects.values_list("id", "all_connections", "last_used_at"),
        len(connection_fields) + len(provider_columns),
    )
    return _Statement(
        sql,
        _driver_sql(connections[using].vendor, sql),
        compiler,
        converters | key_converters,
        connection_fields,
        provider_fields,
        _slots(Connection, connection_fields),
        _slots(Provider, provider_fields),
    )


def _driver_sql(vendor: str, sql: str) -> str | None:
    """The statement in the driver's own placeholder style, for the backends this runs on."""
    if vendor == "sqlite":
        return sql.replace("%s", "?")
    if vendor == "postgresql":
        return sql
    return None


def _fetch_one(db: Any, statement: _Statement, params: tuple[str, str]) -> tuple | None:
    if statement.driver_sql is None or db.queries_logged or db.execute_wrappers:
        # DEBUG, a test counting queries, or an instrumented connection: through Django's
        # cursor, so that the query is seen.
        with db.cursor() as cursor:
            cursor.execute(statement.sql, params)
            return cursor.fetchone()
    # Otherwise straight to the driver: Django's cursor wrapper (placeholder rewriting, a
    # wrapper per call) costs about as much as this indexed query itself. What it guards is
    # kept: the connection is opened and validated the same way, errors come out as Django's.
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    db.validate_no_broken_transaction()
    with db.wrap_database_errors:
        cursor = db.connection.cursor()
        try:
            cursor.execute(statement.driver_sql, params)
            return cursor.fetchone()
        finally:
            cursor.close()


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
    row = _fetch_one(connections[using], statement, (key_hash, slug))
    if row is None:
        return None
    if statement.converters:
        row = next(statement.compiler.apply_converters([row], statement.converters))
    width = len(statement.connection_fields)
    connection = _instance(
        Connection, using, statement.connection_fields, statement.connection_slots, row[:width]
    )
    end = width + len(statement.provider_fields) - 1  # the provider's id is the connection's
    provider_values = [connection.provider_id, *row[width:end]]
    provider = _instance(
        Provider, using, statement.provider_fields, statement.provider_slots, provider_values
    )
    Connection._meta.get_field("provider").set_cached_value(connection, provider)
    key_id, all_connections, last_used_at, linked = row[end:]
    if key_id is None:
        return TokenLookup(connection=connection, key=None, key_allowed=False)
    key = ApiKey.from_db(
        using, ["id", "all_connections", "last_used_at"], [key_id, all_connections, last_used_at]
    )
    return TokenLookup(connection=connection, key=key, key_allowed=bool(all_connections or linked))
