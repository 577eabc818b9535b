"""Fixtures shared by the test modules.

A module that takes the ``app`` fixture says which application it tests with a module-level
``make_app()``: the fixture gives each test a fresh one, so no test sees another's state.

``database`` is a real database of the test's own, SQLite then PostgreSQL (a throw-away
cluster started once per session: tests/databases.py).

Every test starts with the clients knowing nothing of any batch endpoint: what one test's
client learned (a 413's limit, a gzip refusal) would otherwise bound the next test's, as the
fake endpoints of the suite share their URLs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_batch.client import forget_endpoints

from .databases import Database, PostgresCluster, PostgresMissing, give_up, new_database
from .tracking import Tracker, tracker_of

_STARTED: list[PostgresCluster] = []


@pytest.fixture(autouse=True)
def _endpoints_unknown() -> None:
    """Every test's clients start as a new process's would (see the module's docstring)."""
    forget_endpoints()


@pytest.fixture
def app(request: pytest.FixtureRequest) -> Any:
    """A fresh application from the test module's ``make_app()``."""
    make_app = getattr(request.module, "make_app", None)
    if make_app is None:
        pytest.fail(f"{request.module.__name__} takes the app fixture but has no make_app()")
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def calls(app: Flask) -> Tracker:
    """What the views of an app that tracks them ran (tests/steps.py, tests/tracking.py)."""
    return tracker_of(app)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster for the whole session; skipped without PostgreSQL, except on CI."""
    try:
        cluster = PostgresCluster.start()
    except PostgresMissing as missing:
        give_up(missing)
    _STARTED.append(cluster)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A new database of the test's own: SQLite, then PostgreSQL."""
    cluster = request.getfixturevalue("postgres_cluster") if request.param == "postgresql" else None
    with new_database(request.param, tmp_path, cluster) as made:
        yield made


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for cluster in _STARTED:
        terminalreporter.write_line(
            f"PostgreSQL ({cluster.programs}): a throw-away cluster on port {cluster.port}, "
            f"made and started in {cluster.start_seconds:.1f} s"
        )
