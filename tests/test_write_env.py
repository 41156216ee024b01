"""scripts/write_env.py, as `make run` calls it: keys written once, SITE_URL the one given.

The script runs as a subprocess with a controlled environment, as run.sh runs it, so these tests
see its console and exit code too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import environ
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "write_env.py"
OLD_SITE = "http://localhost:18700"
NEW_SITE = "http://127.0.0.1:18700"


def run_script(path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("SITE_URL", "PORT")}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--path", str(path), *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def read_as_django_does(path: Path) -> dict[str, str]:
    """The values django-environ reads from the file (tokenadmin/settings.py uses read_env)."""
    values: dict[str, str] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(environ.Env, "ENVIRON", values)
        environ.Env.read_env(path)
    return values


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    return tmp_path / ".env"


def test_it_writes_the_given_site_url_on_the_first_run(env_file):
    result = run_script(env_file, SITE_URL=NEW_SITE + "/")
    assert result.returncode == 0, result.stderr
    values = read_as_django_does(env_file)
    assert values["SITE_URL"] == NEW_SITE
    assert len(values["SECRET_KEY"]) >= 50 and values["ENCRYPTION_KEY"]
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert f"SITE_URL={NEW_SITE}" in result.stdout
    for secret in (values["SECRET_KEY"], values["ENCRYPTION_KEY"]):
        assert secret not in result.stdout + result.stderr


def test_it_writes_localhost_and_port_when_no_site_url_is_given(env_file):
    assert run_script(env_file, PORT="18999").returncode == 0
    assert read_as_django_does(env_file)["SITE_URL"] == "http://localhost:18999"


def test_the_given_site_url_replaces_a_different_one_and_keeps_the_keys(env_file):
    assert run_script(env_file, SITE_URL=OLD_SITE).returncode == 0
    before = read_as_django_does(env_file)
    env_file.write_text(env_file.read_text() + "EMAIL_URL=consolemail://\n# a note\n")
    text_before = env_file.read_text()

    result = run_script(env_file, SITE_URL=NEW_SITE)

    assert result.returncode == 0, result.stderr
    after = read_as_django_does(env_file)
    assert after["SITE_URL"] == NEW_SITE
    assert {k: v for k, v in after.items() if k != "SITE_URL"} == {
        k: v for k, v in before.items() if k != "SITE_URL"
    } | {"EMAIL_URL": "consolemail://"}
    # Every other line is kept byte for byte, in its place; the mode too.
    assert env_file.read_text() == text_before.replace(
        f"SITE_URL={OLD_SITE}", f"SITE_URL={NEW_SITE}"
    )
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert f"was {OLD_SITE}; now {NEW_SITE}" in result.stdout
    assert f"register {NEW_SITE}/oauth/callback/" in result.stdout
    assert not list(env_file.parent.glob(".env.*")), "a temporary file was left behind"


def test_it_keeps_the_site_url_of_env_when_none_is_given(env_file):
    run_script(env_file, SITE_URL=OLD_SITE)
    text = env_file.read_text()
    result = run_script(env_file)
    assert result.returncode == 0
    assert env_file.read_text() == text
    assert "kept existing" in result.stdout
    assert f"SITE_URL={OLD_SITE}" in result.stdout


def test_it_leaves_the_file_alone_when_the_given_site_url_is_already_there(env_file):
    run_script(env_file, SITE_URL=NEW_SITE)
    text, mtime = env_file.read_text(), env_file.stat().st_mtime_ns
    result = run_script(env_file, SITE_URL=NEW_SITE + "/")
    assert "kept existing" in result.stdout
    assert (env_file.read_text(), env_file.stat().st_mtime_ns) == (text, mtime)


def test_it_replaces_every_assignment_and_adds_one_when_missing(env_file):
    env_file.write_text(
        f"SECRET_KEY=k\nSITE_URL={OLD_SITE}\nexport SITE_URL='{OLD_SITE}'\n# SITE_URL=x\n"
    )
    run_script(env_file, SITE_URL=NEW_SITE)
    assert env_file.read_text() == (
        f"SECRET_KEY=k\nSITE_URL={NEW_SITE}\nexport SITE_URL={NEW_SITE}\n# SITE_URL=x\n"
    )
    env_file.write_text(f"SECRET_KEY=k\r\nSITE_URL={OLD_SITE}\r\n")  # line endings kept
    run_script(env_file, SITE_URL=NEW_SITE)
    assert env_file.read_bytes() == f"SECRET_KEY=k\r\nSITE_URL={NEW_SITE}\r\n".encode()
    env_file.write_text("SECRET_KEY=k")  # no SITE_URL, no final newline
    result = run_script(env_file, SITE_URL=NEW_SITE)
    assert env_file.read_text() == f"SECRET_KEY=k\nSITE_URL={NEW_SITE}\n"
    assert "added SITE_URL" in result.stdout


def test_it_rewrites_the_file_a_symlinked_env_names_and_keeps_the_link(env_file):
    target = env_file.with_name("real.env")
    target.write_text(f"SECRET_KEY=k\nSITE_URL={OLD_SITE}\n")
    env_file.symlink_to(target)
    run_script(env_file, SITE_URL=NEW_SITE)
    assert env_file.is_symlink()
    assert target.read_text() == f"SECRET_KEY=k\nSITE_URL={NEW_SITE}\n"


@pytest.mark.parametrize(
    "bad", ["127.0.0.1:18700", "ftp://example.com", "http://", "http://a b", "http://x:99999"]
)
def test_it_refuses_a_site_url_that_is_not_an_http_url_and_changes_nothing(env_file, bad):
    run_script(env_file, SITE_URL=OLD_SITE)
    text = env_file.read_text()
    result = run_script(env_file, SITE_URL=bad)
    assert result.returncode == 2
    assert "SITE_URL" in result.stderr and repr(bad) in result.stderr
    assert env_file.read_text() == text


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SITE_URL": NEW_SITE}, f"18700 {NEW_SITE}"),
        ({"SITE_URL": NEW_SITE, "PORT": "9000"}, f"9000 {NEW_SITE}"),
        ({"SITE_URL": "https://tokenadmin.example.com"}, "8000 https://tokenadmin.example.com"),
        # Behind a proxy the port is the proxy's, not ours to take.
        ({"SITE_URL": "https://tokens.example.com:8443"}, "8000 https://tokens.example.com:8443"),
        ({}, f"18700 {OLD_SITE}"),  # from .env
    ],
)
def test_the_bound_port_follows_site_url_unless_port_is_set(env_file, env, expected):
    env_file.write_text(f"SECRET_KEY=k\nSITE_URL={OLD_SITE}\n")
    result = run_script(env_file, "--print-bind", **env)
    assert result.stdout.strip() == expected
    assert env_file.read_text() == f"SECRET_KEY=k\nSITE_URL={OLD_SITE}\n"  # changes nothing


def test_it_warns_when_a_local_site_url_names_another_port_than_the_one_bound(env_file):
    result = run_script(env_file, SITE_URL=NEW_SITE, PORT="9000")
    assert "warning: SITE_URL http://127.0.0.1:18700 points at port 18700" in result.stdout
    assert "listens on 9000" in result.stdout
    quiet = run_script(env_file, SITE_URL="https://tokenadmin.example.com", PORT="9000")
    assert "warning" not in quiet.stdout
