from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from connections.models import ApiKey, Connection


class Command(BaseCommand):
    help = (
        "Manage API keys. `apikey create NAME [--connection SLUG …] [--all] [--metrics]` prints "
        "the new key once; `apikey list`; `apikey revoke NAME`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a key and print it once.")
        create.add_argument("name")
        create.add_argument(
            "--connection",
            action="append",
            default=[],
            metavar="SLUG",
            help="A connection the key may use (repeatable).",
        )
        create.add_argument("--all", action="store_true", help="Allow every connection.")
        create.add_argument(
            "--metrics", action="store_true", help="Allow reading /metrics (Prometheus)."
        )
        sub.add_parser("list", help="List keys (never the keys themselves).")
        revoke = sub.add_parser("revoke", help="Revoke every active key with this name.")
        revoke.add_argument("name")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, f"_{action}")(**options)

    def _create(
        self, *, name: str, connection: list[str], all: bool, metrics: bool, **_: Any
    ) -> None:
        if not connection and not all and not metrics:
            raise CommandError("Name at least one --connection SLUG, or --all, or --metrics.")
        found = list(Connection.objects.filter(slug__in=connection))
        missing = sorted(set(connection) - {c.slug for c in found})
        if missing:
            raise CommandError(f"Unknown connection(s): {', '.join(missing)}")
        _, raw_key = ApiKey.issue(
            name=name, connections=found, all_connections=all, allow_metrics=metrics
        )
        self.stdout.write(raw_key)
        self.stderr.write("Store this key now: it is not kept and cannot be shown again.")

    def _list(self, **_: Any) -> None:
        for key in ApiKey.objects.prefetch_related("connections"):
            scope = (
                "all"
                if key.all_connections
                else ",".join(c.slug for c in key.connections.all()) or "-"
            )
            state = "revoked" if key.revoked_at else "active"
            metrics = "metrics" if key.allow_metrics else "-"
            self.stdout.write(f"{key.name}\t{key.prefix}…\t{state}\t{scope}\t{metrics}")

    def _revoke(self, *, name: str, **_: Any) -> None:
        count = ApiKey.objects.active().filter(name=name).update(revoked_at=timezone.now())
        if not count:
            raise CommandError(f"No active key named {name!r}.")
        self.stdout.write(f"Revoked {count} key(s) named {name!r}.")
