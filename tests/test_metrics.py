"""`/metrics`: Prometheus text read from the database at scrape time, for a metrics key or an
allowed address. Parsed with prometheus_client's own parser."""

import gzip
import io
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import Client
from django_q.tasks import async_task
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from connections.models import (
    ApiKey,
    Connection,
    FailoverEvent,
    Provider,
    RefreshAttempt,
)
from connections.models.provider import RefreshExpiry
from tests.background.cluster import Background, authorized_connection, background
from tests.factories import ConnectionFactory, ProviderFactory, provider_for
from tests.support.polling import wait_for

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OUTSIDE = "203.0.113.7"  # TEST-NET-3: not in the default allow-list
PROJECT_ROOT = Path(__file__).resolve().parents[1]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """({family name: type}, {(sample name, labels): value}) from a scrape's body."""
    types, samples = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            sample: Sample
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return types, samples


def scrape(client: Client | None = None, **extra: str) -> tuple[dict[str, str], Samples]:
    response = (client or Client()).get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return parse(response.content.decode())


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def attempt(connection: Connection, outcome: str, duration_ms: int, error_code: str = "") -> None:
    RefreshAttempt.objects.create(
        connection=connection,
        started_at=T0 - timedelta(minutes=5),
        duration_ms=duration_ms,
        trigger=RefreshAttempt.Trigger.SWEEP,
        outcome=outcome,
        error_code=error_code,
    )


# --- values ---------------------------------------------------------------------------------------
@pytest.fixture
def known_rows(db) -> dict[str, Connection]:
    absolute = ProviderFactory(slug="xero", refresh_token_expiry=RefreshExpiry.ABSOLUTE)
    sliding = ProviderFactory(slug="google", refresh_token_expiry=RefreshExpiry.SLIDING)
    with time_machine.travel(T0, tick=False):
        nightly = ConnectionFactory(
            slug="nightly",
            provider=absolute,
            authorized=True,
            access_expires_at=T0 + timedelta(seconds=1800),
            refresh_expires_at=T0 + timedelta(days=10),
        )
        renewed = ConnectionFactory(
            slug="renewed",
            provider=sliding,
            authorized=True,
            status=Connection.Status.DEGRADED,
            access_expires_at=T0 - timedelta(seconds=60),
            refresh_expires_at=T0 + timedelta(days=60),
        )
        pending = ConnectionFactory(slug="pending", provider=absolute)
    S, P, T = RefreshAttempt.Outcome
    attempt(nightly, S, 40)
    attempt(nightly, S, 300)
    attempt(renewed, P, 120, "invalid_grant")
    attempt(renewed, T, 12_000, "timeout")
    attempt(renewed, T, 800, "timeout")
    FailoverEvent.objects.create(connection=renewed, backup=nightly, kind="failover")
    return {"nightly": nightly, "renewed": renewed, "pending": pending}


def test_it_shows_seconds_until_access_token_expiry_and_reauthorize_by(known_rows):
    with time_machine.travel(T0, tick=False):
        types, samples = scrape()
    name = "tokenadmin_connection_access_token_expires_in_seconds"
    assert types[name] == "gauge"
    assert value(samples, name, connection="nightly", provider="xero") == 1800
    assert value(samples, name, connection="renewed", provider="google") == -60
    # A pending connection has no access token: no series rather than a made-up number.
    assert value(samples, name, connection="pending", provider="xero") is None

    name = "tokenadmin_connection_reauthorize_by_seconds"
    assert value(samples, name, connection="nightly", provider="xero") == 10 * 86400
    # A sliding refresh token is renewed by use: no reauthorize-by date, so no series.
    assert value(samples, name, connection="renewed", provider="google") is None
    assert value(samples, name, connection="pending", provider="xero") is None


def test_it_shows_one_status_series_per_connection(known_rows):
    _types, samples = scrape()
    name = "tokenadmin_connection_status"
    statuses = {
        dict(labels)["connection"]: dict(labels)["status"]
        for (sample, labels) in samples
        if sample == name
    }
    assert statuses == {"nightly": "active", "renewed": "degraded", "pending": "pending"}
    assert value(samples, name, connection="renewed", provider="google", status="degraded") == 1


def test_it_counts_refresh_attempts_by_outcome_and_error_code(known_rows):
    types, samples = scrape()
    assert types["tokenadmin_refresh_attempts"] == "counter"
    name = "tokenadmin_refresh_attempts_total"
    assert value(samples, name, outcome="success", error_code="") == 2
    assert value(samples, name, outcome="permanent_error", error_code="invalid_grant") == 1
    assert value(samples, name, outcome="transient_error", error_code="timeout") == 2


def test_it_counts_failovers_by_kind_including_kinds_not_seen_yet(known_rows):
    types, samples = scrape()
    assert types["tokenadmin_failovers"] == "counter"
    assert value(samples, "tokenadmin_failovers_total", kind="failover") == 1
    assert value(samples, "tokenadmin_failovers_total", kind="failback") == 0


def test_it_buckets_refresh_latency_by_outcome(known_rows):
    types, samples = scrape()
    name = "tokenadmin_refresh_duration_seconds"
    assert types[name] == "histogram"

    def bucket(outcome: str, le: str) -> float | None:
        return value(samples, f"{name}_bucket", outcome=outcome, le=le)

    # Successes took 40 ms and 300 ms.
    assert bucket("success", "0.05") == 1
    assert bucket("success", "0.25") == 1
    assert bucket("success", "0.5") == 2
    assert bucket("success", "+Inf") == 2
    assert value(samples, f"{name}_count", outcome="success") == 2
    assert value(samples, f"{name}_sum", outcome="success") == pytest.approx(0.34)
    # Transient failures took 800 ms and 12 s (a timeout).
    assert bucket("transient_error", "1.0") == 1
    assert bucket("transient_error", "10.0") == 1
    assert bucket("transient_error", "30.0") == 2
    assert value(samples, f"{name}_sum", outcome="transient_error") == pytest.approx(12.8)
    assert bucket("permanent_error", "0.25") == 1


def test_it_answers_openmetrics_when_asked_and_gzips_when_accepted(known_rows):
    response = Client().get(
        "/metrics",
        headers={"Accept": "application/openmetrics-text", "Accept-Encoding": "gzip"},
    )
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response["Content-Encoding"] == "gzip"
    text = gzip.decompress(response.content).decode()
    assert text.endswith("# EOF\n")
    assert "tokenadmin_failovers_total" in text


def test_it_is_never_cached(known_rows):
    response = Client().get("/metrics")
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_it_answers_with_an_empty_database():
    _types, samples = scrape()
    assert value(samples, "tokenadmin_failovers_total", kind="failover") == 0
    assert not [s for s in samples if s[0].startswith("tokenadmin_connection_")]


# --- cost ---------------------------------------------------------------------------------------
def make_connections(count: int, provider: Provider) -> None:
    ConnectionFactory.create_batch(count, provider=provider, authorized=True)
    for connection in Connection.objects.all()[:count]:
        attempt(connection, RefreshAttempt.Outcome.SUCCESS, 100)
        FailoverEvent.objects.create(connection=connection, kind="failback")


@pytest.mark.parametrize("count", [2, 40])
def test_it_costs_three_queries_whatever_the_number_of_connections(
    count, db, django_assert_num_queries
):
    provider = ProviderFactory(refresh_token_expiry=RefreshExpiry.ABSOLUTE)
    make_connections(count, provider)
    # Every connection has a reauthorize-by date: its computation touches every field it needs.
    Connection.objects.update(refresh_expires_at=T0)
    with django_assert_num_queries(3) as captured:
        _types, samples = scrape()
    assert value(samples, "tokenadmin_failovers_total", kind="failback") == count
    series = [s for s in samples if s[0] == "tokenadmin_connection_reauthorize_by_seconds"]
    assert len(series) == count
    sql = " ".join(query["sql"] for query in captured.captured_queries)
    # Tokens and the client secret are never fetched, so never decrypted.
    assert "_encrypted" not in sql


# --- who may scrape -----------------------------------------------------------------------------
@pytest.fixture
def keys(db) -> dict[str, str]:
    connection = ConnectionFactory(authorized=True)
    _, metrics_key = ApiKey.issue(name="prometheus", allow_metrics=True)
    _, token_key = ApiKey.issue(name="pipeline", connections=[connection])
    revoked, revoked_key = ApiKey.issue(name="old-prometheus", allow_metrics=True)
    ApiKey.objects.filter(pk=revoked.pk).update(revoked_at=T0)
    return {"metrics": metrics_key, "token": token_key, "revoked": revoked_key}


def get_from(address: str, key: str | None = None, **headers: str):
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return Client(REMOTE_ADDR=address).get("/metrics", headers=headers)


def test_it_refuses_a_request_without_a_key_from_outside_the_allow_list(keys):
    response = get_from(OUTSIDE)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response["WWW-Authenticate"] == 'Bearer realm="tokenadmin"'


def test_it_refuses_a_key_not_allowed_metrics(keys):
    response = get_from(OUTSIDE, keys["token"])
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "message": "This API key may not read metrics.",
    }


def test_it_refuses_unknown_and_revoked_keys(keys):
    assert get_from(OUTSIDE, "tka_not-a-key").status_code == 401
    assert get_from(OUTSIDE, keys["revoked"]).status_code == 401


def test_it_serves_a_key_allowed_metrics_from_anywhere(keys):
    response = get_from(OUTSIDE, keys["metrics"])
    assert response.status_code == 200
    parse(response.content.decode())
    assert ApiKey.objects.get(name="prometheus").last_used_at is not None


def test_it_serves_loopback_without_a_key_by_default(keys):
    assert get_from("127.0.0.1").status_code == 200
    assert get_from("::1").status_code == 200


def test_it_serves_the_configured_networks_only(keys, settings):
    settings.TOKENADMIN = {**settings.TOKENADMIN, "METRICS_ALLOWED_IPS": ["10.20.0.0/16"]}
    assert get_from("10.20.3.4").status_code == 200
    assert get_from("::ffff:10.20.3.4").status_code == 200
    assert get_from("10.21.0.1").status_code == 401
    assert get_from("127.0.0.1").status_code == 401


def test_it_lets_nobody_in_by_address_when_the_allow_list_is_blank(keys, settings):
    settings.TOKENADMIN = {**settings.TOKENADMIN, "METRICS_ALLOWED_IPS": []}
    assert get_from("127.0.0.1").status_code == 401
    assert get_from("127.0.0.1", keys["metrics"]).status_code == 200


def test_it_does_not_let_in_by_address_a_request_relayed_by_an_untrusted_proxy(keys):
    # A reverse proxy on the same host makes every request come from 127.0.0.1.
    assert get_from("127.0.0.1", X_Forwarded_For="198.51.100.9").status_code == 401
    assert get_from("127.0.0.1", Forwarded="for=198.51.100.9").status_code == 401
    # A key still works through it.
    assert get_from("127.0.0.1", keys["metrics"], X_Forwarded_For="198.51.100.9").status_code == (
        200
    )


def test_it_uses_the_entry_our_proxy_appended_when_told_to_trust_it(keys, settings):
    settings.TRUST_X_FORWARDED_FOR = True
    settings.TOKENADMIN = {**settings.TOKENADMIN, "METRICS_ALLOWED_IPS": ["10.20.0.0/16"]}
    assert get_from("127.0.0.1", X_Forwarded_For="10.20.3.4").status_code == 200
    # A client cannot get in by writing an allowed address first: the proxy appends the real one.
    assert get_from("127.0.0.1", X_Forwarded_For="10.20.3.4, 198.51.100.9").status_code == 401
    assert get_from("10.20.3.4").status_code == 401  # no header: no address we can trust


def test_it_refuses_a_malformed_allow_list_at_start_up():
    result = subprocess.run(
        [sys.executable, "-c", "import tests.settings"],
        cwd=PROJECT_ROOT,
        env={"TOKENADMIN_METRICS_ALLOWED_IPS": "127.0.0.1,10.0.0.0/33", "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "TOKENADMIN_METRICS_ALLOWED_IPS: '10.0.0.0/33' is not an address" in result.stderr


# --- apikey --metrics ---------------------------------------------------------------------------
def run_apikey(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("apikey", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_apikey_create_metrics_issues_a_key_that_reads_metrics_and_no_token():
    connection = ConnectionFactory(authorized=True, slug="analytics")
    out, err = run_apikey("create", "prometheus", "--metrics")
    raw_key = out.strip()
    assert raw_key.startswith(ApiKey.PREFIX)
    assert "cannot be shown again" in err
    assert get_from(OUTSIDE, raw_key).status_code == 200
    token = Client().get(
        f"/api/v1/connections/{connection.slug}/token",
        headers={"Authorization": f"Bearer {raw_key}"},
    )
    assert token.status_code == 403
    assert connection.access_token not in token.content.decode()


@pytest.mark.django_db
def test_apikey_list_shows_which_keys_read_metrics_and_never_a_key():
    ConnectionFactory(slug="analytics")
    metrics_key = run_apikey("create", "prometheus", "--metrics")[0].strip()
    run_apikey("create", "pipeline", "--connection", "analytics")
    out, _ = run_apikey("list")
    rows = [line.split("\t") for line in out.splitlines()]
    assert [(r[0], r[2], r[3], r[4]) for r in rows] == [
        ("pipeline", "active", "analytics", "-"),
        ("prometheus", "active", "-", "metrics"),
    ]
    assert metrics_key not in out


@pytest.mark.django_db
def test_apikey_create_without_any_scope_says_what_to_give():
    with pytest.raises(CommandError, match="--connection SLUG, or --all, or --metrics"):
        run_apikey("create", "nothing")
    assert not ApiKey.objects.exists()


# --- across processes ---------------------------------------------------------------------------
@pytest.fixture
def processes(transactional_db: None, tmp_path: Path) -> Iterator[Background]:
    with background(tmp_path) as processes:
        yield processes


def test_qcluster_refresh_shows_in_the_next_scrape(processes: Background) -> None:
    """A refresh done by a worker of a separate `manage.py qcluster` process (ORM broker, or
    Redis in CI's Redis pass) is in the next scrape of the web side: values come from rows."""
    server = processes.auth_server(access_ttl=600, refresh_ttl=3600)
    connection = authorized_connection(provider_for(server), server, "nightly")
    _, before = scrape()
    assert not [s for s in before if s[0] == "tokenadmin_refresh_attempts_total"]

    processes.qcluster(workers=1)
    async_task("connections.tasks.refresh", connection.pk)
    refreshed = wait_for(
        lambda: RefreshAttempt.objects.filter(connection=connection).first(), timeout=30
    )
    assert refreshed is not None, "the cluster did not refresh the connection within 30 s"
    assert refreshed.outcome == RefreshAttempt.Outcome.SUCCESS

    _, after = scrape()
    assert value(after, "tokenadmin_refresh_attempts_total", outcome="success", error_code="") == 1
    assert value(after, "tokenadmin_refresh_duration_seconds_count", outcome="success") == 1
    stored = Connection.objects.get(pk=connection.pk)
    assert stored.version == connection.version + 1
    expires_in = value(
        after,
        "tokenadmin_connection_access_token_expires_in_seconds",
        connection="nightly",
        provider="testauth",
    )
    # The new token's expiry, seen from the web side.
    assert stored.access_expires_at > connection.access_expires_at
    assert expires_in == pytest.approx(
        (stored.access_expires_at - datetime.now(UTC)).total_seconds(), abs=5
    )
