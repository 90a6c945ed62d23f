"""The supervisor list: columns, filters, search, and queries that do not grow with the page."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from supervisors.models import SupervisorState
from tests.factories import make_contract, make_supervisor

pytestmark = pytest.mark.django_db

LIST = reverse("admin:supervisors_supervisorstate_changelist")


def names(response) -> set[str]:
    return {s.contract.name for s in response.context["cl"].result_list}


def test_list_shows_state_progress_questions_tasks_and_stale_marker(admin_client, world):
    html = admin_client.get(LIST).content.decode()
    assert "Alpha contract" in html and "Beta contract" in html
    assert 'class="sv-state sv-ok">Working' in html
    assert 'class="sv-state sv-attention">Waiting for user' in html
    assert 'title="40%"><span style="width:40%">' in html
    assert html.count('class="sv-stale"') == 1  # only Alpha: working and silent for two hours
    assert "Compiling the parser" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("stale=yes", {"Alpha contract"}),
        ("stale=no", {"Beta contract", "Gamma contract"}),
        ("has_questions=yes", {"Beta contract"}),
        ("state__exact=waiting_for_tasks", {"Gamma contract"}),
        ("q=beta", {"Beta contract"}),
        # Not the current activity ("Compiling the parser"): heartbeats rewrite it, so it is not indexed.
        ("q=parser", set()),
        ("q=daemon+lost", {"Gamma contract"}),
    ],
)
def test_filters_and_search(admin_client, world, query, expected):
    assert names(admin_client.get(f"{LIST}?{query}")) == expected


def test_search_by_contract_id_and_task_id(admin_client, world):
    gamma = world["gamma"]
    assert names(admin_client.get(LIST, {"q": str(gamma.contract_id)})) == {"Gamma contract"}
    assert names(admin_client.get(LIST, {"q": str(gamma.task_id)})) == {"Gamma contract"}


def list_queries(client) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(LIST).status_code == 200
    return [q["sql"] for q in ctx.captured_queries]


def with_page_size(size: int, client) -> list[str]:
    model_admin = admin.site._registry[SupervisorState]
    original = model_admin.list_per_page
    try:
        model_admin.list_per_page = size
        return list_queries(client)
    finally:
        model_admin.list_per_page = original


def test_query_count_does_not_depend_on_rows_or_page_size(admin_client):
    for i in range(12):
        make_supervisor(make_contract(f"c{i}"))
    ten_of_twelve = with_page_size(10, admin_client)
    for i in range(12, 60):
        make_supervisor(make_contract(f"c{i}"), pending_questions=[])
    ten_of_sixty = with_page_size(10, admin_client)
    forty_of_sixty = with_page_size(40, admin_client)
    assert len(ten_of_twelve) == len(ten_of_sixty) == len(forty_of_sixty)
    everything = ten_of_twelve + ten_of_sixty + forty_of_sixty
    assert any('"supervisor_states"."pending_questions"' in q for q in everything), "the page query"
    assert not any("conversation_history" in q for q in everything), "the list never loads the conversation"


@pytest.mark.postgres_only
def test_unfiltered_list_uses_planner_estimate_not_count_on_postgresql(admin_client, settings):
    for i in range(5):
        make_supervisor(make_contract(f"c{i}"))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE supervisor_states")
    settings.ADMIN_EXACT_COUNT_BELOW = 1
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(LIST)
    counts = [q["sql"] for q in ctx.captured_queries if re.search(r"COUNT\(\*\)", q["sql"], re.I)]
    assert not [q for q in counts if "supervisor_states" in q and "WHERE" not in q]
    assert any("reltuples" in q["sql"] for q in ctx.captured_queries)
    assert "an estimate from PostgreSQL" in response.content.decode()
    # A large filtered list takes the planner's estimate of that query (EXPLAIN: nothing counted) ...
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(LIST, {"state__exact": "working"})
    assert "an estimate" in response.content.decode()
    assert any(q["sql"].startswith("EXPLAIN") for q in ctx.captured_queries)
    assert not [q for q in ctx.captured_queries if re.search(r"COUNT\(\*\)", q["sql"], re.I)]
    # ... and one the planner expects to be small is counted exactly.
    settings.ADMIN_EXACT_COUNT_BELOW = 10_000
    assert "an estimate" not in admin_client.get(LIST, {"state__exact": "working"}).content.decode()


def test_the_phase_filter_lists_the_phases_there_are_and_filters_by_one(admin_client):
    for name, phase in [("a", "plan"), ("b", "execute"), ("c", "plan"), ("d", "review")]:
        make_supervisor(make_contract(name), phase=phase)
    response = admin_client.get(LIST)
    phase_filter = next(spec for spec in response.context["cl"].filter_specs if spec.title == "phase")
    assert [choice["display"] for choice in phase_filter.choices(response.context["cl"])] == [
        "All",
        "execute",
        "plan",
        "review",
    ]
    assert names(admin_client.get(LIST, {"phase": "plan"})) == {"a", "c"}
    assert names(admin_client.get(LIST, {"phase": "nowhere"})) == set()


@pytest.mark.parametrize("listed,sorted_errors", [(1000, 5000), (1, 5000), (1, 1)])
def test_search_finds_the_same_rows_whether_matches_are_few_or_many(admin_client, monkeypatch, listed, sorted_errors):
    """A few matches go to the list's query by id; more error matches, on PostgreSQL, as a sub-select whose
    matches are sorted (kept whole by OFFSET 0); many as the condition itself: the same rows, in the list's
    order, every way."""
    from supervisors.admin import supervisor as supervisor_admin

    monkeypatch.setattr(supervisor_admin, "MAX_LISTED_MATCHES", listed)
    monkeypatch.setattr(supervisor_admin, "MAX_SORTED_ERROR_MATCHES", sorted_errors)
    for n in range(3):
        make_supervisor(make_contract(f"deploy {n}"))
        make_supervisor(make_contract(f"other {n}"), state="failed", error_message=f"deploy step {n} failed")
    make_supervisor(make_contract("unrelated"), error_message="disk full")
    expected = {"deploy 0", "deploy 1", "deploy 2", "other 0", "other 1", "other 2"}
    with CaptureQueriesContext(connection) as ctx:
        assert names(admin_client.get(LIST, {"q": "DEPLOY"})) == expected
    # Names match too: the error condition stays indexable beside the names' ids (no sub-select).
    assert not any("OFFSET 0" in q["sql"] for q in ctx.captured_queries)
    assert names(admin_client.get(LIST, {"q": "step 1"})) == {"other 1"}
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(LIST, {"q": "STEP"})
    assert [s.contract.name for s in response.context["cl"].result_list] == ["other 0", "other 1", "other 2"]
    sorted_first = any("OFFSET 0" in q["sql"] for q in ctx.captured_queries)
    assert sorted_first == (connection.vendor == "postgresql" and listed < 3 <= sorted_errors)


def test_a_pages_rows_are_read_by_their_ids_alone(admin_client, monkeypatch):
    """The ids carry the search: the 50-row read does not repeat it (thousands of ids beside 50 made
    PostgreSQL misjudge that read and scan the whole table)."""
    from supervisors.admin import supervisor as supervisor_admin

    monkeypatch.setattr(supervisor_admin, "MAX_LISTED_MATCHES", 1)  # the search as a condition (LIKE)
    monkeypatch.setattr(supervisor_admin, "MAX_SORTED_ERROR_MATCHES", 1)
    monkeypatch.setattr(admin.site._registry[SupervisorState], "list_per_page", 2)  # more than one page
    for n in range(3):
        make_supervisor(make_contract(f"other {n}"), state="failed", error_message=f"deploy step {n} failed")
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(LIST, {"q": "deploy", "p": 2})
    assert [s.contract.name for s in response.context["cl"].result_list] == ["other 2"]
    rows_read = [q["sql"] for q in ctx.captured_queries if '"supervisor_states"."error_message",' in q["sql"]]
    assert rows_read and "LIKE" not in rows_read[-1], rows_read


def test_the_selection_box_is_the_html_django_renders(world):
    """The list renders each row's checkbox without a form widget; the HTML must stay Django's own."""
    model_admin = admin.site._registry[SupervisorState]
    for supervisor in SupervisorState.objects.select_related("contract"):
        assert model_admin.action_checkbox(supervisor) == admin.ModelAdmin.action_checkbox(model_admin, supervisor)


def test_every_page_holds_the_rows_of_its_place_in_the_order_also_when_read_from_the_end(admin_client):
    """Pages in the far half are read backwards from the end (cheap last pages): same rows, same order."""
    for name in ["delta", "alpha", "golf", "charlie", "echo", "bravo", "foxtrot"]:
        make_supervisor(make_contract(name))
    ordered = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"]
    model_admin = admin.site._registry[SupervisorState]
    original = model_admin.list_per_page
    try:
        model_admin.list_per_page = 2
        pages = []
        for number in (1, 2, 3, 4):
            with CaptureQueriesContext(connection) as ctx:
                response = admin_client.get(LIST, {"p": number})
            pages.append([s.contract.name for s in response.context["cl"].result_list])
            backwards = any(re.search(r"ORDER BY .* DESC", q["sql"]) for q in ctx.captured_queries)
            assert backwards == (number >= 3), (number, "read from the nearer end")
    finally:
        model_admin.list_per_page = original
    assert pages == [ordered[0:2], ordered[2:4], ordered[4:6], ordered[6:7]]
