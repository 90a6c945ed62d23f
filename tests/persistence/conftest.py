"""Fixtures for the persistence tests: a contract with its supervisor and a few tasks."""

from __future__ import annotations

import pytest

from tests.factories import make_contract, make_supervisor, make_task


@pytest.fixture
def supervisor(db):
    return make_supervisor(make_contract(name="Alpha"))


@pytest.fixture
def tasks(supervisor):
    """Three tasks of the supervisor's contract."""
    return [make_task(supervisor.contract, name=f"task {i}") for i in range(3)]


@pytest.fixture
def foreign_task(db):
    """A task of another contract."""
    return make_task(make_contract(name="Other"), name="foreign")
