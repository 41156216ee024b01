"""Start, stop and steer the test authorization server from tests.

``AuthServer.start`` launches ``python -m tests.authserver.serve`` as a subprocess; the
methods here speak to its ``/control/`` endpoints and script a user's login and consent.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

from tests.authserver.keys import generate_rsa_private_key_pem
from tests.processes import wait_for_http

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REQUEST_TIMEOUT = 10.0
START_TIMEOUT = 30.0
DEFAULT_PASSWORDS = {"alice": "pw-alice", "bob": "pw-bob"}


class AuthServerError(RuntimeError):
    pass


class FormParser(HTMLParser):
    """Collects the inputs of the first <form> on a page (login and DOT consent pages)."""

    def __init__(self) -> None:
        super().__init__()
        self.in_form = False
        self.seen_form = False
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "form" and not self.seen_form:
            self.in_form = self.seen_form = True
        elif tag == "input" and self.in_form:
            attributes = dict(attrs)
            # Submit buttons are chosen by the caller, not sent wholesale.
            if attributes.get("name") and attributes.get("type") != "submit":
                self.fields[attributes["name"] or ""] = attributes.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.in_form = False


def parse_form_fields(html: str) -> dict[str, str] | None:
    parser = FormParser()
    parser.feed(html)
    return parser.fields if parser.seen_form else None


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AuthServer:
    def __init__(self, *, process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
        self.process = process
        self._base_url = base_url
        self.log_path = log_path
        self.http = requests.Session()
        # Remembered so consent() can log in as any user a test created.
        self.passwords = dict(DEFAULT_PASSWORDS)

    @classmethod
    def start(
        cls, tmp_dir: Path | str, *, access_ttl: int = 3600, refresh_ttl: int = 600
    ) -> AuthServer:
        tmp_dir = Path(tmp_dir)
        tmp_dir.mkdir(parents=True, exist_ok=True)
        port = find_free_port()
        base_url = f"http://127.0.0.1:{port}"
        db_path = tmp_dir / f"authserver-{port}.sqlite3"
        log_path = tmp_dir / f"authserver-{port}.log"
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env.update(
            AUTHSERVER_DB=str(db_path),
            AUTHSERVER_BASE_URL=base_url,
            AUTHSERVER_ACCESS_TTL=str(access_ttl),
            AUTHSERVER_REFRESH_TTL=str(refresh_ttl),
            AUTHSERVER_RSA_KEY=generate_rsa_private_key_pem(),
            PYTHONUNBUFFERED="1",
        )
        # Output goes to a file, not a pipe: nobody drains a pipe and a full one blocks the server.
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.authserver.serve",
                    "--port",
                    str(port),
                    "--db",
                    str(db_path),
                ],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = cls(process=process, base_url=base_url, log_path=log_path)
        server.wait_until_ready()
        return server

    def wait_until_ready(self, timeout: float = START_TIMEOUT) -> None:
        try:
            wait_for_http(
                self.process,
                self.issuer + "/.well-known/openid-configuration",
                timeout=timeout,
                what="authserver",
                read_log=self.read_log,
                error=AuthServerError,
            )
        except AuthServerError:
            self.stop()
            raise

    def read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    # Endpoints, as published in the discovery document.
    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def issuer(self) -> str:
        return self._base_url + "/o"

    @property
    def authorize_url(self) -> str:
        return self.issuer + "/authorize/"

    @property
    def token_url(self) -> str:
        return self.issuer + "/token/"

    @property
    def userinfo_url(self) -> str:
        return self.issuer + "/userinfo/"

    @property
    def revoke_url(self) -> str:
        return self.issuer + "/revoke_token/"

    @property
    def introspect_url(self) -> str:
        return self.issuer + "/introspect/"

    @property
    def jwks_url(self) -> str:
        return self.issuer + "/.well-known/jwks.json"

    # Control endpoints.
    def _control(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        response = self.http.request(
            method, f"{self._base_url}/control/{path}", json=payload, timeout=REQUEST_TIMEOUT
        )
        if response.status_code >= 400:
            raise AuthServerError(
                f"{method} /control/{path} -> {response.status_code}: {response.text[:500]}"
            )
        return response.json()

    def register_client(
        self,
        redirect_uri: str,
        *,
        skip_authorization: bool = True,
        token_endpoint_auth: str = "basic",
    ) -> tuple[str, str]:
        data = self._control(
            "POST",
            "clients/",
            {
                "redirect_uri": redirect_uri,
                "skip_authorization": skip_authorization,
                "token_endpoint_auth": token_endpoint_auth,
            },
        )
        return data["client_id"], data["client_secret"]

    def create_user(self, username: str, password: str) -> None:
        self._control("POST", "users/", {"username": username, "password": password})
        self.passwords[username] = password

    def set_fault(self, mode: str, count: int = 1, delay: float = 3.0) -> None:
        self._control("POST", "faults/", {"mode": mode, "count": count, "delay": delay})

    def set_latency(self, seconds: float) -> None:
        self._control("POST", "faults/", {"latency": seconds})

    def stats(self) -> dict[str, int]:
        return self._control("GET", "stats/")

    def reset(self) -> None:
        self._control("POST", "reset/")

    def age(self, seconds: float) -> None:
        self._control("POST", "age/", {"seconds": seconds})

    def revoke_all(self, username: str) -> dict[str, int]:
        return self._control("POST", "revoke-all/", {"username": username})

    def consent(
        self,
        authorize_url: str,
        *,
        username: str = "alice",
        password: str | None = None,
        approve: bool = True,
    ) -> str:
        """Log in as ``username`` and answer ``authorize_url``; return the redirect's Location.

        The Location is the client's callback carrying ``code`` and ``state`` (or ``error=``,
        e.g. ``access_denied`` when ``approve`` is False and a consent form was shown).
        """
        if password is None:
            if username not in self.passwords:
                raise AuthServerError(f"no known password for {username!r}; pass password=")
            password = self.passwords[username]
        login_url = self._base_url + "/accounts/login/"
        with requests.Session() as browser:
            page = browser.get(login_url, timeout=REQUEST_TIMEOUT)
            fields = parse_form_fields(page.text) or {}
            fields.update(username=username, password=password)
            login = browser.post(
                login_url, data=fields, allow_redirects=False, timeout=REQUEST_TIMEOUT
            )
            if login.status_code != 302:
                raise AuthServerError(f"login as {username!r} failed ({login.status_code})")

            response = browser.get(authorize_url, allow_redirects=False, timeout=REQUEST_TIMEOUT)
            if response.status_code == 200:
                # skip_authorization is False: DOT shows its consent form.
                form = parse_form_fields(response.text)
                if form is None:
                    raise AuthServerError(f"authorize page has no form:\n{response.text[:1000]}")
                if approve:
                    form["allow"] = "Authorize"
                response = browser.post(
                    authorize_url,
                    data=form,
                    allow_redirects=False,
                    headers={"Referer": authorize_url},
                    timeout=REQUEST_TIMEOUT,
                )
            if response.status_code not in (301, 302, 303):
                raise AuthServerError(
                    f"authorize did not redirect ({response.status_code}):\n{response.text[:1000]}"
                )
            return urljoin(authorize_url, response.headers["Location"])
