"""The admin shows a daemon's liveness from its lease, never the stored status (which can lie)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from supervisors.enums import DaemonStatus
from supervisors.models import Daemon

from .conftest import staff_with


def test_a_daemon_stored_as_connected_but_silent_is_shown_gone_and_filtered_as_gone(db, client, settings):
    staff = staff_with("ops", "view_daemon", "change_daemon")
    client.force_login(staff)
    long_ago = timezone.now() - timedelta(seconds=settings.DAEMON_GONE_AFTER_SECONDS + 60)
    Daemon.objects.create(name="says-connected", status=DaemonStatus.CONNECTED, last_heartbeat_at=long_ago)
    Daemon.objects.create(name="really-alive", status=DaemonStatus.CONNECTED, last_heartbeat_at=timezone.now())

    page = client.get("/admin/supervisors/daemon/").content.decode()
    row_of_liar = page[page.index("says-connected") : page.index("</tr>", page.index("says-connected"))]
    assert "gone" in row_of_liar and "silent since" in row_of_liar
    row_of_alive = page[page.index("really-alive") : page.index("</tr>", page.index("really-alive"))]
    assert "alive" in row_of_alive and "lease until" in row_of_alive

    gone = client.get("/admin/supervisors/daemon/?liveness=gone").content.decode()
    assert "says-connected" in gone and "really-alive" not in gone
    alive_only = client.get("/admin/supervisors/daemon/?liveness=alive").content.decode()
    assert "really-alive" in alive_only and "says-connected" not in alive_only


def test_the_lease_cannot_be_typed_in_on_the_daemon_page(db, client):
    staff = staff_with("ops", "view_daemon", "change_daemon")
    client.force_login(staff)
    daemon = Daemon.objects.create(name="d", status=DaemonStatus.DISCONNECTED)
    page = client.get(f"/admin/supervisors/daemon/{daemon.pk}/change/").content.decode()
    assert 'name="last_heartbeat_at' not in page and 'name="status"' not in page
    response = client.post(
        f"/admin/supervisors/daemon/{daemon.pk}/change/",
        {"name": "d", "status": "connected", "last_heartbeat_at_0": "2099-01-01", "last_heartbeat_at_1": "00:00:00"},
    )
    assert response.status_code == 302
    daemon.refresh_from_db()
    assert (daemon.status, daemon.last_heartbeat_at) == (DaemonStatus.DISCONNECTED, None)
