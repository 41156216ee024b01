"""Pages of `GET /api/v1/connections`: keyset pagination by slug, status filters, one query.

A page is the connections after a boundary slug, in slug order (slugs are unique, so the order
is total and a connection added or removed between two pages never shifts the others, as an
OFFSET would). The boundary travels as an opaque cursor inside the answer's `next` URL: clients
follow `next` and never build one. Only the columns the summary shows are read: a list of
10,000 connections neither fetches nor decrypts a single token or secret.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from math import ceil

from django.db import models
from django.db.models import (
    Case,
    Count,
    DateTimeField,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, NullIf
from django.http import QueryDict
from django.utils import timezone

from connections.models import (
    ApiKey,
    Connection,
    ConsumerSchedule,
    HealthCheck,
    Provider,
    RefreshAttempt,
    RefreshExpiry,
)
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
    except ValueError:  # not base64 (binascii.Error), not ASCII, not an ASCII slug inside
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


# --- the dashboard's list (`/`) -------------------------------------------------------------

DASHBOARD_PAGE_SIZE = 50
# The summary tiles, in the order they are shown; each is a status filter.
TILE_STATUSES = (
    Connection.Status.ACTIVE,
    Connection.Status.EXPIRING,
    Connection.Status.NEEDS_REAUTH,
    Connection.Status.DEGRADED,
    Connection.Status.PENDING,
)
BROKEN_STATUSES = (Connection.Status.NEEDS_REAUTH, Connection.Status.DEGRADED)
# What a dashboard row shows, for `.only()` with `select_related("provider", "backup")`: no token
# or secret column is ever read (nor decrypted). `DEADLINE_FIELDS` for the reauthorize-by date.
DASHBOARD_FIELDS = (
    "slug",
    "name",
    "status",
    "status_reason",
    "status_changed_at",
    "account_label",
    "account_id",
    "access_expires_at",
    "last_refreshed_at",
    "failed_over_to",
    "provider",
    "provider__slug",
    "provider__name",
    "backup",
    "backup__slug",
    "backup__name",
    *Connection.DEADLINE_FIELDS,
)


@dataclass(frozen=True)
class DashboardQuery:
    search: str = ""
    statuses: tuple[str, ...] = ()
    provider: str = ""
    page: int = 1

    @property
    def is_filtered(self) -> bool:
        return bool(self.search or self.statuses or self.provider)


@dataclass(frozen=True)
class DashboardPage:
    rows: list[Connection]
    # Connections per status over the whole fleet (every status, also those without a tile).
    tiles: dict[str, int]
    # Connections matching the query, and where this page sits among them.
    matching: int
    page: int
    pages: int
    providers: list[tuple[str, str]]

    @property
    def fleet_size(self) -> int:
        return sum(self.tiles.values())


def parse_dashboard_query(params: QueryDict) -> DashboardQuery:
    """`?q=…&status=…&provider=…&page=N` from the list's GET form and links. Lenient, as a page
    is: an unknown status or a page number that is not one is ignored, never an error page."""
    statuses: list[str] = []
    for value in params.getlist("status"):
        for status in value.split(","):
            if status in STATUSES and status not in statuses:
                statuses.append(status)
    raw_page = params.get("page", "")
    page = int(raw_page) if _DIGITS.fullmatch(raw_page) and int(raw_page) > 0 else 1
    return DashboardQuery(
        search=params.get("q", "").strip()[:200],
        statuses=tuple(statuses),
        provider=params.get("provider", "").strip()[:100],
        page=page,
    )


def with_deadline(connections: QuerySet[Connection]) -> QuerySet[Connection]:
    """Annotate `deadline_at`: `Connection.reauthorization_deadline`'s date in SQL, to sort on.

    The earlier of the hard cap and the refresh-token expiry, the latter only while the token's
    kind (learned, else the connection's override, else the provider's policy) is absolute or
    unknown. tests/connections/test_dashboard_listing.py holds it to the property, case by case.
    """
    kind = Coalesce(
        NullIf(F("refresh_expiry_learned"), Value("")),
        NullIf(F("refresh_expiry_override"), Value("")),
        F("provider__refresh_token_expiry"),
    )
    return connections.alias(
        deadline_kind=kind,
        deadline_expiry=Case(
            When(
                refresh_expires_at__isnull=False,
                deadline_kind__in=(RefreshExpiry.ABSOLUTE, RefreshExpiry.UNKNOWN),
                then=F("refresh_expires_at"),
            ),
            default=None,
        ),
    ).annotate(
        # LEAST() ignores NULLs on PostgreSQL but not SQLite's MIN(): spelled out.
        deadline_at=Case(
            When(refresh_hard_expires_at__isnull=True, then=F("deadline_expiry")),
            When(deadline_expiry__isnull=True, then=F("refresh_hard_expires_at")),
            When(
                refresh_hard_expires_at__lt=F("deadline_expiry"),
                then=F("refresh_hard_expires_at"),
            ),
            default=F("deadline_expiry"),
            output_field=DateTimeField(),
        )
    )


def _urgency_order(connections: QuerySet[Connection]) -> QuerySet[Connection]:
    """Broken first (needs reauth, degraded), then the soonest reauthorize-by date (none last),
    then by name; disabled connections at the very end."""
    rank = Case(
        When(status__in=BROKEN_STATUSES, then=Value(0)),
        When(status=Connection.Status.DISABLED, then=Value(2)),
        default=Value(1),
    )
    return (
        with_deadline(connections)
        .alias(urgency=rank)
        .order_by("urgency", F("deadline_at").asc(nulls_last=True), "name", "pk")
    )


def _filtered(query: DashboardQuery) -> QuerySet[Connection]:
    connections = Connection.objects.all()
    if query.search:
        connections = connections.filter(
            Q(name__icontains=query.search) | Q(slug__icontains=query.search)
        )
    if query.statuses:
        connections = connections.filter(status__in=query.statuses)
    if query.provider:
        connections = connections.filter(provider__slug=query.provider)
    return connections


def _latest(model: type[models.Model], field: str, order: str) -> Subquery:
    rows = model.objects.filter(connection=OuterRef("pk")).order_by(order)
    return Subquery(rows.values(field)[:1])


def _row_facts(connections: QuerySet[Connection], *, now: datetime) -> QuerySet[Connection]:
    """The last refresh attempt, the last health check and the next consumer run, as
    correlated subqueries on their (connection, time) indexes: no query per row."""
    return connections.annotate(
        last_attempt_at=_latest(RefreshAttempt, "started_at", "-started_at"),
        last_attempt_outcome=_latest(RefreshAttempt, "outcome", "-started_at"),
        last_attempt_error=_latest(RefreshAttempt, "error_code", "-started_at"),
        last_check_at=_latest(HealthCheck, "checked_at", "-checked_at"),
        last_check_ok=_latest(HealthCheck, "ok", "-checked_at"),
        last_check_error=_latest(HealthCheck, "error_code", "-checked_at"),
        next_run_at=Subquery(
            ConsumerSchedule.objects.filter(connection=OuterRef("pk"), next_run_at__gt=now)
            .order_by("next_run_at")
            .values("next_run_at")[:1]
        ),
        next_run_label=Subquery(
            ConsumerSchedule.objects.filter(connection=OuterRef("pk"), next_run_at__gt=now)
            .order_by("next_run_at")
            .values("label")[:1]
        ),
    )


def count_by_status() -> dict[str, int]:
    """Connections per status, whole fleet, in ONE aggregate query (the summary tiles)."""
    counts = Connection.objects.aggregate(
        **{status: Count("pk", filter=Q(status=status)) for status in STATUSES}
    )
    return {status: counts[status] or 0 for status in STATUSES}


def dashboard_page(*, query: DashboardQuery, now: datetime | None = None) -> DashboardPage:
    """One page of the dashboard's list, most urgent first, in four queries whatever the size:
    the tiles' counts, the page's ids (with the number matching, by a window COUNT), the page's
    rows with their facts, and the providers for the filter. Never reads a token or secret."""
    now = now or timezone.now()
    tiles = count_by_status()
    ordered = _urgency_order(_filtered(query)).annotate(matching=Window(Count("pk")))
    page = query.page
    offset = (page - 1) * DASHBOARD_PAGE_SIZE
    head = list(ordered.values_list("pk", "matching")[offset : offset + DASHBOARD_PAGE_SIZE])
    if not head and page > 1:
        # Past the end (a link from a longer list): the last page instead.
        matching = _filtered(query).count()
        page = max(1, ceil(matching / DASHBOARD_PAGE_SIZE))
        offset = (page - 1) * DASHBOARD_PAGE_SIZE
        head = list(ordered.values_list("pk", "matching")[offset : offset + DASHBOARD_PAGE_SIZE])
    matching = head[0][1] if head else 0
    ids = [pk for pk, _ in head]
    rows: list[Connection] = []
    if ids:
        fetched = _row_facts(
            with_deadline(
                Connection.objects.filter(pk__in=ids)
                .select_related("provider", "backup")
                .only(*DASHBOARD_FIELDS)
            ),
            now=now,
        )
        by_pk = {row.pk: row for row in fetched}
        rows = [by_pk[pk] for pk in ids if pk in by_pk]
    providers = list(Provider.objects.order_by("name").values_list("slug", "name"))
    return DashboardPage(
        rows=rows,
        tiles=tiles,
        matching=matching,
        page=page,
        pages=max(1, ceil(matching / DASHBOARD_PAGE_SIZE)),
        providers=providers,
    )
