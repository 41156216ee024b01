"""For tests that start processes of their own: how to reach this test run's database."""

from urllib.parse import quote

from django.db import connection as db_connection


def test_database_url() -> str:
    """A DATABASE_URL for the database this test process uses (pytest-django's test database)."""
    db = db_connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    if db["ENGINE"] == "django.db.backends.postgresql":
        auth = quote(db["USER"] or "", safe="")
        if db["PASSWORD"]:
            auth += ":" + quote(db["PASSWORD"], safe="")
        netloc = f"{auth}@" if auth else ""
        netloc += f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        return f"postgres://{netloc}/{quote(db['NAME'], safe='')}"
    raise ValueError(f"no DATABASE_URL form for {db['ENGINE']}")


test_database_url.__test__ = False  # a helper, not a test, despite its name
