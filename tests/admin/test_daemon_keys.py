"""Daemon API keys from the admin: issued after a confirmation and shown once, revoked after a confirmation,
both recorded in the admin log, and the keys really work (or stop working) against the API."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.test import Client
from django.urls import reverse

from supervisors.api.authentication import clear_key_cache
from supervisors.models import DaemonApiKey
from supervisors.services.world import create_daemon_key, hash_key
from tests.factories import make_daemon

from .conftest import staff_with

KEYS_URL = reverse("admin:supervisors_daemonapikey_changelist")
KEY_PATTERN = re.compile(r"mks_[0-9a-f]+_[\w-]+")


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    clear_key_cache()
    yield
    clear_key_cache()


@pytest.fixture
def daemon(db):
    return make_daemon("worker-7")


def _logged_in(*codenames: str) -> Client:
    client = Client()
    client.force_login(staff_with("keyadmin-" + "-".join(codenames)[:80], *codenames))
    return client


def _api_status(raw_key: str) -> int:
    """What the API answers a request authenticated with this key."""
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}").get("/api/v1/supervisors/").status_code


def test_issuing_a_key_confirms_first_then_shows_the_key_once(daemon):
    client = _logged_in("view_daemon", "add_daemonapikey", "view_daemonapikey")
    issue_url = reverse("admin:supervisors_daemon_issue_key", args=[daemon.pk])

    page = client.get(reverse("admin:supervisors_daemon_change", args=[daemon.pk]))
    assert issue_url in page.content.decode()

    confirmation = client.get(issue_url)
    assert confirmation.status_code == 200
    assert "shown <strong>once</strong>" in confirmation.content.decode()
    assert not DaemonApiKey.objects.exists()

    issued = client.post(issue_url, {"name": "rack 3", "_confirm": "Yes"})
    assert issued.status_code == 200
    assert "no-store" in issued["Cache-Control"]
    raw = KEY_PATTERN.findall(issued.content.decode())
    assert len(raw) == 1
    raw = raw[0]
    key = DaemonApiKey.objects.get()
    assert (key.daemon_id, key.name, key.key_hash) == (daemon.pk, "rack 3", hash_key(raw))
    assert _api_status(raw) == 200

    entry = LogEntry.objects.get()
    assert (entry.action_flag, entry.object_id) == (ADDITION, str(key.pk))
    assert entry.user.username.startswith("keyadmin")
    assert raw not in entry.change_message and raw not in entry.object_repr

    # Shown once: nothing that comes later (the daemon's page, the keys list, its messages) holds it.
    for url in (reverse("admin:supervisors_daemon_change", args=[daemon.pk]), KEYS_URL):
        assert raw not in client.get(url).content.decode()
    assert raw not in str(dict(client.session))


def test_issuing_needs_the_add_permission(daemon):
    viewer = _logged_in("view_daemon", "view_daemonapikey")
    issue_url = reverse("admin:supervisors_daemon_issue_key", args=[daemon.pk])
    assert issue_url not in viewer.get(reverse("admin:supervisors_daemon_change", args=[daemon.pk])).content.decode()
    assert viewer.get(issue_url).status_code == 403
    assert viewer.post(issue_url, {"_confirm": "Yes"}).status_code == 403
    assert not DaemonApiKey.objects.exists()


def test_revoking_keys_confirms_first_then_revokes_through_the_service(daemon):
    first, second = create_daemon_key(daemon.pk, name="a"), create_daemon_key(daemon.pk, name="b")
    kept = create_daemon_key(daemon.pk, name="kept")
    client = _logged_in("view_daemonapikey", "change_daemonapikey")
    selected = [first.api_key.pk, second.api_key.pk]

    confirmation = client.post(KEYS_URL, {"action": "revoke_keys", ACTION_CHECKBOX_NAME: selected, "index": 0})
    assert confirmation.status_code == 200
    text = confirmation.content.decode()
    assert "revoke</strong> <strong>2</strong> API keys" in text
    assert first.api_key.prefix in text and kept.api_key.prefix not in text
    assert not DaemonApiKey.objects.filter(revoked_at__isnull=False).exists()
    assert _api_status(first.raw) == 200

    done = client.post(KEYS_URL, {"action": "revoke_keys", ACTION_CHECKBOX_NAME: selected, "_confirm": "Yes"})
    assert done.status_code == 302
    assert set(DaemonApiKey.objects.filter(revoked_at__isnull=False).values_list("pk", flat=True)) == set(selected)
    clear_key_cache()
    assert (_api_status(first.raw), _api_status(second.raw), _api_status(kept.raw)) == (401, 401, 200)
    entries = LogEntry.objects.filter(action_flag=CHANGE)
    assert sorted(int(e.object_id) for e in entries) == sorted(selected)
    assert all("Revoked API key" in e.change_message for e in entries)


def test_revoking_again_changes_nothing(daemon):
    issued = create_daemon_key(daemon.pk)
    client = _logged_in("view_daemonapikey", "change_daemonapikey")
    form = {"action": "revoke_keys", ACTION_CHECKBOX_NAME: [issued.api_key.pk], "_confirm": "Yes"}
    client.post(KEYS_URL, form)
    revoked_at = DaemonApiKey.objects.get().revoked_at
    client.post(KEYS_URL, form)
    assert DaemonApiKey.objects.get().revoked_at == revoked_at
    assert LogEntry.objects.count() == 1


def test_revoking_needs_the_change_permission(daemon):
    issued = create_daemon_key(daemon.pk)
    viewer = _logged_in("view_daemonapikey")
    listing = viewer.get(KEYS_URL).content.decode()
    assert "revoke_keys" not in listing
    viewer.post(KEYS_URL, {"action": "revoke_keys", ACTION_CHECKBOX_NAME: [issued.api_key.pk], "_confirm": "Yes"})
    assert DaemonApiKey.objects.get().revoked_at is None
    assert _api_status(issued.raw) == 200


def test_daemon_page_links_to_its_keys(daemon):
    mine = create_daemon_key(daemon.pk)
    other = create_daemon_key(make_daemon("other").pk)
    client = _logged_in("view_daemon", "view_daemonapikey")
    page = client.get(reverse("admin:supervisors_daemon_change", args=[daemon.pk])).content.decode()
    keys_url = f"{KEYS_URL}?daemon__id__exact={daemon.pk}"
    assert keys_url in page
    listing = client.get(keys_url)
    assert listing.status_code == 200
    assert mine.api_key.prefix in listing.content.decode()
    assert other.api_key.prefix not in listing.content.decode()
