"""A real SMTP server on loopback (aiosmtpd) that keeps every message it accepts, for tests that
send mail the way production does: through Django's SMTP backend, from another process."""

from __future__ import annotations

import email
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default
from typing import Any, Self

from aiosmtpd.controller import Controller

from tests.authserver.harness import find_free_port


@dataclass(frozen=True)
class Delivered:
    """One message as the server received it, and when (`time.time()`)."""

    received_at: float
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, "no text/plain part"
        return part.get_content()

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else ""


class SmtpInbox:
    """`with SmtpInbox() as inbox:` an SMTP server on 127.0.0.1; `inbox.url` is an EMAIL_URL."""

    def __init__(self) -> None:
        self.port = find_free_port()
        self.delivered: list[Delivered] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.delivered.append(
                Delivered(time.time(), envelope.mail_from, tuple(envelope.rcpt_tos), message)
            )
        return "250 Message accepted for delivery"

    def wait_for(
        self, predicate: Callable[[Delivered], bool], *, timeout: float
    ) -> Delivered | None:
        """The first message matching `predicate` within `timeout` seconds, else None."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = [m for m in self.delivered if predicate(m)]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
