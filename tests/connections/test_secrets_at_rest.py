"""Tokens and client secrets are encrypted at rest: the raw database never holds them.

Data is committed (`transaction=True`) so it reaches the database files; the scan also checks
a plaintext marker (the connection's name) to prove it would see a secret stored in the clear.
"""

import os
import subprocess
from pathlib import Path

import pytest
from django.db import connection as db_connection

from connections.models import Connection
from tests.conftest import IS_POSTGRES
from tests.factories import ConnectionFactory

MARKER = "PLAINTEXT-NAME-3c2b1a09"
SECRETS = {
    "access_token": "PLAINTEXT-ACCESS-9f8e7d6c5b4a",
    "refresh_token": "PLAINTEXT-REFRESH-1a2b3c4d5e6f",
    "client_secret": "PLAINTEXT-SECRET-0e1d2c3b4a59",
}


def store_known_secrets() -> Connection:
    connection = ConnectionFactory(authorized=True, name=MARKER, **SECRETS)
    fresh = Connection.objects.get(pk=connection.pk)
    assert {name: getattr(fresh, name) for name in SECRETS} == SECRETS
    return connection


def assert_only_marker_in(raw: bytes) -> None:
    assert MARKER.encode() in raw, "the scan did not see plaintext data at all"
    for name, value in SECRETS.items():
        assert value.encode() not in raw, f"{name} is stored in the clear"
        assert value.encode("utf-16-le") not in raw, f"{name} is stored in the clear (UTF-16)"


@pytest.mark.skipif(IS_POSTGRES, reason="reads the SQLite database file")
@pytest.mark.django_db(transaction=True)
def test_it_never_writes_secrets_into_the_sqlite_file():
    store_known_secrets()
    with db_connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(FULL)")
    path = Path(db_connection.settings_dict["NAME"])
    files = [path, *(Path(f"{path}{suffix}") for suffix in ("-wal", "-journal", "-shm"))]
    raw = b"".join(f.read_bytes() for f in files if f.exists())
    assert_only_marker_in(raw)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_never_writes_secrets_into_a_postgres_dump():
    store_known_secrets()
    settings = db_connection.settings_dict
    env = os.environ | {"PGPASSWORD": settings.get("PASSWORD") or ""}
    command = ["pg_dump", "--data-only", "--dbname", settings["NAME"]]
    for flag, key in (("--host", "HOST"), ("--port", "PORT"), ("--username", "USER")):
        if settings.get(key):
            command += [flag, str(settings[key])]
    dump = subprocess.run(command, capture_output=True, env=env, timeout=60, check=True).stdout
    assert_only_marker_in(dump)
