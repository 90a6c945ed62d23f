"""The supervisor page: conversation by pages, validation, tasks, checkpoints; corrections through the service."""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from supervisors.admin.forms import AnswerForm
from supervisors.models import SupervisorState
from supervisors.services.state import update_supervisor_phase
from tests.factories import make_contract, make_supervisor

pytestmark = pytest.mark.django_db

#: A query that brings the whole conversation column back to Python (as opposed to a slice or a check).
LOADS_HISTORY = re.compile(r'(SELECT|,)\s*"supervisor_states"\."conversation_history"\s*(,|FROM)')


def form_data(form) -> dict[str, str]:
    """What the browser would post back for an untouched form."""
    data = {}
    for name in form.fields:
        value = form[name].value()
        data[name] = "" if value is None else value
    return data


def page_url(supervisor) -> str:
    return reverse("admin:supervisors_supervisorstate_change", args=[supervisor.pk])


def test_conversation_is_shown_a_page_at_a_time_and_collapsible(admin_client):
    history = [{"role": "user" if i % 2 else "assistant", "content": f"message number {i:03d}"} for i in range(60)]
    supervisor = make_supervisor(conversation_history=history)
    html = admin_client.get(page_url(supervisor)).content.decode()
    assert "(60 messages)" in html
    # It opens at the newest messages: page 3 of 3.
    assert "message number 050" in html and "message number 059" in html and "message number 049" not in html
    assert "Page 3 of 3" in html and "« oldest" in html and "newest »" not in html
    first = admin_client.get(page_url(supervisor), {"cpage": 1}).content.decode()
    assert "message number 000" in first and "message number 024" in first
    assert "message number 025" not in first
    assert first.count('<details class="sv-message') == 25
    assert "newest »" in first
    # Past the end or garbage: the newest page, not an empty one.
    for cpage in ("99", "99999999999999999999999", "x"):
        assert "message number 059" in admin_client.get(page_url(supervisor), {"cpage": cpage}).content.decode()


def test_search_in_the_conversation_runs_in_the_database_and_links_to_the_page(admin_client):
    history = [{"role": "user" if i % 2 else "assistant", "content": f"message number {i:03d}"} for i in range(60)]
    history[42]["content"] = "The Migration of table FOO failed"
    history[7] = {"role": "tool", "content": [{"type": "text", "text": "migration log"}]}  # content not a string
    supervisor = make_supervisor(conversation_history=history)
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(page_url(supervisor), {"csearch": "MIGRATION"})
    matches = response.context["conversation_matches"]
    assert [(m["match"].index, m["page"]) for m in matches] == [(7, 1), (42, 2)]
    assert matches[1]["match"].role == "assistant"
    assert "The Migration of table FOO failed" in matches[1]["match"].snippet
    html = response.content.decode()
    assert 'href="?cpage=2&amp;csearch=MIGRATION#m-42"' in html
    # The history itself is never selected whole: only slices and matches come back.
    assert [q["sql"] for q in ctx.captured_queries if LOADS_HISTORY.search(q["sql"])] == []
    on_page_two = admin_client.get(page_url(supervisor), {"cpage": 2, "csearch": "migration"}).content.decode()
    assert 'id="m-42" open' in on_page_two
    none = admin_client.get(page_url(supervisor), {"csearch": "nothing like this"})
    assert none.context["conversation_matches"] == []
    assert "No message contains" in none.content.decode()
    long = admin_client.get(page_url(supervisor), {"csearch": "x" * 201})
    assert "limited to 200 characters" in long.content.decode()


def test_page_reads_only_the_requested_slice_of_the_conversation(admin_client):
    history = [{"role": "assistant", "content": "x" * 1000} for _ in range(200)]
    supervisor = make_supervisor(conversation_history=history)
    with CaptureQueriesContext(connection) as ctx:
        admin_client.get(page_url(supervisor), {"cpage": 2})
    slicing = [
        q["sql"] for q in ctx.captured_queries if "e.key BETWEEN" in q["sql"] or "jsonb_path_query_array" in q["sql"]
    ]
    assert [q["sql"] for q in ctx.captured_queries if LOADS_HISTORY.search(q["sql"])] == []
    assert len(slicing) == 1


def test_a_history_that_is_not_an_array_is_shown_raw_and_flagged(admin_client):
    supervisor = make_supervisor()
    SupervisorState.objects.filter(pk=supervisor.pk).update(conversation_history={"oops": True})
    html = admin_client.get(page_url(supervisor)).content.decode()
    assert "is not a JSON array (it is object)" in html
    assert "Invalid." in html


def test_a_message_without_a_role_is_named_on_the_page_from_the_pass_that_reads_the_page(admin_client):
    """The history's checks ride in the query that reads its length: no query of their own, nothing loaded."""
    history = [{"role": "user", "content": f"m{i}"} for i in range(60)]
    history[3] = {"content": "who said this?"}
    supervisor = make_supervisor(conversation_history=history)
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(page_url(supervisor), {"cpage": 99})  # past the end: the newest page
    html = response.content.decode()
    assert "Conversation history message 3 must be an object with a non-empty string" in html
    assert "Invalid." in html
    assert response.context["conversation_page_number"] == 3 and "m59" in html
    assert [q["sql"] for q in ctx.captured_queries if LOADS_HISTORY.search(q["sql"])] == []
    reading_history = [q["sql"] for q in ctx.captured_queries if "conversation_history" in q["sql"]]
    assert len(reading_history) == 2, reading_history  # length and checks; the page's slice


def test_page_shows_validation_tasks_and_questions(admin_client, world):
    gamma_html = admin_client.get(page_url(world["gamma"])).content.decode()
    assert "Invalid." in gamma_html and "UseCheckpoint" in gamma_html
    assert "never spawned" in gamma_html or "never" in gamma_html
    assert str(world["stray"].id) in gamma_html
    assert reverse("admin:supervisors_task_change", args=[world["stray"].id]) in gamma_html
    beta_html = admin_client.get(page_url(world["beta"])).content.decode()
    assert "Pending questions (1)" in beta_html
    assert 'value="merge"' in beta_html and 'value="wait"' in beta_html


def test_checkpoints_are_listed_with_a_restore_button(admin_client):
    supervisor = make_supervisor(make_contract(phase="plan"))
    update_supervisor_phase(supervisor.contract_id, "build")  # a save point: takes a checkpoint
    html = admin_client.get(page_url(supervisor)).content.decode()
    checkpoint = supervisor.checkpoints.get()
    assert "Phase changed" in html
    assert f"mode=checkpoint&amp;checkpoint={checkpoint.pk}" in html


def test_correcting_a_bad_pending_task_goes_through_the_service(admin_client, world):
    gamma = world["gamma"]
    url = reverse("admin:supervisors_supervisorstate_correct", args=[gamma.pk])
    form = admin_client.get(url).context["form"]
    data = form_data(form)
    data.update(pending_task_ids="", state="working")
    # First the preview: what would change, field by field; nothing written yet.
    preview = admin_client.post(url, data)
    assert preview.status_code == 200
    changed = {(c.field, c.current, c.proposed) for c in preview.context["diff"].fields}
    assert changed == {
        ("state", "waiting_for_tasks", "working"),
        ("pending_task_ids", f'[\n "{world["stray"].id}"\n]', "(empty)"),
    }
    assert "Nothing is written yet" in preview.content.decode()
    assert SupervisorState.objects.get(pk=gamma.pk).state == "waiting_for_tasks"
    response = admin_client.post(url, {**data, "_confirm": "1"})
    assert response.status_code == 302
    gamma.refresh_from_db()
    assert gamma.pending_task_ids == [] and gamma.state == "working"
    assert gamma.checkpoints.filter(reason="state_updated").exists()  # the service's save point
    entry = LogEntry.objects.get(object_id=str(gamma.pk))
    assert "pending_task_ids" in entry.change_message and entry.user.username == "admin"


def test_a_correction_based_on_an_old_read_changes_nothing(admin_client, world):
    gamma = world["gamma"]
    url = reverse("admin:supervisors_supervisorstate_correct", args=[gamma.pk])
    form = admin_client.get(url).context["form"]
    data = form_data(form)
    update_supervisor_phase(gamma.contract_id, "review")  # the daemon writes meanwhile
    data.update(pending_task_ids="")
    response = admin_client.post(url, {**data, "_confirm": "1"})
    assert response.status_code == 200
    assert "changed since you opened this form" in response.content.decode()
    # The preview already says so: the dry run checks the version too.
    assert "changed since you opened this form" in admin_client.post(url, data).content.decode()
    gamma.refresh_from_db()
    assert gamma.pending_task_ids == [world["stray"].id]


def test_a_pending_task_that_was_never_spawned_is_refused_with_the_field_named(admin_client, world):
    alpha = world["alpha"]
    url = reverse("admin:supervisors_supervisorstate_correct", args=[alpha.pk])
    form = admin_client.get(url).context["form"]
    data = form_data(form)
    data.update(pending_task_ids=str(world["stray"].id))
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert response.context["form"].errors.get("pending_task_ids")
    alpha.refresh_from_db()
    assert alpha.pending_task_ids == []


def test_a_lone_surrogate_in_a_correction_is_a_form_error_and_changes_nothing(admin_client, world):
    """``"\\ud800"`` is valid JSON but not Unicode: the form names the field instead of a 500."""
    beta = world["beta"]
    url = reverse("admin:supervisors_supervisorstate_correct", args=[beta.pk])
    form = admin_client.get(url).context["form"]
    data = form_data(form)
    data["pending_questions"] = data["pending_questions"].replace('"question": "', '"question": "\\ud800', 1)
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "surrogate" in " ".join(response.context["form"].errors["pending_questions"])
    assert SupervisorState.objects.get(pk=beta.pk).pending_questions == beta.pending_questions


def test_a_lone_surrogate_in_an_answer_is_a_form_error():
    form = AnswerForm({"contract_id": uuid.uuid4(), "question_id": uuid.uuid4(), "answer": "yes\ud800"})
    assert not form.is_valid()
    assert "surrogate" in " ".join(form.errors["answer"])


def page_query_count(client, supervisor) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(page_url(supervisor)).status_code == 200
    return len(ctx.captured_queries)


def test_page_queries_do_not_grow_with_tasks_checkpoints_or_restorations(admin_client):
    from supervisors.services.state import add_supervisor_spawned_task
    from tests.factories import make_task

    supervisor = make_supervisor(make_contract(phase="plan"), state="working")
    task = make_task(supervisor.contract, name="t0")
    add_supervisor_spawned_task(supervisor.contract_id, task.id)
    one = page_query_count(admin_client, supervisor)
    for i in range(1, 8):
        task = make_task(supervisor.contract, name=f"t{i}")
        add_supervisor_spawned_task(supervisor.contract_id, task.id)  # each takes a checkpoint
    admin_client.post(
        reverse("admin:supervisors_supervisorstate_restore", args=[supervisor.pk]), {"mode": "restore", "reason": "a"}
    )
    admin_client.post(
        reverse("admin:supervisors_supervisorstate_restore", args=[supervisor.pk]), {"mode": "restore", "reason": "b"}
    )
    assert supervisor.checkpoints.count() >= 8 and supervisor.restorations.count() == 2
    assert page_query_count(admin_client, supervisor) == one


def test_restoring_a_checkpoint_shows_field_and_conversation_differences_first(admin_client):
    history = [{"role": "user", "content": f"m{i}"} for i in range(3)]
    supervisor = make_supervisor(make_contract(phase="plan"), conversation_history=history, progress=10)
    update_supervisor_phase(supervisor.contract_id, "build")  # checkpoint: phase build, 3 messages
    checkpoint = supervisor.checkpoints.get()
    SupervisorState.objects.filter(pk=supervisor.pk).update(
        phase="review",
        progress=70,
        conversation_history=[
            *history[:2],
            {"role": "assistant", "content": "rewritten"},
            {"role": "user", "content": "m3"},
        ],
    )
    url = reverse("admin:supervisors_supervisorstate_restore", args=[supervisor.pk])
    response = admin_client.get(url, {"mode": "checkpoint", "checkpoint": checkpoint.pk})
    diff = response.context["checkpoint_diff"]
    assert {(c.field, c.current, c.proposed) for c in diff.fields} == {
        ("phase", "review", "build"),
        ("progress", "70", "10"),
    }
    conversation = diff.conversation
    assert (conversation.current_count, conversation.proposed_count, conversation.kept) == (4, 3, 2)
    assert (conversation.removed, conversation.added) == (2, 1)
    assert "rewritten" in conversation.current_message and '"m2"' in conversation.proposed_message
    html = response.content.decode()
    assert "Conversation: 4 → 3 messages" in html and "2 removed, 1 added from message #2 on" in html
    assert SupervisorState.objects.get(pk=supervisor.pk).phase == "review"  # only shown
