"""Running migrations back and forth in a test, with the models as each migration saw them.

Needs a transactional test (`django_db(transaction=True)`): SQLite cannot change its schema
inside the transaction an ordinary test runs in.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


class Migrator:
    """Migrates one app to a named migration and hands back the historical models there."""

    def __init__(self, app: str) -> None:
        self.app = app

    def to(self, name: str) -> Apps:
        target = [(self.app, name)]
        executor = MigrationExecutor(connection)
        executor.migrate(target)
        return MigrationExecutor(connection).loader.project_state(target).apps


@contextmanager
def migrating(app: str) -> Iterator[Migrator]:
    """A Migrator for `app`; on the way out every app is migrated forward to its latest again,
    whatever the test did, for the tests that follow."""
    try:
        yield Migrator(app)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
