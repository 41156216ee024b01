from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from connections.management.commands.ensure_admin import ADMIN_USERNAME, credentials_box
from tokenadmin.demo.setup import DEMO_PASSWORD, DEMO_USERNAME, ensure_demo


class Command(BaseCommand):
    help = (
        "Set up the demo (idempotent; `make demo` runs it): the demo provider's user, client and "
        "endpoints, the pending connection 'demo', alerting fitted to a 15-minute grant, and a "
        "new password for the dashboard's admin (printed). Exists only in demo mode."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = ensure_demo()
        for line in report.lines:
            self.stdout.write(f"demo_setup: {line}")
        box = credentials_box(
            username=ADMIN_USERNAME,
            password=report.admin_password,
            heading="The demo's dashboard and /admin/ login:",
            note="A new password on every `make demo` (the demo has its own database).",
            reset_prefix="TOKENADMIN_DEMO=1 ",
        )
        self.stdout.write(self.style.WARNING(box))
        site = settings.SITE_URL
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"demo: 1. open {site}/ and log in as {ADMIN_USERNAME} (password above)",
                    "demo: 2. open 'Demo connection', press Authorize, sign in at the demo "
                    f"provider ({DEMO_USERNAME} / {DEMO_PASSWORD}, filled in), Authorize there",
                    f"demo: 3. watch: access tokens live {settings.DEMO_ACCESS_SECONDS} s and are "
                    "refreshed about every minute; the grant ends "
                    f"{settings.DEMO_GRANT_SECONDS // 60} min after consent; warnings go out "
                    "10 and 5 min before, to the console below; then press Authorize again",
                    "",
                ]
            )
        )
