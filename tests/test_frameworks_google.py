"""Google's own Python clients batch against Django and FastAPI, over a real socket.

The very tests of tests/test_google_clients.py (same requests, same assertions) run here
against the same small APIs written in Django (WSGI BatchMiddleware, Werkzeug's server) and
FastAPI (ASGI BatchMiddleware, uvicorn): the fixtures below replace the Flask ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager

import httplib2
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from tests.test_google_clients import (
    Farm,
    Storage,
    test_discovery_batch_answers_every_callback,
    test_hand_built_requests_with_odd_request_ids,
    test_outer_authorization_applies_to_every_part,
    test_storage_batch_fills_each_object_from_its_answer,
    test_storage_batch_raises_the_last_failure_after_applying_the_rest,
    test_storage_batch_without_raising_hands_errors_to_their_objects,
    test_storage_calls_outside_a_batch_use_the_same_views,
)

from .frameworks import django_site, fastapi_google
from .frameworks.serving import asgi_server
from .servers import live_server

# Collected here, with this module's fixtures.
__all__ = [
    "test_discovery_batch_answers_every_callback",
    "test_hand_built_requests_with_odd_request_ids",
    "test_outer_authorization_applies_to_every_part",
    "test_storage_batch_fills_each_object_from_its_answer",
    "test_storage_batch_raises_the_last_failure_after_applying_the_rest",
    "test_storage_batch_without_raising_hands_errors_to_their_objects",
    "test_storage_calls_outside_a_batch_use_the_same_views",
]

FRAMEWORKS = ["django", "fastapi"]


@pytest.fixture(scope="module")
def django_base() -> Iterator[str]:
    """One Django server for the module (Django's settings are process-wide anyway)."""
    with live_server(django_site.application()) as base:
        yield base


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def farm(framework: str, request: pytest.FixtureRequest) -> Iterator[Farm]:
    if framework == "django":
        state, _ = django_site.reset()
        server: AbstractContextManager[str] = _shared(request.getfixturevalue("django_base"))
    else:
        app, state = fastapi_google.create_farm_app()
        server = asgi_server(app)
    with server as base:
        http = httplib2.Http(timeout=10)
        try:
            yield Farm(base, state, http)
        finally:
            http.close()


@pytest.fixture
def gcs(
    framework: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Storage]:
    monkeypatch.setenv("DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA", "true")
    if framework == "django":
        _, state = django_site.reset()
        server: AbstractContextManager[str] = _shared(request.getfixturevalue("django_base"))
    else:
        app, state = fastapi_google.create_storage_app()
        server = asgi_server(app)
    with server as base:
        client = storage.Client(
            project="test",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": base},
        )
        with client:
            yield Storage(state, client)


class _shared(AbstractContextManager[str]):
    """A context manager for a server that outlives the test."""

    def __init__(self, base: str) -> None:
        self.base = base

    def __enter__(self) -> str:
        return self.base

    def __exit__(self, *exc: object) -> None:
        return None
