"""Fixtures shared by the test modules.

A module that takes the ``app`` fixture says which application it tests with a module-level
``make_app()``: the fixture gives each test a fresh one, so no test sees another's state.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from .tracking import Tracker, tracker_of


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
