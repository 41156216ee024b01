"""Helpers for the alert-life tests: the alert jobs run by two workers at once, consent through
a reauthorization link at the in-process fake provider, and what each email says it is.

The clock, the fake provider and the engine's schedules come from tests/background/
(simulation.py, fake_provider.py); this adds what the cluster does for alerts each hour: the
reminder job (`alerts.tasks.send_reminders`) and the delivery task (`alerts.tasks.deliver_alerts`).
"""

import re
import threading
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from django.core.mail import EmailMessage
from django.db import connection as db_connection
from django.test import Client

from alerts.tasks import deliver_alerts, send_reminders
from tests.background.fake_provider import FakeProvider

# Lines may end in CRLF (as they do after a trip through SMTP).
LINK = re.compile(r"^(https?://\S+/reauth/\S+/)\r?$", re.MULTILINE)
FOOTER = re.compile(r"^tokenadmin · (?P<event>\S+)(?: · (?P<lead>T-\d+d))?\r?$", re.MULTILINE)
WAIT_SECONDS = 120  # a stuck worker fails the test instead of hanging it


class AlertWorkers:
    """Two alert workers, as two cluster workers would run them: at each `run()` both run the
    hourly reminder job and then the delivery task, released at the same moment, while the
    caller waits. Their database connections live as long as the threads, like a worker's."""

    def __init__(self, count: int = 2) -> None:
        self._start = threading.Barrier(count + 1)
        self._done = threading.Barrier(count + 1)
        self.errors: list[BaseException] = []
        self.summaries: list[str] = []
        self._threads = [
            threading.Thread(target=self._work, name=f"alert-worker-{n}", daemon=True)
            for n in range(count)
        ]

    def __enter__(self) -> "AlertWorkers":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._start.abort()
        self._done.abort()
        for thread in self._threads:
            thread.join(timeout=WAIT_SECONDS)

    def run(self) -> None:
        """One hour's alert work, by every worker at once; returns when all are done."""
        self._start.wait(timeout=WAIT_SECONDS)
        self._done.wait(timeout=WAIT_SECONDS)
        assert self.errors == [], self.errors

    def _work(self) -> None:
        try:
            while True:
                try:
                    self._start.wait()
                except threading.BrokenBarrierError:
                    return
                try:
                    self.summaries += [send_reminders(), deliver_alerts()]
                except BaseException as exc:  # reported by run(), not lost in the thread
                    self.errors.append(exc)
                try:
                    self._done.wait()
                except threading.BrokenBarrierError:
                    return
        finally:
            db_connection.close()


def consent_through_link(link: str, fake: FakeProvider, *, username: str = "alice") -> Client:
    """A person opens `link`, consents at `fake` as `username`, and comes back to the callback,
    in one browser (a test client keeps the session the flow is bound to)."""
    browser = Client()
    opened = browser.get(urlsplit(link).path)
    assert opened.status_code == 302, opened.content.decode()
    state = parse_qs(urlsplit(opened["Location"]).query)["state"][0]
    # The fake has no consent page: consenting there is what `authorize` stands for.
    back = browser.get("/oauth/callback/", {"state": state, "code": fake.authorize(username)})
    assert back.status_code == 200, back.content.decode()
    return browser


@dataclass(frozen=True)
class Received:
    """One email as the test reads it: when it arrived, to whom, which event and lead time."""

    at: datetime
    to: str
    event: str
    lead: str
    subject: str


def read_email(message: EmailMessage, *, at: datetime) -> Received:
    footer = FOOTER.search(message.body)
    assert footer is not None, message.body
    return Received(
        at=at,
        to=", ".join(message.to),
        event=footer["event"],
        lead=footer["lead"] or "",
        subject=message.subject,
    )


def link_in(message: EmailMessage) -> str:
    [link] = LINK.findall(message.body)
    return link
