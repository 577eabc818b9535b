"""A batch route whose body the application read first (Flask extension).

Why: a ``before_request`` hook or an extension that calls ``request.get_data()`` reads the
batch body before the batch view runs. The raw ``wsgi.input`` then holds nothing more, and a
route reading it on a real server waited for bytes that never came, until the client gave
up. The route now reads what Werkzeug kept: the whole body if the application's read cached
it, else what is left, which is refused at once as shorter than its ``Content-Length``. (A
chunked body read in part without caching has no length to be found short by: the route
reads what is left: docs/frameworks/flask.md.)
"""

from __future__ import annotations

from collections.abc import Callable

import requests
from flask import Flask, Response, jsonify, request

from flask_batch import add_batch_route
from flask_batch.wire.multipart_answers import read_responses
from flask_batch.wire.multipart_requests import encode_requests

from .batching import BOUNDARY, MULTIPART, sub
from .servers import live_server

#: Seconds the client waits: a route that hangs fails the test instead of stalling it.
PATIENCE = 5


def serve(before: Callable[[], None]) -> Flask:
    app = Flask(__name__)
    app.before_request(before)

    @app.get("/ok")
    def ok() -> Response:
        return jsonify(seen=len(request.get_data()))

    add_batch_route(app)
    return app


def read_everything() -> None:
    request.get_data()  # cached: Werkzeug keeps the bytes


def read_some_uncached() -> None:
    if request.path == "/batch":
        request.stream.read(10)  # gone: nothing keeps them


BODY = encode_requests([sub("GET", "/ok"), sub("GET", "/ok")], BOUNDARY)


def test_a_body_the_application_read_first_is_still_the_batch() -> None:
    with live_server(serve(read_everything)) as base:
        answer = requests.post(
            base + "/batch", data=BODY, headers={"Content-Type": MULTIPART}, timeout=PATIENCE
        )
    assert answer.status_code == 200
    parts = read_responses(answer.headers["Content-Type"], answer.content)
    assert [response.status for _, response in parts] == [200, 200]


def test_a_body_read_in_part_without_caching_is_refused_at_once() -> None:
    with live_server(serve(read_some_uncached)) as base:
        answer = requests.post(
            base + "/batch", data=BODY, headers={"Content-Type": MULTIPART}, timeout=PATIENCE
        )
    assert answer.status_code == 400
    assert answer.headers["Content-Type"] == "application/problem+json"
