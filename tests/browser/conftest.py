"""Playwright for Python driving Debian's Chromium (no browser download) against pytest-django's live server.

Skipped, with the reason, when no Chromium is found: set CHROMIUM=/path/to/chromium
to point at another one. .ci/run installs Debian's ``chromium`` package.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# The admin tests' world: Alpha (working, stale), Beta (a question with <script>), Gamma (a bad pending task).
from tests.admin.conftest import world  # noqa: F401

# Playwright's sync API runs an event loop in this thread; Django would refuse ORM calls
# from "async context" without this. The tests themselves are plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def find_chromium() -> str | None:
    wanted = os.environ.get("CHROMIUM")
    candidates = [wanted] if wanted else ["/usr/bin/chromium", shutil.which("chromium")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def pytest_collection_modifyitems(config, items):
    reason = None
    if find_chromium() is None:
        reason = "no Chromium found at $CHROMIUM or /usr/bin/chromium (apt-get install chromium, or set CHROMIUM=/path)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "playwright is not installed (pip install -r requirements.txt)"
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=find_chromium(), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def plain_live_server(django_db_setup, django_db_blocker):
    """A live server of its own that speaks plain HTTP.

    SecurityMiddleware reads SECURE_SSL_REDIRECT once, when the server builds its
    middleware, so the override is on only while this server starts; the settings
    read per request (cookies, hosts) are overridden per test in ``live_http``.
    """
    from django.test.utils import override_settings
    from pytest_django.live_server_helper import LiveServer

    with override_settings(SECURE_SSL_REDIRECT=False, SECURE_HSTS_SECONDS=0), django_db_blocker.unblock():
        server = LiveServer("localhost")
    yield server
    server.stop()


@pytest.fixture
def live_http(plain_live_server, settings, transactional_db):
    """The live server over plain HTTP, with cookies a browser sends over HTTP."""
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.ALLOWED_HOSTS = ["*"]
    return plain_live_server


@pytest.fixture
def page(browser, live_http):
    context = browser.new_context(base_url=live_http.url, viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    tab.dialogs = dialogs
    yield tab
    context.close()


def login(page, username: str, password: str = "pw") -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
