"""The admin's live refresh re-reads pages in the background without eating the messages staff are owed."""

from __future__ import annotations

import pytest
from django.urls import reverse

from supervisors.models import RestorationLog

pytestmark = pytest.mark.django_db

LIVE = {"HTTP_X_REQUESTED_WITH": "sv-live"}


def test_a_background_refresh_between_a_restore_and_its_redirect_leaves_the_message(admin_client, world):
    """Found in CI: the attention page's refresh crossed a restore's redirect and the "restored" message was gone."""
    alpha = world["alpha"]
    restore = reverse("admin:supervisors_supervisorstate_restore", args=[alpha.pk])
    done = admin_client.post(restore, {"reason": "night crash", "mode": "restore"})
    assert done.status_code == 302 and RestorationLog.objects.count() == 1
    # live.js on the page staff came from re-reads it while the browser follows the redirect.
    refreshed = admin_client.get(reverse("admin:supervisors_supervisorstate_attention"), **LIVE)
    assert refreshed.status_code == 200
    page = admin_client.get(done["Location"])
    assert "Alpha contract: Restore: restored" in page.content.decode()
    # An ordinary page view uses the messages up, as always.
    again = admin_client.get(done["Location"])
    assert "Alpha contract: Restore: restored" not in again.content.decode()
