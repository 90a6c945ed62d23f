import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_pages_render(admin_client, world):
    for url in [
        reverse("admin:supervisors_supervisorstate_changelist"),
        reverse("admin:supervisors_supervisorstate_change", args=[world["gamma"].pk]),
        reverse("admin:supervisors_supervisorstate_questions"),
        reverse("admin:supervisors_supervisorstate_dashboard"),
        reverse("admin:supervisors_supervisorstate_restore", args=[world["gamma"].pk]),
        reverse("admin:supervisors_supervisorstate_correct", args=[world["gamma"].pk]),
        reverse("admin:index"),
    ]:
        r = admin_client.get(url)
        assert r.status_code == 200, url
