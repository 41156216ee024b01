"""``manage.py ensure_admin``: create the first superuser, ``admin``, with a random password.

Why: ``make run`` must leave a fresh install usable from the browser without an interactive
``createsuperuser`` prompt and without any default or shared password. So on the first run this
creates ``admin`` with a password from :func:`secrets.token_urlsafe` and prints it exactly once;
it is stored only as Django's password hash. On every later run it does nothing, so it is safe to
call on each start. A forgotten password is reset with ``manage.py changepassword admin``.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import IntegrityError, transaction

ADMIN_USERNAME = "admin"


def ensure_admin(*, username: str = ADMIN_USERNAME) -> str | None:
    """Create superuser ``username`` if missing; return its new password, or None if it existed."""
    user_model = get_user_model()
    manager = user_model._default_manager
    lookup = {user_model.USERNAME_FIELD: username}
    if manager.filter(**lookup).exists():
        return None
    password = secrets.token_urlsafe(16)
    try:
        with transaction.atomic():
            manager.create_superuser(**lookup, email="", password=password)
    except IntegrityError:
        # Another process (a second `make run`, a web node) created it between our check and insert.
        return None
    return password


def credentials_box(
    *,
    username: str,
    password: str,
    heading: str = "Created the superuser for the dashboard and /admin/:",
    note: str = "This password will NOT be shown again. Store it now.",
    reset_prefix: str = "",
) -> str:
    """Return the one-time message showing the new admin credentials."""
    lines = [
        heading,
        "",
        f"    username: {username}",
        f"    password: {password}",
        "",
        note,
        f"(Reset it later with: {reset_prefix}manage.py changepassword {username})",
    ]
    width = max(len(line) for line in lines)
    border = "+" + "-" * (width + 2) + "+"
    body = [f"| {line.ljust(width)} |" for line in lines]
    return "\n".join([border, *body, border])


class Command(BaseCommand):
    help = (
        "Create the superuser 'admin' with a random password (printed once) if it does not "
        "exist; otherwise do nothing. Safe to run on every start."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        password = ensure_admin(username=ADMIN_USERNAME)
        if password is None:
            if options["verbosity"] >= 1:
                self.stdout.write(f"ensure_admin: user '{ADMIN_USERNAME}' exists")
            return
        self.stdout.write(
            self.style.WARNING(credentials_box(username=ADMIN_USERNAME, password=password))
        )
