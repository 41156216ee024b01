"""Demo mode is one switch, TOKENADMIN_DEMO: with it, the demo provider (django-oauth-toolkit) is
installed and routed under /demo-provider/ and the demo keeps to its own SQLite file, console
email and ORM broker; without it none of that exists."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import Client

from tests.demo.harness import PROJECT_ROOT
from tests.support.settings_env import real_settings_env

# Prints what a process with the project's real settings (not the test settings) has.
PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.urls import Resolver404, resolve

def routed(path):
    try:
        resolve(path)
    except Resolver404:
        return False
    return True

print(json.dumps({
    "apps": [a for a in settings.INSTALLED_APPS if a in ("oauth2_provider", "tokenadmin.demo")],
    "routed": [p for p in ("/demo-provider/authorize/", "/demo-provider/token/",
                           "/demo-provider/login/", "/demo-provider/userinfo/") if routed(p)],
    "database": str(settings.DATABASES["default"]["NAME"]),
    "email": settings.EMAIL_BACKEND,
    "redis": settings.REDIS_URL,
    "dot": getattr(settings, "OAUTH2_PROVIDER", None),
    "leads": [lead.total_seconds() for lead in settings.TOKENADMIN["WARNING_LEAD_TIMES"]],
    "alert_emails": settings.TOKENADMIN["ALERT_EMAILS"],
    "django_q_log": settings.LOGGING["loggers"].get("django-q"),
}, default=str))
"""
# What a real deployment might have in its environment: the demo must use none of it.
DEPLOYMENT_ENV = {
    "DATABASE_URL": "postgres://user:pw@db.example.com:5432/tokenadmin",
    "REDIS_URL": "redis://redis.example.com:6379/0",
    "EMAIL_URL": "smtp://user:pw@smtp.example.com:587",
}


def probe(**env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=PROJECT_ROOT,
        env=real_settings_env(drop=tuple(DEPLOYMENT_ENV), **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_outside_demo_mode_nothing_of_the_demo_is_installed_or_routed():
    found = probe(TOKENADMIN_DEMO="0", **DEPLOYMENT_ENV)
    assert found["apps"] == []
    assert found["routed"] == []
    assert found["dot"] is None
    assert found["database"] == "tokenadmin"  # DATABASE_URL as given
    assert found["redis"] == DEPLOYMENT_ENV["REDIS_URL"]
    assert found["leads"] == [days * 86400 for days in (14, 7, 3, 1)]
    assert found["alert_emails"] == []
    assert found["django_q_log"] is None


def test_demo_mode_installs_and_routes_the_demo_provider_on_its_own_database():
    found = probe(TOKENADMIN_DEMO="1", **DEPLOYMENT_ENV)
    assert found["apps"] == ["oauth2_provider", "tokenadmin.demo"]
    assert len(found["routed"]) == 4
    assert found["database"] == str(PROJECT_ROOT / "demo.sqlite3")
    assert found["email"] == "django.core.mail.backends.console.EmailBackend"
    assert found["redis"] == ""
    assert found["leads"] == [600, 300]
    assert found["alert_emails"] == ["demo-alerts@example.com"]
    assert found["django_q_log"] == {"level": "WARNING"}  # the console shows the demo's events
    dot = found["dot"]
    # Access tokens of 2 minutes; rotating refresh tokens; a 15-minute grant.
    assert (dot["ACCESS_TOKEN_EXPIRE_SECONDS"], dot["REFRESH_TOKEN_EXPIRE_SECONDS"]) == (120, 900)
    assert dot["ROTATE_REFRESH_TOKEN"] is True


def test_the_demo_takes_shorter_lifetimes_and_other_lead_times_when_asked():
    found = probe(
        TOKENADMIN_DEMO="1",
        TOKENADMIN_DEMO_ACCESS_SECONDS="60",
        TOKENADMIN_WARNING_LEAD_TIMES="3m",
    )
    assert found["dot"]["ACCESS_TOKEN_EXPIRE_SECONDS"] == 60
    assert found["leads"] == [180]


def test_the_test_settings_are_not_in_demo_mode():
    assert not settings.TOKENADMIN_DEMO
    assert "oauth2_provider" not in settings.INSTALLED_APPS


@pytest.mark.django_db
def test_outside_demo_mode_the_demo_provider_is_not_found():
    for path in ("/demo-provider/login/", "/demo-provider/authorize/", "/demo-provider/token/"):
        assert Client().get(path).status_code == 404


def test_outside_demo_mode_there_is_no_demo_setup_command():
    result = subprocess.run(
        [sys.executable, "manage.py", "demo_setup"],
        cwd=PROJECT_ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("TOKENADMIN_")}
        | {
            "DJANGO_SETTINGS_MODULE": "tokenadmin.settings",
            "SECRET_KEY": "probe-secret-key",
            "ENCRYPTION_KEY": "probe-encryption-key",
            "TOKENADMIN_DEMO": "0",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Unknown command: 'demo_setup'" in result.stderr
