"""The lease rule (issue 11, item 2): when a daemon counts as gone, in Python and as a filter, alike."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from supervisors.enums import DaemonStatus
from supervisors.models import Daemon
from supervisors.services.ownership import daemon_gone_q, is_daemon_gone

NOW = timezone.now()
GONE = timedelta(seconds=120)


@pytest.mark.parametrize(
    "status,heard,created,gone",
    [
        (DaemonStatus.DISCONNECTED, None, NOW, False),  # brand new, never heard from: give it the lease's time
        (DaemonStatus.DISCONNECTED, None, NOW - GONE - timedelta(seconds=1), True),  # never heard from, too long
        (DaemonStatus.CONNECTED, NOW - timedelta(seconds=5), NOW - GONE * 10, False),
        (DaemonStatus.CONNECTED, NOW - GONE - timedelta(seconds=1), NOW - GONE * 10, True),  # silent: lease ran out
        (DaemonStatus.DISCONNECTED, NOW - timedelta(seconds=1), NOW - GONE * 10, True),  # said it is leaving
    ],
)
@pytest.mark.django_db
def test_is_daemon_gone_and_its_filter_agree(status, heard, created, gone, settings):
    settings.DAEMON_GONE_AFTER_SECONDS = GONE.total_seconds()
    daemon = Daemon(name="d", status=status, last_heartbeat_at=heard, created_at=created)
    assert is_daemon_gone(daemon, NOW) is gone
    daemon.save()
    Daemon.objects.filter(pk=daemon.pk).update(created_at=created)  # auto_now_add ignores the value on insert
    assert Daemon.objects.filter(daemon_gone_q(NOW), pk=daemon.pk).exists() is gone


def test_no_daemon_at_all_is_gone():
    assert is_daemon_gone(None)
