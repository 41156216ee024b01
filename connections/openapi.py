"""The OpenAPI 3.1 document of the token API, served at `GET /api/v1/openapi.json`.

Built from the same constants the views use (statuses, page sizes, the `min_ttl` range, the
reasons a token cannot be served), so a renamed status or a new limit changes the document too.
tests/test_openapi.py keeps it true: it is valid OpenAPI 3.1, names exactly the `/api/v1` routes
in `connections/urls.py`, and the real views' answers validate against it. Success bodies list
every property (`additionalProperties: false`), so a field added to an answer fails that test
until it is documented here; error bodies may grow (`{error, message, ...}`).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from connections.lifecycle import (
    ConnectionDisabled,
    NeedsReauth,
    NotAuthorized,
    ProviderUnavailable,
)
from connections.listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, STATUSES
from connections.models.connection import DeadlineSource
from connections.models.provider import ExpirySource, RefreshExpiry

Schema = dict[str, Any]

MIN_TTL_MAX = 86400  # connections.api._parse_min_ttl
# RFC 3339 date-time in UTC, as connections.serializers.iso writes it; null when unknown.
TIMESTAMP: Schema = {"type": ["string", "null"], "format": "date-time"}
SLUG_PATTERN = "^[-a-zA-Z0-9_]+$"  # Django's <slug:...> path converter
STATUS_LIST_PATTERN = "^({s})(,({s}))*$".format(s="|".join(STATUSES))
# The reasons a person must act (409); ProviderUnavailable is the 503.
CONFLICT_CODES = [error.code for error in (NotAuthorized, NeedsReauth, ConnectionDisabled)]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str, **headers: Schema) -> Schema:
    response: Schema = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def _closed(properties: dict[str, Schema], *, required: list[str] | None = None) -> Schema:
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
        "additionalProperties": False,
    }


TOKEN_PROPERTIES: dict[str, Schema] = {
    "access_token": {"type": "string", "description": "Send it to the provider; never log it."},
    "token_type": {"type": "string", "examples": ["Bearer"]},
    "expires_at": TIMESTAMP | {"description": "When the access token expires; null: unknown."},
    "expires_in": {
        "type": ["integer", "null"],
        "minimum": 0,
        "description": "Seconds until `expires_at`, rounded down; null when it is unknown.",
    },
    "connection": {"type": "string", "description": "The connection asked for."},
    "served_by": {
        "type": "string",
        "description": "The connection whose token this is: a backup's slug after a failover.",
    },
    "status": {"type": "string", "enum": list(STATUSES), "description": "The asked one's."},
    "reauthorize_by": TIMESTAMP
    | {"description": "When a person must reauthorize the connection asked for; null: none known."},
}

CONNECTION_PROPERTIES: dict[str, Schema] = {
    "slug": {"type": "string", "pattern": SLUG_PATTERN},
    "name": {"type": "string"},
    "status": {"type": "string", "enum": list(STATUSES)},
    "status_reason": {"type": "string"},
    "provider": {"type": "string", "description": "The provider's slug."},
    "account": {"type": ["string", "null"], "description": "The provider account, if known."},
    "scopes": {"type": "string", "description": "Space-separated."},
    "access_expires_at": TIMESTAMP,
    "access_expiry_source": {"type": "string", "enum": list(ExpirySource.values)},
    "refresh_expires_at": TIMESTAMP,
    "refresh_expiry_source": {"type": "string", "enum": list(ExpirySource.values)},
    "refresh_expiry_kind": {"type": "string", "enum": list(RefreshExpiry.values)},
    "refresh_expiry_learned_from": {"type": ["string", "null"]},
    "refresh_hard_expires_at": TIMESTAMP,
    "reauthorize_by": TIMESTAMP,
    "reauthorize_by_source": {
        "type": "string",
        "enum": list(DeadlineSource.values),
        "description": "What `reauthorize_by` rests on, or why it is null.",
    },
    "last_refreshed_at": TIMESTAMP,
    "backup": {"type": ["string", "null"], "description": "The backup connection's slug."},
}

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "A stable code, e.g. `not_found`."},
            "message": {"type": "string", "description": "For a person."},
        },
        "additionalProperties": True,
    },
    "NextStep": {
        "description": "409: a person must act. Says who, by when and where; never a "
        "reauthorization link (the caller holds an API key, not the provider account).",
        "allOf": [_ref("Error")],
        "properties": {
            "error": {"type": "string", "enum": CONFLICT_CODES},
            "connection": {"type": "string"},
            "status": {"type": "string", "enum": list(STATUSES)},
            "status_reason": {"type": "string"},
            "reauthorize_by": TIMESTAMP,
            "reauthorize_by_source": {"type": "string", "enum": list(DeadlineSource.values)},
            "next_step": {"type": "string"},
            "dashboard_url": {"type": "string", "format": "uri"},
        },
    },
    "Token": _closed(TOKEN_PROPERTIES),
    "RejectedTokenAnswer": _closed(
        TOKEN_PROPERTIES
        | {
            "refreshed": {
                "type": "boolean",
                "description": "true: the reported token was still current and was replaced "
                "by a refresh; false: it had already been replaced, the current one is served.",
            }
        }
    ),
    "Connection": _closed(CONNECTION_PROPERTIES),
    "ConnectionPage": _closed(
        {
            "connections": {"type": "array", "items": _ref("Connection")},
            "next": {
                "type": ["string", "null"],
                "format": "uri",
                "description": "The next page's URL, to follow as given; null on the last page.",
            },
        }
    ),
    "RejectedToken": {
        "type": "object",
        "required": ["token_sha256"],
        "properties": {
            "token_sha256": {
                "type": "string",
                "pattern": "^[0-9a-f]{64}$",
                "description": "SHA-256 of the rejected access token, 64 lowercase hex digits. "
                "Never send the token itself.",
            }
        },
    },
}

RESPONSES: dict[str, Schema] = {
    "BadRequest": _json(_ref("Error"), "A parameter or the body is not valid (`bad_request`)."),
    "Unauthorized": _json(
        _ref("Error"),
        "No API key, or not a valid one (`unauthorized`).",
        **{
            "WWW-Authenticate": {"schema": {"type": "string", "const": 'Bearer realm="tokenadmin"'}}
        },
    ),
    "Forbidden": _json(_ref("Error"), "This API key may not use this connection (`forbidden`)."),
    "NotFound": _json(_ref("Error"), "No connection with this slug (`not_found`)."),
    "Conflict": _json(
        _ref("NextStep"),
        "No token can be served until a person acts: the connection was never authorized "
        "(`not_authorized`), needs reauthorization (`needs_reauth`), or was disabled by an admin "
        "(`disabled`, and then no backup is served either).",
    ),
    "ProviderUnavailable": _json(
        _ref("Error"),
        "The provider did not answer, or answered with an error that may pass "
        f"(`{ProviderUnavailable.code}`); every token is kept. Retry after the given seconds.",
        **{"Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
    ),
}

SLUG_PARAMETER: Schema = {
    "name": "slug",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": SLUG_PATTERN},
}


def _operation(operation_id: str, summary: str, ok: Schema, *errors: str, **extra: Any) -> Schema:
    responses = {"200": ok} | {
        code: {"$ref": f"#/components/responses/{name}"}
        for code, name in (
            ("400", "BadRequest"),
            ("401", "Unauthorized"),
            ("403", "Forbidden"),
            ("404", "NotFound"),
            ("409", "Conflict"),
            ("503", "ProviderUnavailable"),
        )
        if code in errors
    }
    return {"operationId": operation_id, "summary": summary, "responses": responses} | extra


PATHS: dict[str, Schema] = {
    "/api/v1/openapi.json": {
        "get": {
            "operationId": "getOpenApiDocument",
            "summary": "This document.",
            "security": [],
            "responses": {
                "200": _json({"type": "object", "required": ["openapi"]}, "OpenAPI 3.1.")
            },
        }
    },
    "/api/v1/connections": {
        "get": _operation(
            "listConnections",
            "The connections this key may use, in slug order, a page at a time.",
            _json(_ref("ConnectionPage"), "A page; follow `next` for the rest."),
            "400",
            "401",
            description="Keyset pagination: a connection added or removed between two pages "
            "never shifts the others. No token or secret is read.",
            parameters=[
                {
                    "name": "status",
                    "in": "query",
                    "description": "Only these statuses, comma-separated (the parameter may "
                    "also be repeated).",
                    "schema": {"type": "string", "pattern": STATUS_LIST_PATTERN},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_PAGE_SIZE,
                        "default": DEFAULT_PAGE_SIZE,
                    },
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "description": "Opaque, from a previous page's `next` URL; any other value "
                    "answers 400.",
                    "schema": {"type": "string", "pattern": "^[-_A-Za-z0-9]+$"},
                },
            ],
        )
    },
    "/api/v1/connections/{slug}": {
        "parameters": [SLUG_PARAMETER],
        "get": _operation(
            "getConnection",
            "One connection's status and expiry facts (never a token).",
            _json(_ref("Connection"), "The connection."),
            "401",
            "403",
            "404",
        ),
    },
    "/api/v1/connections/{slug}/token": {
        "parameters": [SLUG_PARAMETER],
        "get": _operation(
            "getToken",
            "A valid access token, refreshed first when needed.",
            _json(_ref("Token"), "A token valid for at least the refresh margin or `min_ttl`."),
            "400",
            "401",
            "403",
            "404",
            "409",
            "503",
            description="Concurrent callers share one refresh (single flight). When the "
            "connection cannot serve, its backup chain may (`served_by` names the one that "
            "did), but only backups this key may use, and never for a disabled connection. "
            "Never returns a refresh token or a client secret.",
            parameters=[
                {
                    "name": "min_ttl",
                    "in": "query",
                    "description": "Seconds the token must stay valid (capped at 90 % of the "
                    "provider's token lifetime).",
                    "schema": {"type": "integer", "minimum": 0, "maximum": MIN_TTL_MAX},
                }
            ],
        ),
    },
    "/api/v1/connections/{slug}/refresh": {
        "parameters": [SLUG_PARAMETER],
        "post": _operation(
            "refreshToken",
            "Refresh this connection's access token now (no failover).",
            _json(_ref("Token"), "The new token."),
            "401",
            "403",
            "404",
            "409",
            "503",
        ),
    },
    "/api/v1/connections/{slug}/token/rejected": {
        "parameters": [SLUG_PARAMETER],
        "post": _operation(
            "reportRejectedToken",
            "Report that a provider answered 401 to a token; get a working one.",
            _json(_ref("RejectedTokenAnswer"), "A token to use instead."),
            "400",
            "401",
            "403",
            "404",
            "409",
            "503",
            description="When the reported token is still the current one (revoked early, or "
            "a provider that states no expiry), it is refreshed once, shared with concurrent "
            "callers; otherwise the token that already replaced it is served.",
            requestBody={
                "required": True,
                "content": {"application/json": {"schema": _ref("RejectedToken")}},
            },
        ),
    },
}


@cache
def build_document() -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tokenadmin token API",
            "version": "1",
            "description": "Valid OAuth access tokens for unattended pipelines. Authenticate "
            "with an API key (`manage.py apikey create NAME --connection SLUG`) as "
            "`Authorization: Bearer <key>`. Errors are JSON `{error, message, ...}`.",
        },
        "security": [{"apiKey": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A tokenadmin API key; stored only as its SHA-256.",
                }
            },
            "schemas": SCHEMAS,
            "responses": RESPONSES,
        },
    }


@cache
def _document_bytes() -> bytes:
    return json.dumps(build_document(), indent=2).encode()


@require_GET
def openapi_document(request: HttpRequest) -> HttpResponse:
    """No API key needed: the document holds no secret and says how to get one."""
    return HttpResponse(_document_bytes(), content_type="application/json")
