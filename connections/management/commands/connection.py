"""``manage.py connection``: create, inspect and use connections from a shell.

Subcommands: create, consumers, list, show, token, refresh, check, reauth-link, presets. Output
never contains a token or secret, except `token`, whose whole stdout is the access token.
"""

import argparse
import sys
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connections import lifecycle, monitoring, services
from connections.links import build_reauth_link
from connections.management.commands._configure import (
    CONSUMER_OPTIONS,
    add_consumers_arguments,
    add_create_arguments,
    consumer_arguments,
    create_arguments,
    create_refusal,
    non_negative_int,
    positive_int,
    read_client_secret,
    refusal,
    schedule_options_without_add,
)
from connections.management.commands._output import (
    connection_summary,
    consumer_summary,
    render_connection_table,
    render_consumer_table,
    render_detail,
    render_json,
    render_table,
)
from connections.models import Connection, RefreshAttempt
from connections.presets import list_presets
from tokenadmin.hashing import sha256_hex

# Exit codes, documented in `--help`. 2 is also argparse's code for a malformed command line.
EXIT_ERROR = 1
EXIT_UNKNOWN = 2
EXIT_NEEDS_PERSON = 3
EXIT_PROVIDER_DOWN = 4

EXIT_CODES_HELP = """exit codes:
  0  success
  1  error (bad option value, URL, preset or discovery failure, duplicate slug, ...)
  2  malformed command line, or no connection with that slug
  3  the connection cannot give a token until a person acts: pending (never
     authorized), needs_reauth or disabled -- see `connection reauth-link SLUG`
  4  the provider is unavailable or failing; retry later (the message says when)"""


def read_rejected_token(stdin: TextIO) -> str:
    """The rejected token, piped on stdin (one line; surrounding whitespace ignored)."""
    if stdin.isatty():
        raise CommandError(
            "--rejected reads the rejected token from stdin: "
            "printf '%s' \"$TOKEN\" | manage.py connection token SLUG --rejected",
            returncode=EXIT_UNKNOWN,
        )
    token = stdin.read().strip()
    if not token or any(c.isspace() for c in token):
        raise CommandError("--rejected needs exactly one token on stdin.", returncode=EXIT_UNKNOWN)
    return token


class Command(BaseCommand):
    # `connection token --rejected` reads the token from stdin; tests pass one here.
    stealth_options = ("stdin",)
    help = (
        "Create, list and inspect OAuth connections; print a valid access token for scripts. "
        "Run `connection SUBCOMMAND --help` for details.\n\n" + EXIT_CODES_HELP
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="SUBCOMMAND")
        raw = {"formatter_class": argparse.RawDescriptionHelpFormatter}
        create = sub.add_parser("create", help="Create a pending connection.", **raw)
        add_create_arguments(create, EXIT_CODES_HELP)
        add_consumers_arguments(
            sub.add_parser("consumers", help="List, add or remove a connection's consumers.", **raw)
        )

        listing = sub.add_parser("list", help="List connections.")
        listing.add_argument("--json", action="store_true", help="Print a JSON array.")

        show = sub.add_parser("show", help="Show one connection.")
        show.add_argument("slug")
        show.add_argument("--json", action="store_true", help="Print a JSON object.")

        token = sub.add_parser(
            "token",
            help="Print a valid access token (only the token).",
            description="Print the connection's access token and a newline, nothing else, "
            "refreshing it first when it expires within the threshold or --min-ttl. When the "
            "connection cannot serve and has a backup that can, the backup's token is printed "
            "(stderr says so; --no-failover to refuse); a disabled connection never fails over. "
            "With --rejected, the rejected token is read from stdin (never from the command "
            "line, where `ps` would show it), compared by its SHA-256 with the current one, and "
            "the token to use now is printed. Errors go to stderr.\n\n" + EXIT_CODES_HELP,
            **raw,
        )
        token.add_argument("slug")
        token.add_argument(
            "--min-ttl",
            type=non_negative_int,
            metavar="SECONDS",
            help="The token must stay valid at least this long.",
        )
        token.add_argument(
            "--no-failover",
            action="store_true",
            help="Never print a backup connection's token; fail with the connection's own error.",
        )
        token.add_argument(
            "--rejected",
            action="store_true",
            help="The provider rejected the token piped on stdin (HTTP 401): refresh it once if "
            "it is still the current one, else print the token that already replaced it. "
            "Example: printf '%%s' \"$TOKEN\" | manage.py connection token SLUG --rejected",
        )

        refresh = sub.add_parser(
            "refresh",
            help="Refresh the access token now; print the new expiry.",
            description="Force a refresh at the provider.\n\n" + EXIT_CODES_HELP,
            **raw,
        )
        refresh.add_argument("slug")

        link = sub.add_parser("reauth-link", help="Print a new reauthorization link.")
        link.add_argument("slug")
        link.add_argument("--days", type=positive_int, help="Days the link stays valid.")

        check = sub.add_parser(
            "check",
            help="Run the connection's health check now (a canary call with its token).",
            description="Health check now.\n\n" + EXIT_CODES_HELP,
            **raw,
        )
        check.add_argument("slug")

        sub.add_parser("presets", help="List provider presets and their parameters.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, "_" + action.replace("-", "_"))(**options)

    # --- helpers ---------------------------------------------------------------------------
    def _get(self, slug: str) -> Connection:
        connection = (
            Connection.objects.select_related("provider", "backup").filter(slug=slug).first()
        )
        if connection is None:
            raise CommandError(f"No connection with slug {slug!r}.", returncode=EXIT_UNKNOWN)
        return connection

    def _unavailable(self, exc: lifecycle.TokenUnavailable, slug: str) -> CommandError:
        if isinstance(exc, lifecycle.NotAuthorized | lifecycle.NeedsReauth):
            hint = f" Authorize it: manage.py connection reauth-link {slug}"
            return CommandError(f"{exc} [{exc.code}]{hint}", returncode=EXIT_NEEDS_PERSON)
        if isinstance(exc, lifecycle.ConnectionDisabled):
            return CommandError(f"{exc} [{exc.code}]", returncode=EXIT_NEEDS_PERSON)
        retry = (
            f"retry after {max(1, round(exc.retry_after))} s" if exc.retry_after else "retry later"
        )
        return CommandError(f"{exc} [{exc.code}]; {retry}", returncode=EXIT_PROVIDER_DOWN)

    # --- subcommands -----------------------------------------------------------------------
    def _create(self, *, name: str, backup: str | None, json: bool, **options: Any) -> None:
        backup_connection = self._get(backup) if backup else None
        secret = read_client_secret(
            client_secret=options["client_secret"],
            client_secret_file=options["client_secret_file"],
        )
        try:
            saved = services.connection_create(
                name=name,
                client_secret=secret or "",
                backup=backup_connection,
                **create_arguments(options),
            )
        except services.ServiceError as exc:
            raise create_refusal(exc, secret_given=secret is not None) from exc
        for note in saved.notes:
            self.stderr.write(note)
        connection = saved.connection
        link = build_reauth_link(connection, created_for="manage.py connection create")
        if json:
            self.stdout.write(render_json({**connection_summary(connection), "reauth_link": link}))
            return
        self.stdout.write(
            f"Created connection {connection.slug} (status: {connection.status}) "
            f"at provider {connection.provider.slug}.\n"
            f"Open this link to authorize it:\n{link}"
        )

    def _consumers(
        self, *, slug: str, add: str | None, remove: str | None, json: bool, **options: Any
    ) -> None:
        connection = self._get(slug)
        stray = schedule_options_without_add(options)
        if add is None and stray:
            raise CommandError(f"{stray[0]} goes with --add NAME.")
        if add is not None:
            self._add_consumer(connection, add, json=json, options=options)
        elif remove is not None:
            try:
                services.consumer_remove(connection=connection, label=remove)
            except services.ServiceError as exc:
                raise refusal(exc, {"label": "--remove"}) from exc
            removed = {"connection": slug, "removed": remove}
            self.stdout.write(
                render_json(removed) if json else f"Removed consumer {remove!r} from {slug}."
            )
        else:
            self._list_consumers(connection, json=json)

    def _add_consumer(
        self, connection: Connection, label: str, *, json: bool, options: dict[str, Any]
    ) -> None:
        try:
            schedule = services.consumer_add(
                connection=connection, label=label, **consumer_arguments(options)
            )
        except services.ServiceError as exc:
            raise refusal(exc, {**CONSUMER_OPTIONS, "label": "--add"}) from exc
        summary = consumer_summary(schedule)
        if json:
            self.stdout.write(render_json(summary))
            return
        self.stdout.write(
            f"Added consumer {schedule.label!r} to {connection.slug}: {schedule.cron} "
            f"({schedule.timezone}), next run {summary['next_run_at']}; a fresh token is ready "
            f"{schedule.lead_minutes} min before each run."
        )

    def _list_consumers(self, connection: Connection, *, json: bool) -> None:
        schedules = list(connection.consumer_schedules.all())
        if json:
            self.stdout.write(render_json([consumer_summary(s) for s in schedules]))
        elif schedules:
            self.stdout.write(render_consumer_table(schedules))
        else:
            self.stdout.write(
                f"{connection.slug} has no consumers. Add one with `connection consumers "
                f"{connection.slug} --add NAME --cron EXPR`."
            )

    def _list(self, *, json: bool, **_: Any) -> None:
        connections = list(Connection.objects.select_related("provider", "backup"))
        if json:
            self.stdout.write(render_json([connection_summary(c) for c in connections]))
        elif connections:
            self.stdout.write(render_connection_table(connections))
        else:
            self.stdout.write("No connections yet. Create one with `connection create`.")

    def _show(self, *, slug: str, json: bool, **_: Any) -> None:
        connection = self._get(slug)
        if json:
            self.stdout.write(render_json(connection_summary(connection)))
        else:
            self.stdout.write(render_detail(connection))

    def _token(
        self,
        *,
        slug: str,
        min_ttl: int | None,
        no_failover: bool,
        rejected: bool,
        **options: Any,
    ) -> None:
        connection = self._get(slug)
        if rejected and min_ttl is not None:
            raise CommandError("--min-ttl does not go with --rejected.", returncode=EXIT_UNKNOWN)
        try:
            if rejected:
                token_sha256 = sha256_hex(read_rejected_token(options.get("stdin") or sys.stdin))
                served = services.token_rejected(
                    connection=connection, token_sha256=token_sha256, failover=not no_failover
                )
            else:
                served = services.token_serve(
                    connection=connection, min_ttl=min_ttl, failover=not no_failover
                )
        except lifecycle.TokenUnavailable as exc:
            raise self._unavailable(exc, slug) from exc
        if not served.served.access_token:
            raise CommandError(f"{slug} has no access token.", returncode=EXIT_NEEDS_PERSON)
        if served.refreshed is False:
            self.stderr.write(f"{slug}: that token was already replaced; printing the current one.")
        if served.failed_over:
            self.stderr.write(
                f"{slug} cannot serve ({served.connection.status}); printing the token of its "
                f"backup {served.served.slug}."
            )
        self.stdout.write(served.served.access_token)

    def _refresh(self, *, slug: str, **_: Any) -> None:
        connection = self._get(slug)
        try:
            fresh = lifecycle.refresh_connection(
                connection, trigger=RefreshAttempt.Trigger.FORCED, force=True
            )
        except lifecycle.TokenUnavailable as exc:
            raise self._unavailable(exc, slug) from exc
        summary = connection_summary(fresh)
        access = summary["access_expires_at"] or "unknown"
        refresh = summary["refresh_expires_at"] or "unknown"
        self.stdout.write(
            f"Refreshed {slug}: access token expires {access} ({summary['access_expiry_source']});"
            f" refresh token expires {refresh} ({summary['refresh_expiry_source']})."
        )

    def _reauth_link(self, *, slug: str, days: int | None, **_: Any) -> None:
        connection = self._get(slug)
        self.stdout.write(
            build_reauth_link(connection, created_for="manage.py connection reauth-link", days=days)
        )

    def _check(self, *, slug: str, **_: Any) -> None:
        connection = self._get(slug)
        try:
            lifecycle.get_access_token(connection)
        except lifecycle.TokenUnavailable as exc:
            raise self._unavailable(exc, slug) from exc
        check = monitoring.check_health(connection)
        if check is None:
            raise CommandError(
                f"{slug} has no health check: set its test URL, or the provider's userinfo or "
                "introspection endpoint.",
                returncode=EXIT_ERROR,
            )
        what = (
            f"{check.get_method_display()}, HTTP {check.http_status or '-'}, {check.latency_ms} ms"
        )
        if not check.ok:
            connection.refresh_from_db(fields=["status", "status_reason"])
            code = EXIT_NEEDS_PERSON if connection.status == "needs_reauth" else EXIT_PROVIDER_DOWN
            raise CommandError(
                f"{slug}: health check failed ({what}): {check.message}", returncode=code
            )
        self.stdout.write(f"{slug}: healthy ({what}).")

    def _presets(self, **_: Any) -> None:
        rows = [
            [p.slug, " ".join(f"{n}=…" for n in p.params), p.refresh_token_expiry, p.name]
            for p in list_presets()
        ]
        self.stdout.write(render_table(["preset", "params", "refresh expiry", "name"], rows))
