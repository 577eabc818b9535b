"""flask_batch.wsgi.BatchMiddleware around a bare WSGI application (no framework).

Real frameworks behind it: tests/test_frameworks_django.py, tests/test_frameworks_falcon.py.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Iterable
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import pytest
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client, EnvironBuilder

from flask_batch import Execution, Limits, asgi
from flask_batch.options import OPTIONS, BatchOptions, resolve_options
from flask_batch.targets import PART_KEY
from flask_batch.wire.model import SubRequest, SubResponse
from flask_batch.wire.multipart_answers import read_responses
from flask_batch.wire.multipart_requests import encode_requests
from flask_batch.wsgi import BatchMiddleware

from .frameworks.driving import BOUNDARY, MULTIPART

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class EchoApp:
    """Answers with what it saw; /meet waits until ``meeting`` parts are in it (so that
    many run at once for certain, however loaded the machine)."""

    def __init__(self, meeting: int = 1) -> None:
        self.seen: list[WSGIEnvironment] = []
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()
        self.meeting = threading.Barrier(meeting, timeout=10)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        self.seen.append(environ)
        path = environ["PATH_INFO"]
        if path == "/meet":
            with self.lock:
                self.running += 1
                self.most_running = max(self.most_running, self.running)
            self.meeting.wait()
            with self.lock:
                self.running -= 1
        length = int(environ.get("CONTENT_LENGTH") or 0)
        document = {
            "method": environ["REQUEST_METHOD"],
            "script_name": environ.get("SCRIPT_NAME", ""),
            "path": path,
            "query": environ.get("QUERY_STRING", ""),
            "host": environ.get("HTTP_HOST"),
            "authorization": environ.get("HTTP_AUTHORIZATION"),
            "body": environ["wsgi.input"].read(length).decode("latin-1"),
            "part": bool(environ.get(PART_KEY)),
        }
        body = json.dumps(document).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]


def _sub(method: str, target: str, body: bytes = b"", *headers: tuple[str, str]) -> SubRequest:
    return SubRequest(method, target, tuple(headers), body)


def _batch(
    client: Client, *requests: SubRequest, path: str = "/batch", **headers: str
) -> list[SubResponse]:
    answer = client.post(
        path,
        data=encode_requests(requests, BOUNDARY),
        headers={"Content-Type": MULTIPART, **headers},
    )
    assert answer.status_code == 200, answer.get_data()
    assert answer.headers["Cache-Control"] == "no-store"
    parts = read_responses(answer.headers["Content-Type"], answer.get_data())
    return [response for _, response in parts]


def _json(response: SubResponse) -> Any:
    return json.loads(response.body)


def test_a_batch_runs_each_part_through_the_wrapped_app() -> None:
    echo = EchoApp()
    client = Client(BatchMiddleware(echo))
    answers = _batch(
        client,
        _sub("GET", "/people/alice?x=1"),
        _sub("PATCH", "/people/bob", b'{"age": 40}', ("Content-Type", "application/json")),
        _sub("GET", "/who", b"", ("Authorization", "Bearer mine")),
        Authorization="Bearer outer",
    )
    assert [_json(a) for a in answers] == [
        {
            "method": "GET",
            "script_name": "",
            "path": "/people/alice",
            "query": "x=1",
            "host": "localhost",
            "authorization": "Bearer outer",
            "body": "",
            "part": True,
        },
        {
            "method": "PATCH",
            "script_name": "",
            "path": "/people/bob",
            "query": "",
            "host": "localhost",
            "authorization": "Bearer outer",
            "body": '{"age": 40}',
            "part": True,
        },
        {
            "method": "GET",
            "script_name": "",
            "path": "/who",
            "query": "",
            "host": "localhost",
            "authorization": "Bearer mine",
            "body": "",
            "part": True,
        },
    ]
    assert len(echo.seen) == 3  # the batch request itself never reached the app


def test_every_other_request_passes_through_untouched() -> None:
    echo = EchoApp()
    seen: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(status)
        return lambda data: None

    middleware = BatchMiddleware(echo)
    for path in ("/batchx", "/batch/", "/", "/other"):
        environ = EnvironBuilder(path=path, method="POST", data=b"x").get_environ()
        body = b"".join(middleware(environ, start_response))
        assert echo.seen[-1] is environ
        assert json.loads(body)["path"] == path
    assert seen == ["200 OK"] * 4


def test_a_custom_path_and_a_mounted_app() -> None:
    echo = EchoApp()
    mounted = DispatcherMiddleware(EchoApp(), {"/api": BatchMiddleware(echo, path="/v1/batch")})
    client = Client(mounted)
    answers = _batch(
        client,
        _sub("GET", "/api/people"),
        _sub("GET", "people"),  # relative to /api/v1/batch
        _sub("GET", "/admin"),  # outside /api
        _sub("GET", "/api/v1/batch"),
        path="/api/v1/batch",
    )
    assert [a.status for a in answers] == [200, 200, 400, 400]
    assert [(_json(a)["script_name"], _json(a)["path"]) for a in answers[:2]] == [
        ("/api", "/people"),
        ("/api", "/v1/people"),
    ]
    assert b"outside this application" in answers[2].body
    assert b"Nested batch" in answers[3].body


def test_independent_parts_run_on_the_pool() -> None:
    echo = EchoApp(meeting=3)  # a fourth part at once would show
    client = Client(BatchMiddleware(echo, max_workers=4, max_workers_per_request=3))
    answers = _batch(client, *[_sub("GET", "/meet") for _ in range(6)])
    assert [a.status for a in answers] == [200] * 6
    assert echo.most_running == 3
    assert all(environ["wsgi.multithread"] for environ in echo.seen)


def test_a_body_without_a_length_needs_a_terminated_input() -> None:
    client = Client(BatchMiddleware(EchoApp()))
    body = encode_requests([_sub("GET", "/x")], BOUNDARY)
    overrides: dict[str, Any] = {"CONTENT_LENGTH": "", "wsgi.input_terminated": False}
    headers = {"Content-Type": MULTIPART}
    answer = client.post("/batch", data=body, headers=headers, environ_overrides=overrides)
    assert answer.status_code == 411
    overrides["wsgi.input_terminated"] = True
    answer = client.post("/batch", data=body, headers=headers, environ_overrides=overrides)
    assert answer.status_code == 200


def test_options_are_checked_when_the_middleware_is_built() -> None:
    misspelt: dict[str, Any] = {"max_part": 3}
    with pytest.raises(TypeError, match="max_part"):
        BatchMiddleware(EchoApp(), **misspelt)
    with pytest.raises(ValueError, match="deadline"):
        BatchMiddleware(EchoApp(), deadline=-1)
    middleware = BatchMiddleware(EchoApp(), max_parts=5, max_workers=2)
    assert middleware.endpoint.limits == Limits(max_parts=5)
    assert middleware.endpoint.execution == Execution(max_workers=2)


def test_the_middlewares_keywords_are_typed_as_every_option() -> None:
    """BatchOptions (the keywords' types, for type checkers and IDEs) names every option, in
    order, with its declared type; and the middlewares take them."""
    declared = {
        option.name: {f.name: f.type for f in fields(option.group)}[option.name]
        for option in OPTIONS
    }
    # As written in the source (postponed annotations: a TypedDict keeps them as references).
    typed = {
        name: getattr(kind, "__forward_arg__", kind)
        for name, kind in BatchOptions.__annotations__.items()
    }
    assert list(typed) == list(declared)
    # A keyword may be any iterable of names where the setting keeps a tuple of them.
    assert typed == {**declared, "pinned_headers": "Iterable[str]"}
    middlewares: list[Any] = [BatchMiddleware, asgi.BatchMiddleware]
    for middleware in middlewares:
        keywords = inspect.signature(middleware).parameters["options"]
        assert keywords.kind is inspect.Parameter.VAR_KEYWORD
        built = middleware(EchoApp(), **{option.name: option.default for option in OPTIONS})
        assert built.settings.limits == resolve_options({}, {}).limits
