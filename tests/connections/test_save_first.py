"""Save first, then enrich (DESIGN refresh rule 3).

The UPDATE that stores a refresh's tokens comes straight after the provider's answer; learning
rotation, introspection and the expiry's kind come after it. Until the tokens are written the
only copy of the grant is in one process's memory, and the provider here revokes the grant when
a rotated-away refresh token is used again: losing the new one would kill the connection.

The provider is the in-process `FakeProvider` (it can introspect refresh tokens and fail on
demand); our code reaches it over real HTTP. Failures inside our own enrichment step are forced
by replacing one of its functions with one that raises.
"""

import logging
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from django.db import OperationalError
from django.db.models import F
from django.utils import timezone

from connections import oauth
from connections.lifecycle import get_access_token, refresh_connection
from connections.models import Connection, ExpirySource, Provider, RefreshAttempt, RefreshExpiry
from connections.models.connection import ConnectionQuerySet, DeadlineSource
from tests.background.fake_provider import ABSOLUTE, FakeProvider, connect, running

pytestmark = pytest.mark.django_db

FORCED = RefreshAttempt.Trigger.FORCED


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    # Rotates refresh tokens, revokes the grant on reuse, keeps a 90-day absolute expiry that
    # only introspection tells.
    with running(
        policy=ABSOLUTE, rotate=True, access_expires_in=3600, introspects_refresh_tokens=True
    ) as fake:
        yield fake


def undescribed(fake: FakeProvider) -> Connection:
    provider = {"introspect_url": fake.introspect_url, "rotates_refresh_tokens": None}
    return connect(fake, kind=RefreshExpiry.UNKNOWN, lifetime=None, provider=provider)


def reload(connection: Connection) -> Connection:
    return Connection.objects.select_related("provider").get(pk=connection.pk)


def force_refresh(connection: Connection) -> Connection:
    return refresh_connection(reload(connection), trigger=FORCED, force=True)


def assert_stored_and_served(fake: FakeProvider, before: Connection) -> Connection:
    """The refresh's new tokens are in the database, live at the provider, and served."""
    stored = reload(before)
    assert stored.refresh_token != before.refresh_token
    assert stored.version == before.version + 1
    assert fake.refresh_token_alive(stored.refresh_token)
    assert not fake.refresh_token_alive(before.refresh_token)  # rotated away at the provider
    assert (stored.lease_owner, stored.lease_until) == ("", None)
    served = get_access_token(stored)
    assert served.access_token == stored.access_token != before.access_token
    attempt = RefreshAttempt.objects.get(connection=stored)
    assert (attempt.outcome, attempt.rotated) == (RefreshAttempt.Outcome.SUCCESS, True)
    return stored


def test_it_stores_the_rotated_refresh_token_before_it_asks_anything_else(fake, monkeypatch):
    connection = undescribed(fake)
    seen: list[tuple[bool, str]] = []
    introspect = oauth.introspect

    def introspect_and_look(client, url, *, token, hint):
        # What the database holds at the moment the enrichment step calls the provider.
        row = Connection.objects.get(pk=connection.pk)
        seen.append((row.refresh_token == token, row.lease_owner))
        return introspect(client, url, token=token, hint=hint)

    monkeypatch.setattr(oauth, "introspect", introspect_and_look)
    # An hour on: a sliding expiry would have moved by that much (right after the consent, a
    # moved one could not be told from a kept one, and nothing would be learned).
    with time_machine.travel(timezone.now() + timedelta(hours=1), tick=False):
        refreshed = force_refresh(connection)

        assert seen == [(True, "")]  # the new refresh token stored, the lease released
        assert refreshed.refresh_token != connection.refresh_token
        stored = assert_stored_and_served(fake, connection)
    # ... and then learned: the rotation kept the expiry, so it is absolute.
    assert stored.refresh_expiry_learned == RefreshExpiry.ABSOLUTE
    assert stored.refresh_expiry_learned_from.startswith("introspection: a rotation on ")
    assert stored.reauthorization_deadline == (
        connection.refresh_expires_at,
        DeadlineSource.ABSOLUTE_EXPIRY,
    )
    assert stored.provider.rotates_refresh_tokens is True


def test_it_keeps_the_new_refresh_token_when_introspection_fails(fake):
    connection = undescribed(fake)
    deadline = connection.reauthorize_by
    fake.introspect_status = 500
    force_refresh(connection)

    stored = assert_stored_and_served(fake, connection)
    assert fake.counts["introspect"] == 2  # at the consent, and the failed one
    # Nothing new was learned; the expiry the provider told before still stands.
    assert stored.refresh_expiry_learned == ""
    assert (stored.reauthorize_by, stored.refresh_expiry_source) == (
        deadline,
        ExpirySource.INTROSPECTION,
    )


def test_it_keeps_the_new_refresh_token_when_learning_raises(fake, monkeypatch, caplog):
    connection = undescribed(fake)
    leaked: list[str] = []

    def learn_and_fail(stored, token, **kwargs):
        leaked.append(token.refresh_token)
        raise RuntimeError(f"a bug that quotes {token.refresh_token}")

    monkeypatch.setattr("connections.lifecycle.enrich.learn_refresh_expiry", learn_and_fail)
    with caplog.at_level(logging.INFO):
        refreshed = force_refresh(connection)  # the caller is not failed

    stored = assert_stored_and_served(fake, connection)
    assert refreshed.refresh_token == stored.refresh_token == leaked[0]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "learning from the response failed (RuntimeError" in errors[0]
    assert stored.refresh_token not in caplog.text
    assert connection.refresh_token not in caplog.text


def test_it_keeps_the_new_refresh_token_when_the_database_fails_after_storing_it(fake, monkeypatch):
    connection = undescribed(fake)

    def locked(_connection):
        raise OperationalError("database is locked")

    monkeypatch.setattr("connections.lifecycle.enrich.learn_rotation", locked)
    force_refresh(connection)
    stored = assert_stored_and_served(fake, connection)

    # The stored token is the live one: the next refresh uses it and the grant survives.
    monkeypatch.undo()
    again = force_refresh(stored)
    assert again.refresh_token != stored.refresh_token
    assert fake.counts["refused"] == 0
    assert fake.refresh_token_alive(again.refresh_token)


def test_it_still_learns_the_expiry_when_the_rotation_bookkeeping_fails(fake, monkeypatch, caplog):
    connection = undescribed(fake)

    def locked(_connection):
        raise OperationalError("database is locked")

    monkeypatch.setattr("connections.lifecycle.enrich.learn_rotation", locked)
    with time_machine.travel(timezone.now() + timedelta(hours=1), tick=False):
        force_refresh(connection)
        stored = assert_stored_and_served(fake, connection)

    # Each enrichment step stands alone: the failed one costs only its own lesson.
    assert stored.provider.rotates_refresh_tokens is None
    assert stored.refresh_expiry_learned == RefreshExpiry.ABSOLUTE
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "(OperationalError at test_save_first.py" in errors[0]


def test_it_stores_the_tokens_when_the_lease_cannot_be_extended(fake, monkeypatch):
    # A locked database (SQLite under load) refuses the lease extension that precedes the token
    # write: the write, which has its own retries and is guarded by version, must still happen.
    connection = undescribed(fake)

    def locked(self, pk, *, owner, seconds):
        raise OperationalError("database is locked")

    monkeypatch.setattr(ConnectionQuerySet, "extend_lease", locked)
    force_refresh(connection)

    assert_stored_and_served(fake, connection)


def test_it_times_the_provider_call_not_what_is_learned_after_it(fake, monkeypatch):
    connection = undescribed(fake)
    introspect = oauth.introspect
    ticks = {"now": 1000.0}

    def slow_introspection(client, url, *, token, hint):
        ticks["now"] += 30  # introspection takes half a minute
        return introspect(client, url, token=token, hint=hint)

    monkeypatch.setattr(time, "monotonic", lambda: ticks["now"])
    monkeypatch.setattr(oauth, "introspect", slow_introspection)
    force_refresh(connection)

    attempt = RefreshAttempt.objects.get(connection=connection)
    assert fake.counts["introspect"] == 2  # at the consent, and after this refresh
    # The refresh-latency metric reads this: the provider's token call, not our enrichment.
    assert attempt.duration_ms < 30_000


def test_it_never_writes_what_it_learned_over_a_newer_refresh(fake, monkeypatch):
    connection = undescribed(fake)
    introspect = oauth.introspect

    def introspect_while_a_newer_write_lands(client, url, *, token, hint):
        answer = introspect(client, url, token=token, hint=hint)
        # Another holder (say, after this one's lease was lost) stores newer tokens meanwhile.
        Connection.objects.filter(pk=connection.pk).update(
            version=F("version") + 1, refresh_expiry_source=ExpirySource.UNKNOWN
        )
        return answer

    monkeypatch.setattr(oauth, "introspect", introspect_while_a_newer_write_lands)
    force_refresh(connection)

    row = reload(connection)
    assert row.version == connection.version + 2
    # The newer write's values stand: the enrichment's write was conditional on our version.
    assert (row.refresh_expiry_source, row.refresh_expiry_learned) == (ExpirySource.UNKNOWN, "")


# --- a new grant, stored by the consent flow ---------------------------------------------------


def test_it_stores_a_new_grant_when_introspection_fails(fake):
    fake.introspect_status = 500
    connection = undescribed(fake)

    assert connection.status == Connection.Status.ACTIVE
    assert fake.refresh_token_alive(connection.refresh_token)
    assert (connection.refresh_expires_at, connection.reauthorize_by_source) == (
        None,
        DeadlineSource.UNKNOWN,
    )
    assert get_access_token(connection).access_token == connection.access_token


def test_it_stores_a_new_grant_when_learning_raises(fake, monkeypatch, caplog):
    def learn_and_fail(stored, token, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("connections.lifecycle.enrich.learn_refresh_expiry", learn_and_fail)
    connection = undescribed(fake)

    assert connection.status == Connection.Status.ACTIVE
    assert fake.refresh_token_alive(connection.refresh_token)
    assert "learning from the response failed (RuntimeError" in caplog.text
    assert connection.refresh_token not in caplog.text


def test_it_learns_the_expiry_of_a_new_grant_after_storing_it(fake):
    connection = undescribed(fake)
    assert connection.refresh_expiry_source == ExpirySource.INTROSPECTION
    assert connection.reauthorize_by_source == DeadlineSource.EXPIRY_OF_UNKNOWN_KIND
    assert Provider.objects.get(pk=connection.provider_id).rotates_refresh_tokens is None
