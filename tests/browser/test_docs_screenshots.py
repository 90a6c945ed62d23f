"""Not a check: refreshes docs/admin-*.png from seed_demo's data, at a laptop's 1366 px.

ADMIN_SCREENSHOTS=1 .venv/bin/python -m pytest tests/browser/test_docs_screenshots.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from supervisors.demo import demo_id, seed_demo
from supervisors.enums import RestorationSource
from supervisors.models import Daemon, SupervisorState
from supervisors.services.actors import Actor
from supervisors.services.questions import clear_pending_question
from supervisors.services.restoration import restore_supervisor
from supervisors.services.state import update_supervisor_phase

from .conftest import login

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.browser,
    pytest.mark.skipif(not os.environ.get("ADMIN_SCREENSHOTS"), reason="set ADMIN_SCREENSHOTS=1 to refresh docs/*.png"),
]

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_screenshots_for_the_docs(browser, live_http):
    boss = User.objects.create_superuser("boss", password="pw")
    seed_demo()
    billing = SupervisorState.objects.get(contract_id=demo_id("contract", "Billing service migration"))
    update_supervisor_phase(billing.contract_id, "review")  # a checkpoint to compare with
    restore_supervisor(
        billing.contract_id, source=RestorationSource.MANUAL, actor=Actor.staff(boss), reason="night crash"
    )
    asked = SupervisorState.objects.get(contract_id=demo_id("contract", "Mobile onboarding redesign"))
    clear_pending_question(asked.contract_id, asked.pending_questions[0]["id"], answer="later", actor=Actor.staff(boss))
    context = browser.new_context(base_url=live_http.url, viewport={"width": 1366, "height": 900})
    page = context.new_page()
    login(page, "boss")
    shots = {
        "admin-attention.png": "/admin/supervisors/supervisorstate/attention/",
        "admin-list.png": "/admin/supervisors/supervisorstate/",
        "admin-supervisor.png": f"/admin/supervisors/supervisorstate/{billing.pk}/change/",
        "admin-timeline.png": f"/admin/supervisors/supervisorstate/{asked.pk}/timeline/",
        "admin-dashboard.png": "/admin/supervisors/supervisorstate/dashboard/",
        "admin-questions.png": "/admin/supervisors/supervisorstate/questions/",
        "admin-daemon.png": f"/admin/supervisors/daemon/{Daemon.objects.get(name='daemon-gamma').pk}/change/",
        "admin-restore-confirmation.png": (
            f"/admin/supervisors/supervisorstate/{billing.pk}/restore/"
            f"?mode=checkpoint&checkpoint={billing.checkpoints.order_by('id').first().pk}"
        ),
    }
    for name, url in shots.items():
        page.goto(url)
        page.screenshot(path=str(DOCS / name), full_page=True)
    context.close()


def test_notification_screenshots_for_the_docs(browser, live_http, settings):
    """docs/admin-deliveries.png and docs/admin-subscription.png: seed_demo's events, delivered or dead-lettered."""
    from supervisors.models import Delivery, Subscription
    from supervisors.services.notifications import deliver_due_notifications, dispatch_new_events

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.NOTIFICATIONS_RETRY_FOR_SECONDS = 0  # the unreachable webhook's deliveries are dead letters at once
    User.objects.create_superuser("boss", password="pw")
    Subscription.objects.create(name="on-call email", email="oncall@example.com", event_types=["question_asked"])
    hook = Subscription.objects.create(
        name="chat bridge (down)", webhook_url="http://127.0.0.1:9/makima", event_types=["question_asked", "stale"]
    )
    seed_demo()
    from supervisors.services.questions import add_supervisor_pending_question

    texts = ["Deploy the migration to production now?", "Use the staging database for the backfill?", "Ship it?"]
    for supervisor, text in zip(
        SupervisorState.objects.exclude(state="completed").order_by("contract__name")[:3], texts, strict=False
    ):
        add_supervisor_pending_question(supervisor.contract_id, {"question": text, "choices": ["yes", "no"]})
    dispatch_new_events()
    deliver_due_notifications(limit=200)
    statuses = list(Delivery.objects.values_list("event_type", "status", "last_error"))
    assert {"dead", "delivered"} <= {s for _, s, _ in statuses}, statuses
    context = browser.new_context(base_url=live_http.url, viewport={"width": 1366, "height": 900})
    page = context.new_page()
    login(page, "boss")
    for name, url in {
        "admin-deliveries.png": "/admin/supervisors/delivery/",
        "admin-subscription.png": f"/admin/supervisors/subscription/{hook.pk}/change/",
    }.items():
        page.goto(url)
        page.screenshot(path=str(DOCS / name), full_page=True)
    context.close()
