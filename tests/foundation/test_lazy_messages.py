"""browser_middleware.MessageMiddleware: messages still travel across a redirect; untouched requests pay nothing."""

from __future__ import annotations

import pytest
from django.utils.functional import SimpleLazyObject, empty

pytestmark = [pytest.mark.urls("tests.foundation.lazy_messages_urls"), pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


def test_a_message_added_before_a_redirect_is_shown_once_after_it(client):
    response = client.get("/add/")
    assert response.status_code == 302
    assert "messages" in response.cookies  # stored, as with Django's own middleware
    assert client.get("/show/").content == b"Saved <b>it</b>."
    assert client.get("/show/").content == b""  # shown once, then gone


def test_a_request_that_never_reads_messages_builds_no_storage_and_keeps_the_cookie(client):
    client.get("/add/")
    response = client.get("/untouched/")
    lazy = response.wsgi_request._messages
    assert isinstance(lazy, SimpleLazyObject) and lazy._wrapped is empty
    assert "messages" not in response.cookies  # the pending message's cookie was left alone
    assert client.get("/show/").content == b"Saved <b>it</b>."
