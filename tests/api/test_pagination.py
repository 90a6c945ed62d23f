"""The lists across supervisors come in pages: bounded answers, oldest questions first, documented."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from supervisors.api.pagination import DEFAULT_LIMIT, MAX_LIMIT
from supervisors.models import SupervisorState
from tests.factories import make_contract, make_question, make_supervisor

OVERVIEW = "/api/v1/supervisors/pending-questions/"
SUPERVISORS = "/api/v1/supervisors/"
START = datetime(2026, 11, 1, tzinfo=UTC)


def _questions(supervisor: SupervisorState, minutes: list[int]) -> list[dict]:
    """Pending questions asked ``minutes`` after START, set as test data."""
    questions = [make_question(text=f"q{m}", askedAt=(START + timedelta(minutes=m)).isoformat()) for m in minutes]
    SupervisorState.objects.filter(pk=supervisor.pk).update(pending_questions=questions)
    return questions


def test_pending_questions_come_oldest_first_in_pages(alpha, supervisor, staff, other_supervisor):
    _questions(supervisor, [5, 1, 9])
    _questions(other_supervisor, [3, 7])

    first = staff.get(OVERVIEW, {"limit": 2})
    assert first.status_code == 200, first.content
    assert [item["question"]["question"] for item in first.json()] == ["q1", "q3"]
    assert first["X-Total-Count"] == "5"
    assert first["Link"] == f'<http://testserver{OVERVIEW}?limit=2&offset=2>; rel="next"'

    last = staff.get(OVERVIEW, {"limit": 2, "offset": 4})
    assert [item["question"]["question"] for item in last.json()] == ["q9"]
    assert "Link" not in last

    mine = alpha.client.get(OVERVIEW)
    assert [item["question"]["question"] for item in mine.json()] == ["q1", "q5", "q9"]
    assert mine["X-Total-Count"] == "3"


def test_pending_questions_without_limit_get_the_default_page(alpha, supervisor):
    _questions(supervisor, list(range(DEFAULT_LIMIT + 1)))
    response = alpha.client.get(OVERVIEW)
    assert len(response.json()) == DEFAULT_LIMIT
    assert response.json()[0]["question"]["question"] == "q0"
    assert response["X-Total-Count"] == str(DEFAULT_LIMIT + 1)
    assert "offset=100" in response["Link"]


def test_bad_page_parameters_are_a_400_naming_them(alpha, supervisor):
    for query, field in [
        ({"limit": 0}, "limit"),
        ({"limit": MAX_LIMIT + 1}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"page": 2}, "page"),
    ]:
        for path in (OVERVIEW, SUPERVISORS):
            response = alpha.client.get(path, query)
            assert response.status_code == 400, (path, query)
            assert list(response.json()["fields"]) == [field], (path, query)


def test_supervisors_list_pages_with_total_and_next_link(staff, db):
    for index in range(3):
        make_supervisor(make_contract(f"c{index}"))
    first = staff.get(SUPERVISORS, {"limit": 2})
    assert len(first.json()) == 2
    assert first["X-Total-Count"] == "3"
    assert first["Link"] == f'<http://testserver{SUPERVISORS}?limit=2&offset=2>; rel="next"'
    rest = staff.get(SUPERVISORS, {"limit": 2, "offset": 2})
    assert len(rest.json()) == 1 and "Link" not in rest
    ids = [row["contractId"] for row in first.json() + rest.json()]
    assert ids == sorted(ids)


def test_schema_documents_the_pages(client):
    paths = client.get("/api/schema/?format=json").json()["paths"]
    for path in (OVERVIEW, SUPERVISORS):
        get = paths[path]["get"]
        parameters = {p["name"]: p for p in get["parameters"] if p["in"] == "query"}
        assert parameters["limit"]["schema"]["maximum"] == MAX_LIMIT, path
        assert parameters["offset"]["schema"]["minimum"] == 0, path
        assert {"X-Total-Count", "Link"} <= set(get["responses"]["200"]["headers"]), path
