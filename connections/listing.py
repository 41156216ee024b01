"""Pages of `GET /api/v1/connections`: keyset pagination by slug, status filters, one query.

A page is the connections after a boundary slug, in slug order (slugs are unique, so the order
is total and a connection added or removed between two pages never shifts the others, as an
OFFSET would). The boundary travels as an opaque cursor inside the answer's `next` URL: clients
follow `next` and never build one. Only the columns the summary shows are read: a list of
10,000 connections neither fetches nor decrypts a single token or secret.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from django.http import QueryDict

from connections.models import ApiKey, Connection
from connections.serializers import SUMMARY_FIELDS
from connections.services import ServiceError

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
STATUSES = tuple(Connection.Status.values)
# What Django's `<slug:…>` converter and SlugField accept: every boundary a cursor may carry.
_SLUG = re.compile(r"[-a-zA-Z0-9_]+")
# ASCII digits only, and few of them (str.isdigit() accepts "²"; int() refuses 4,300 digits).
_DIGITS = re.compile(r"[0-9]{1,6}")


@dataclass(frozen=True)
class ListQuery:
    statuses: tuple[str, ...] = ()
    limit: int = DEFAULT_PAGE_SIZE
    after: str | None = None


@dataclass(frozen=True)
class Page:
    connections: list[Connection]
    # The cursor of the next page; None on the last one.
    next_cursor: str | None


def encode_cursor(slug: str) -> str:
    return base64.urlsafe_b64encode(slug.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The boundary slug inside `cursor`; ServiceError for anything this API did not issue."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        slug = raw.decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        slug = ""
    if not _SLUG.fullmatch(slug):
        raise ServiceError(
            "cursor is not one this API issued: follow the `next` URL of the previous page "
            "as given.",
            field="cursor",
        )
    return slug


def parse_list_query(params: QueryDict) -> ListQuery:
    """`?status=active,expiring&limit=N&cursor=…` → ListQuery; ServiceError on a bad value."""
    statuses: list[str] = []
    for value in params.getlist("status"):
        for status in value.split(","):
            if status not in STATUSES:
                raise ServiceError(
                    f"status {status!r} is not one of {', '.join(STATUSES)} "
                    "(comma-separated for several).",
                    field="status",
                )
            if status not in statuses:
                statuses.append(status)

    limit = DEFAULT_PAGE_SIZE
    raw_limit = params.get("limit")
    if raw_limit is not None:
        if not _DIGITS.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_PAGE_SIZE:
            raise ServiceError(
                f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}.", field="limit"
            )
        limit = int(raw_limit)

    raw_cursor = params.get("cursor")
    after = decode_cursor(raw_cursor) if raw_cursor is not None else None
    return ListQuery(statuses=tuple(statuses), limit=limit, after=after)


def list_connections(*, key: ApiKey, query: ListQuery) -> Page:
    """One page of the connections `key` may use, in slug order: one query whatever the size."""
    connections = (
        Connection.objects.select_related("provider", "backup")
        .only(*SUMMARY_FIELDS)
        .order_by("slug")
    )
    if not key.all_connections:
        connections = connections.filter(api_keys=key)
    if query.statuses:
        connections = connections.filter(status__in=query.statuses)
    if query.after is not None:
        connections = connections.filter(slug__gt=query.after)
    # One row more than the page tells whether a next page exists, without a COUNT.
    rows = list(connections[: query.limit + 1])
    if len(rows) <= query.limit:
        return Page(connections=rows, next_cursor=None)
    rows = rows[: query.limit]
    return Page(connections=rows, next_cursor=encode_cursor(rows[-1].slug))
