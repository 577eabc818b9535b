"""Falcon behind the batch middleware: its WSGI App with flask_batch.wsgi, its ASGI App with
flask_batch.asgi. Each part goes through Falcon's routing, media handling, hooks, middleware
and error handlers as if it had come on its own."""

from __future__ import annotations

import json
from typing import Any

import falcon
import falcon.asgi
from werkzeug.test import Client

from flask_batch import asgi, wsgi
from flask_batch.wire.model import SubRequest, SubResponse
from flask_batch.wire.multipart_answers import read_responses
from flask_batch.wire.multipart_requests import encode_requests

from .frameworks.driving import BOUNDARY, MULTIPART, batch, run

TOKEN = "Bearer falcon-token"


class Missing(Exception):
    """Raised by views; a custom error handler turns it into a 404 problem."""


def _require_token(req: Any, resp: Any, resource: Any, params: Any) -> None:
    if req.get_header("Authorization") != TOKEN:
        raise falcon.HTTPUnauthorized(title="Unauthorized", challenges=['Bearer realm="things"'])


class Counter:
    """Falcon middleware: counts the requests it sees and tags every response."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def process_request(self, req: Any, resp: Any) -> None:
        self.seen.append(f"{req.method} {req.relative_uri}")

    def process_response(self, req: Any, resp: Any, resource: Any, ok: bool) -> None:
        resp.set_header("X-Seen", str(len(self.seen)))

    async def process_request_async(self, req: Any, resp: Any) -> None:
        self.process_request(req, resp)

    async def process_response_async(self, req: Any, resp: Any, resource: Any, ok: bool) -> None:
        self.process_response(req, resp, resource, ok)


class Things:
    def __init__(self) -> None:
        self.things: dict[str, Any] = {"1": {"name": "one"}}

    def on_get(self, req: falcon.Request, resp: falcon.Response, thing_id: str) -> None:
        if thing_id not in self.things:
            raise Missing(thing_id)
        resp.media = {**self.things[thing_id], "fields": req.get_param("fields")}

    @falcon.before(_require_token)
    def on_put(self, req: falcon.Request, resp: falcon.Response, thing_id: str) -> None:
        self.things[thing_id] = req.get_media()
        resp.media = self.things[thing_id]
        resp.status = falcon.HTTP_201


class AsyncThings:
    def __init__(self) -> None:
        self.things: dict[str, Any] = {"1": {"name": "one"}}

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, thing_id: str
    ) -> None:
        if thing_id not in self.things:
            raise Missing(thing_id)
        resp.media = {**self.things[thing_id], "fields": req.get_param("fields")}

    async def on_put(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, thing_id: str
    ) -> None:
        if req.get_header("Authorization") != TOKEN:
            raise falcon.HTTPUnauthorized(title="Unauthorized")
        self.things[thing_id] = await req.get_media()
        resp.media = self.things[thing_id]
        resp.status = falcon.HTTP_201


def _missing(req: Any, resp: Any, error: Exception, params: Any) -> None:
    raise falcon.HTTPNotFound(title="Missing", description=f"no thing {error}")


async def _missing_async(req: Any, resp: Any, error: Exception, params: Any) -> None:
    _missing(req, resp, error, params)


PARTS = [
    SubRequest("GET", "/things/1?fields=name", (), b""),
    SubRequest("PUT", "/things/2", (("Content-Type", "application/json"),), b'{"name": "two"}'),
    SubRequest(
        "PUT",
        "/things/3",
        (("Content-Type", "application/json"), ("Authorization", "Bearer wrong")),
        b"{}",
    ),
    SubRequest("GET", "/things/2", (), b""),
    SubRequest("GET", "/things/9", (), b""),
    SubRequest("DELETE", "/things/1", (), b""),
    SubRequest("PUT", "/things/4", (("Content-Type", "application/json"),), b"{not json"),
]


def _check(answers: list[SubResponse], counter: Counter) -> None:
    assert [a.status for a in answers] == [200, 201, 401, 200, 404, 405, 400]
    bodies: list[Any] = [json.loads(a.body) if a.body else None for a in answers]
    assert bodies[0] == {"name": "one", "fields": "name"}
    assert bodies[1] == {"name": "two"}
    assert bodies[2]["title"] == "Unauthorized"  # the batch's token, replaced by the part's
    assert bodies[3] == {"name": "two", "fields": None}
    assert bodies[4] == {"title": "Missing", "description": "no thing 9"}
    assert counter.seen == [
        "GET /things/1?fields=name",
        "PUT /things/2",
        "PUT /things/3",
        "GET /things/2",
        "GET /things/9",
        "DELETE /things/1",
        "PUT /things/4",
    ]
    assert [{k.lower(): v for k, v in a.headers}["x-seen"] for a in answers] == [
        str(n) for n in range(1, 8)
    ]


def test_falcon_wsgi() -> None:
    counter = Counter()
    app = falcon.App(middleware=[counter])
    app.add_route("/things/{thing_id}", Things())
    app.add_error_handler(Missing, _missing)
    client = Client(wsgi.BatchMiddleware(app))
    answer = client.post(
        "/batch",
        data=encode_requests(PARTS, BOUNDARY),
        headers={"Content-Type": MULTIPART, "Authorization": TOKEN},
    )
    assert answer.status_code == 200
    _check([r for _, r in read_responses(answer.content_type, answer.get_data())], counter)


def test_falcon_asgi() -> None:
    counter = Counter()
    app = falcon.asgi.App(middleware=[counter])
    app.add_route("/things/{thing_id}", AsyncThings())
    app.add_error_handler(Missing, _missing_async)
    answers = run(batch(asgi.BatchMiddleware(app), *PARTS, headers=[("Authorization", TOKEN)]))
    _check(answers, counter)
