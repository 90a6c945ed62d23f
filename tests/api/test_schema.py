"""The OpenAPI schema: served, documented, and true to what the API really answers (schemathesis)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.config import SchemathesisConfig

from supervisors.enums import SupervisorStatus

pytestmark = pytest.mark.django_db

#: Small on purpose: the suite must stay fast. Raise it locally to fuzz harder.
MAX_EXAMPLES = 8


# Loaded at import (the schema view needs no database). schemathesis.pytest.from_fixture would be
# the lazy way, but the installed schemathesis 4.32 breaks on pytest 9 there (Node._nodeid is gone).
# The WSGI handler is built inside the override: middleware reads SECURE_SSL_REDIRECT when built.
with override_settings(ALLOWED_HOSTS=["localhost"], SECURE_SSL_REDIRECT=False):
    schema = schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json",
        get_wsgi_application(),
        # The live run's configuration (tests/api/schemathesis.toml): 412 for a schema-valid stale If-Match.
        config=SchemathesisConfig.from_path(str(Path(__file__).with_name("schemathesis.toml"))),
    )


@pytest.fixture(autouse=True)
def _schemathesis_host(settings):
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    settings.API_THROTTLE_RATE_PER_MINUTE = 0


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """As Django's test client does: the WSGI handler would otherwise close the connection after each
    request, and with it the test's transaction (PostgreSQL)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def daemon_headers(alpha) -> dict[str, str]:
    return {"Authorization": f"Bearer {alpha.key}"}


@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_schema(case, daemon_headers, supervisor):
    """No 5xx and every response (errors included) as the schema describes it, for generated requests."""
    if _is_uuid((case.path_parameters or {}).get("contractId")):
        # A real supervisor instead of a random id; a deliberately malformed id (negative case) stays.
        case.path_parameters["contractId"] = str(supervisor.contract_id)
    # Every default check, positive_data_acceptance included: ids in generated bodies that name no task
    # are a 409 bad_reference, not a 400. Text never holds NUL (the schema says so in words; JSON Schema
    # cannot say it of free JSON), so such cases are skipped rather than sent.
    if "\\u0000" in json.dumps(case.body, default=str):
        return
    case.call_and_validate(headers=daemon_headers)


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return value is not None


def test_schema_documents_auth_errors_and_enums(client, settings):
    settings.SECURE_SSL_REDIRECT = False
    spec = client.get("/api/schema/?format=json").json()
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["daemonApiKey"]["scheme"] == "bearer"
    assert spec["components"]["schemas"]["SupervisorStateEnum"]["enum"] == list(SupervisorStatus.values)
    assert spec["components"]["schemas"]["RecoveryActionEnum"]["enum"] == [
        "Proceed",
        "UseCheckpoint",
        "StartFresh",
        "ManualIntervention",
    ]
    resume = spec["paths"]["/api/v1/contracts/{contractId}/supervisor/resume/"]["post"]
    assert {"200", "400", "401", "404", "409", "413", "415", "429"} <= set(resume["responses"])
    patch = spec["paths"]["/api/v1/contracts/{contractId}/supervisor/"]["patch"]
    assert "412" in patch["responses"]
    assert any(p["name"] == "If-Match" for p in patch["parameters"])
    props = spec["components"]["schemas"]["PatchedUpdateSupervisorStateRequest"]["properties"]
    assert {"conversationHistory", "pendingTaskIds", "currentActivity", "errorMessage", "pendingQuestions"} <= set(
        props
    )


def test_docs_page_is_served(client, settings):
    settings.SECURE_SSL_REDIRECT = False
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_docs_page_needs_no_other_host(client, settings):
    """Swagger UI comes from this service's static files (drf-spectacular-sidecar), not a CDN: the page
    works on an offline or locked-down network."""
    settings.SECURE_SSL_REDIRECT = False
    page = client.get("/api/docs/").content.decode()
    assert not re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}", page), "the docs page names another host"
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert asset.startswith("/static/"), asset
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert response.getvalue(), asset
        response.close()


@pytest.fixture
def spec(client, settings) -> dict:
    settings.SECURE_SSL_REDIRECT = False
    return client.get("/api/schema/?format=json").json()


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_has_its_own_summary_and_description(spec):
    for name, operation in operations(spec):
        assert operation.get("summary"), name
        assert operation.get("description") and "Base of the API's views" not in operation["description"], name


def test_path_ids_are_uuids_and_bodies_are_required(spec):
    for name, operation in operations(spec):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                assert parameter["schema"] == {"type": "string", "format": "uuid"}, name
        if "requestBody" in operation:
            assert operation["requestBody"]["required"] is True, name


def test_response_keys_always_present_are_required(spec):
    schemas = spec["components"]["schemas"]
    assert {"status", "isSupervisor", "parentTaskId", "daemonId"} <= set(schemas["Task"]["required"])
    assert "status" in schemas["Contract"]["required"]
    state = schemas["SupervisorState"]
    assert "conversationHistory" in state["properties"] and "conversationHistory" not in state["required"]
    assert state["properties"]["conversationHistory"]["items"] == {"$ref": "#/components/schemas/ConversationMessage"}
    assert schemas["ConversationMessage"]["properties"]["role"]["type"] == "string"


def test_each_enum_is_named_once_and_reused(spec):
    schemas = spec["components"]["schemas"]
    enums = [tuple(s["enum"]) for s in schemas.values() if "enum" in s]
    assert len(enums) == len(set(enums))
    named = set(enums)
    for name, operation in operations(spec):
        for values in re.findall(r'"enum": (\[[^\]]*\])', json.dumps(operation)):
            assert tuple(json.loads(values)) not in named, f"{name} repeats a named enum inline"
    state_ref = {"$ref": "#/components/schemas/SupervisorStateEnum"}
    unknown_ref = {"$ref": "#/components/schemas/UnknownStateEnum"}
    for name in ("OverviewItem", "SupervisorState"):
        assert schemas[name]["properties"]["state"]["oneOf"] == [state_ref, unknown_ref]
        assert schemas[name]["properties"]["storedState"]["type"] == "string"
    previous = schemas["RestorationContext"]["properties"]["previousState"]["oneOf"]
    assert previous == [state_ref, {"$ref": "#/components/schemas/NoPreviousStateEnum"}, unknown_ref]
    assert schemas["NoPreviousStateEnum"]["enum"] == ["none"]
    assert schemas["UnknownStateEnum"]["enum"] == ["unknown"]
    stale = next(p for p in spec["paths"]["/api/v1/supervisors/"]["get"]["parameters"] if p["name"] == "stale")
    assert stale["schema"] == {"type": "boolean"}
    assert not [name for name in schemas if name.endswith("RequestRequest")]


def test_staff_writes_document_the_csrf_header(spec):
    schemes = spec["components"]["securitySchemes"]
    assert schemes["csrfToken"] == {**schemes["csrfToken"], "type": "apiKey", "in": "header", "name": "X-CSRFToken"}
    patch = spec["paths"]["/api/v1/contracts/{contractId}/supervisor/"]["patch"]
    assert {"cookieAuth": [], "csrfToken": []} in patch["security"]
    get = spec["paths"]["/api/v1/contracts/{contractId}/supervisor/"]["get"]
    assert {"cookieAuth": []} in get["security"]


def test_the_stale_filter_takes_true_and_false(alpha, supervisor):
    assert [s["contractId"] for s in alpha.client.get("/api/v1/supervisors/?stale=false").json()] == [
        str(supervisor.contract_id)
    ]
    assert alpha.client.get("/api/v1/supervisors/?stale=true").json() == []
    assert alpha.client.get("/api/v1/supervisors/?stale=1").status_code == 400


def test_the_phase_filter_matches_exactly_and_whitespace_finds_nothing(alpha, supervisor):
    """Found by schemathesis: ``?phase=%0D`` is schema-valid, and was a 400 (DRF trimmed it to blank)."""
    supervisors = "/api/v1/supervisors/"
    assert [s["contractId"] for s in alpha.client.get(supervisors, {"phase": supervisor.phase}).json()] == [
        str(supervisor.contract_id)
    ]
    for phase in ("\r", " ", f" {supervisor.phase}"):
        response = alpha.client.get(supervisors, {"phase": phase})
        assert (response.status_code, response.json()) == (200, []), phase


def test_every_operation_shows_an_example_request_and_response_that_fit_the_schema(spec):
    """Examples a daemon author copies must be true: each validates against the schema it illustrates."""
    from tests.api.contract import schema_problems

    for name, operation in operations(spec):
        bodies = [("request", operation["requestBody"])] if "requestBody" in operation else []
        bodies += [(status, r) for status, r in operation["responses"].items() if status < "300" and "content" in r]
        for where, body in bodies:
            content = body["content"]["application/json"]
            assert content.get("examples"), f"{name} {where}: no example"
            for example in content["examples"].values():
                assert schema_problems(content["schema"], example["value"]) == [], f"{name} {where}"
