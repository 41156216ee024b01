"""Single flight under a thundering herd: N callers find the same access token expired.

engine: every caller goes through `lifecycle.get_access_token` (lease, one provider call).
naive:  every caller sends the stored refresh token to the provider itself (`oauth.refresh`),
        as code without single flight would.
Each mode runs twice: a burst (all callers released at once) and staggered (callers spread
over a few provider round trips, like pipelines waking a little apart). django-oauth-toolkit
answers requests that raced through validation together with the same rotation, so a pure
burst looks harmless there; a caller arriving after the rotation committed reuses a
rotated-away refresh token, and reuse protection revokes the whole grant, winners included.
A caller "got a working token" when the provider's userinfo endpoint accepts it afterwards.
"""

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import requests
from django.conf import settings
from django.db import connection as db_connection
from django.test import Client
from django.utils import timezone

from connections import oauth
from connections.lifecycle import TokenUnavailable, client_for, get_access_token
from connections.links import build_reauth_link
from connections.models import Connection, Provider
from tests.authserver.harness import AuthServer


@dataclass
class Result:
    mode: str
    callers: int
    endpoint_calls: int
    distinct_tokens: int
    working_callers: int
    errors: int
    wall_seconds: float
    error_codes: str = ""


def authorize(server: AuthServer, slug: str) -> Connection:
    """A connection authorized through the real flow: link → consent → callback."""
    provider, _ = Provider.objects.get_or_create(
        slug="bench-auth",
        defaults={
            "name": "Bench authorization server",
            "issuer": server.issuer,
            "authorize_url": server.authorize_url,
            "token_url": server.token_url,
            "userinfo_url": server.userinfo_url,
            "default_scopes": "openid read offline_access",
            "extra_authorize_params": {"prompt": "consent"},
        },
    )
    client_id, client_secret = server.register_client(settings.SITE_URL + "/oauth/callback/")
    connection = Connection.objects.create(
        name=slug, slug=slug, provider=provider, client_id=client_id, client_secret=client_secret
    )
    browser = Client()
    response = browser.get(build_reauth_link(connection).removeprefix(settings.SITE_URL))
    callback = server.consent(response["Location"], username="alice")
    done = browser.get(callback.removeprefix(settings.SITE_URL))
    if done.status_code != 200:
        raise RuntimeError(f"authorization failed: {done.status_code}")
    return Connection.objects.select_related("provider").get(pk=connection.pk)


def expire(connection: Connection) -> None:
    now = timezone.now()
    Connection.objects.filter(pk=connection.pk).update(
        access_expires_at=now, last_refreshed_at=now - timedelta(hours=1)
    )


def herd(
    callers: int, call: Callable[[], str], *, spread: float
) -> tuple[list[str], list[str], float]:
    """Run `call` in `callers` threads released together, the i-th after i/callers * `spread`
    seconds; return the tokens, the error codes and the wall time."""
    barrier = threading.Barrier(callers + 1)
    tokens: list[str] = []
    errors: list[str] = []

    def worker(delay: float) -> None:
        try:
            barrier.wait(timeout=30)
            time.sleep(delay)
            tokens.append(call())
        except (oauth.OAuthError, TokenUnavailable) as exc:
            errors.append(getattr(exc, "code", type(exc).__name__))
        finally:
            db_connection.close()

    threads = [
        threading.Thread(target=worker, args=(i * spread / callers,)) for i in range(callers)
    ]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=30)
    started = time.monotonic()
    for thread in threads:
        thread.join(60)
    return tokens, errors, time.monotonic() - started


def count_working(server: AuthServer, tokens: list[str]) -> int:
    works: dict[str, bool] = {}
    for token in set(tokens):
        response = requests.get(
            server.userinfo_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        works[token] = response.status_code == 200
    return sum(works[token] for token in tokens)


def measure(
    server: AuthServer, mode: str, callers: int, call: Callable[[], str], *, spread: float = 0
) -> Result:
    before = server.stats()["refresh_calls"]
    tokens, errors, wall = herd(callers, call, spread=spread)
    return Result(
        mode=mode,
        callers=callers,
        endpoint_calls=server.stats()["refresh_calls"] - before,
        distinct_tokens=len(set(tokens)),
        working_callers=count_working(server, tokens),
        errors=len(errors),
        wall_seconds=wall,
        error_codes=", ".join(f"{code} x{n}" for code, n in Counter(errors).most_common()),
    )


def engine_call(connection: Connection) -> Callable[[], str]:
    expire(connection)
    return lambda: get_access_token(connection).access_token


def naive_call(connection: Connection) -> Callable[[], str]:
    client, refresh_token = client_for(connection), connection.refresh_token
    return lambda: oauth.refresh(client, refresh_token=refresh_token).access_token


def run(server: AuthServer, *, callers: int = 50, latency: float = 0.1) -> list[Result]:
    server.reset()
    spread = 4 * latency
    connections = {name: authorize(server, f"bench-{name}") for name in ("e1", "n1", "e2", "n2")}
    server.set_latency(latency)
    results = [
        measure(server, "engine", callers, engine_call(connections["e1"])),
        measure(server, "naive", callers, naive_call(connections["n1"])),
        measure(server, "engine", callers, engine_call(connections["e2"]), spread=spread),
        measure(server, "naive", callers, naive_call(connections["n2"]), spread=spread),
    ]
    server.set_latency(0)

    print(
        f"\nsingle flight: {callers} callers, one expired token, {latency:.2f} s provider latency"
    )
    header = ("mode", "arrival", "callers", "token calls", "distinct", "working", "errors")
    print("  ".join(f"{h:>11}" for h in header) + f"  {'wall s':>8}")
    for r, arrival in zip(results, ("burst", "burst", "staggered", "staggered"), strict=True):
        row = (r.mode, arrival, r.callers, r.endpoint_calls, r.distinct_tokens)
        row += (r.working_callers, r.errors)
        line = "  ".join(f"{v:>11}" for v in row) + f"  {r.wall_seconds:>8.2f}"
        print(line + (f"  ({r.error_codes})" if r.error_codes else ""))
    for arrival, (engine, naive) in (("burst", results[:2]), ("staggered", results[2:])):
        calls_ratio = naive.endpoint_calls / max(1, engine.endpoint_calls)
        print(
            f"{arrival:>9}: naive makes {calls_ratio:.0f}x "
            f"the token-endpoint calls in {naive.wall_seconds / engine.wall_seconds:.2f}x the "
            f"wall time; working tokens {engine.working_callers}/{callers} with the engine, "
            f"{naive.working_callers}/{callers} naive"
        )
    return results
