"""Fixtures for the admin tests: staff users with different permissions, and a small world."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from supervisors.enums import SupervisorStatus
from tests.factories import make_contract, make_question, make_supervisor, make_task


@pytest.fixture(autouse=True)
def plain_http(settings):
    """The test client speaks plain HTTP; production settings would redirect it to HTTPS."""
    settings.SECURE_SSL_REDIRECT = False


def staff_with(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="supervisors", codename__in=codenames))
    return user


VIEW_ALL = ("view_supervisorstate", "view_contract", "view_task", "view_daemon")


@pytest.fixture
def viewer(client) -> User:
    """Staff who may look but not restore or answer."""
    return staff_with("viewer", *VIEW_ALL)


@pytest.fixture
def answerer() -> User:
    return staff_with("answerer", *VIEW_ALL, "answer_question")


@pytest.fixture
def world():
    """Three supervisors: one stale and working, one waiting for the user, one with a bad pending task."""
    now = timezone.now()
    alpha = make_supervisor(
        make_contract("Alpha contract"),
        state=SupervisorStatus.WORKING,
        progress=40,
        current_activity="Compiling the parser",
        last_activity=now - timedelta(hours=2),
    )
    question = make_question("Merge the <script>alert(1)</script> branch?", choices=["merge", "wait"])
    beta = make_supervisor(
        make_contract("Beta contract"),
        state=SupervisorStatus.WAITING_FOR_USER,
        pending_questions=[question],
        last_activity=now,
    )
    gamma_contract = make_contract("Gamma contract")
    stray = make_task(gamma_contract, name="stray")
    gamma = make_supervisor(
        gamma_contract,
        state=SupervisorStatus.WAITING_FOR_TASKS,
        pending_task_ids=[stray.id],
        error_message="daemon lost",
        last_activity=now,
    )
    return {"alpha": alpha, "beta": beta, "gamma": gamma, "question": question, "stray": stray}
