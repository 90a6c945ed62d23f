"""Behind a TLS-terminating proxy: one switch, trusted proxies only, and a clear warning about redirect loops."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from tests.foundation.conftest import clean_environment

PRODUCTION = {
    "SECRET_KEY": "k7Yp2vQ9zL4xW8mN3bR6tF1hJ5cD0sG2aE7uI9oP4yT6rV8nM3qX1wZ5lK0jH2gB",
    "ALLOWED_HOSTS": "supervisor.example.com,testserver",
}
PROXY_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def manage(checkout: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=checkout,
        env=clean_environment(DJANGO_SETTINGS_MODULE="makima_supervisor.settings", **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def loop_warnings() -> list[str]:
    return [m.id for m in run_checks() if m.id == "supervisors.W001"]


def test_https_redirect_without_a_trusted_forwarded_protocol_warns():
    with override_settings(SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=None):
        assert loop_warnings() == ["supervisors.W001"]
    with override_settings(SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=PROXY_HEADER):
        assert loop_warnings() == []
    with override_settings(SECURE_SSL_REDIRECT=False, SECURE_PROXY_SSL_HEADER=None):
        assert loop_warnings() == []


def test_production_without_the_proxy_setting_is_warned_of_the_redirect_loop_at_start_up(fresh_checkout: Path):
    result = manage(fresh_checkout, "check", **PRODUCTION)
    assert result.returncode == 0
    assert "supervisors.W001" in result.stderr and "redirect loop" in result.stderr
    assert "BEHIND_TLS_PROXY=true" in result.stderr


def test_behind_tls_proxy_sets_header_trusted_proxies_and_secure_cookies_together(fresh_checkout: Path):
    script = (
        "import json; from django.conf import settings as s; print(json.dumps([s.SECURE_PROXY_SSL_HEADER, "
        "s.TRUSTED_PROXIES, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE]))"
    )
    # DEBUG too: behind an HTTPS proxy cookies go over HTTPS only, whatever the mode.
    result = manage(
        fresh_checkout, "shell", "-c", script, DEBUG="true", BEHIND_TLS_PROXY="true", TRUSTED_PROXIES="10.0.0.0/8"
    )
    assert result.returncode == 0, result.stderr
    header, proxies, session_secure, csrf_secure = json.loads(result.stdout.strip().splitlines()[-1])
    assert header == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert proxies == ["10.0.0.0/8"]
    assert session_secure and csrf_secure

    deploy = manage(
        fresh_checkout, "check", "--deploy", "--fail-level", "WARNING", BEHIND_TLS_PROXY="true", **PRODUCTION
    )
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert "no issues" in deploy.stdout


@pytest.mark.django_db
@override_settings(SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=PROXY_HEADER, TRUSTED_PROXIES=["10.0.0.5"])
def test_forwarded_protocol_is_believed_from_a_trusted_proxy_only(client):
    """The proxy's HTTPS request is served; the same header from anyone else is ignored (redirected)."""
    via_proxy = client.get("/admin/login/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_PROTO="https")
    assert via_proxy.status_code == 200
    forged = client.get("/admin/login/", REMOTE_ADDR="192.0.2.7", HTTP_X_FORWARDED_PROTO="https")
    assert forged.status_code == 301
    assert forged["Location"].startswith("https://")


@pytest.mark.django_db
@override_settings(SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=PROXY_HEADER, TRUSTED_PROXIES=["10.0.0.0/8"])
def test_trusted_proxies_take_cidr_blocks(client):
    assert client.get("/admin/login/", REMOTE_ADDR="10.20.30.40", HTTP_X_FORWARDED_PROTO="https").status_code == 200
