"""Operators' endpoints: `/metrics` (Prometheus) and `/healthz`.

`/metrics` is for a Bearer API key allowed metrics (`manage.py apikey create NAME --metrics`) or
a client address in `TOKENADMIN_METRICS_ALLOWED_IPS` (loopback by default). The address is the
TCP peer's; `X-Forwarded-For` counts only with `TRUST_X_FORWARDED_FOR`, and then only its last
entry, the one our own proxy appended. A request that came through a proxy we were not told to
trust is never let in by address: behind a proxy on the same host every request comes from
127.0.0.1, and the allow-list must not open /metrics to the internet.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from functools import lru_cache

from django.conf import settings
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_GET
from prometheus_client.exposition import choose_encoder

from connections import metrics as tokenadmin_metrics
from connections.models import ApiKey
from connections.system_health import check_system

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when every check is healthy, else 503. `?ready`: the database only, for probes that
    ask whether this web process can serve (the scheduler's health is not the web's)."""
    checks = check_system(ready_only="ready" in request.GET)
    healthy = all(check.healthy for check in checks.values())
    body = {"status": "ok" if healthy else "error"}
    body |= {name: check.as_json() for name, check in checks.items()}
    return JsonResponse(body, status=200 if healthy else 503)


@require_GET
@never_cache
@gzip_page
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = _refuse_metrics(request)
    if refusal is not None:
        return refusal
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(tokenadmin_metrics.REGISTRY), content_type=content_type)


def _refuse_metrics(request: HttpRequest) -> JsonResponse | None:
    if _address_allowed(request):
        return None
    scheme, _, raw_key = request.headers.get("Authorization", "").partition(" ")
    raw_key = raw_key.strip()
    if scheme.lower() != "bearer" or not raw_key:
        return _refusal(
            401,
            "unauthorized",
            "Send an API key allowed metrics as 'Authorization: Bearer <key>' "
            "(manage.py apikey create NAME --metrics), or scrape from an address in "
            "TOKENADMIN_METRICS_ALLOWED_IPS.",
        )
    key = (
        ApiKey.objects.active()
        .filter(key_hash=ApiKey.hash_key(raw_key))
        .values_list("pk", "allow_metrics")
        .first()
    )
    if key is None:
        return _refusal(401, "unauthorized", "This API key is not valid.")
    pk, allow_metrics = key
    if not allow_metrics:
        return _refusal(403, "forbidden", "This API key may not read metrics.")
    _record_use(pk)
    return None


def _refusal(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse({"error": code, "message": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="tokenadmin"'
    return response


def _record_use(pk: int) -> None:
    # As the token API does: at most one write a minute per key, so scrapes do not queue writes.
    now = timezone.now()
    ApiKey.objects.filter(pk=pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timedelta(minutes=1))
    ).update(last_used_at=now)


def client_address(request: HttpRequest) -> IpAddress | None:
    """The client's address: the TCP peer, or our proxy's last X-Forwarded-For entry when
    TRUST_X_FORWARDED_FOR says a proxy of ours sets it. None when it cannot be trusted."""
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.headers.get("X-Forwarded-For", "")
        raw = forwarded.rsplit(",", 1)[-1].strip() if forwarded else ""
    elif any(header in request.headers for header in PROXY_HEADERS):
        return None
    else:
        raw = request.META.get("REMOTE_ADDR", "")
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _address_allowed(request: HttpRequest) -> bool:
    address = client_address(request)
    if address is None:
        return False
    networks = allowed_networks(tuple(settings.TOKENADMIN["METRICS_ALLOWED_IPS"]))
    return any(address in network for network in networks)


@lru_cache(maxsize=8)
def allowed_networks(entries: tuple[str, ...]) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)
