"""End to end: Microsoft's own Graph batch client (msgraph-core) against Flask-Batch.

Why: tests/test_json_format.py checks the JSON format's shape as Graph's documentation gives
it; this runs the client Graph users batch with (``BatchRequestBuilder`` on kiota's httpx
request adapter, through Graph's default middleware) against a small Graph-like Flask app on
127.0.0.1, and checks what they rely on: each answer's status, its headers as Graph spells
them, its body, and ``dependsOn``. What msgraph-core 1.5.2 does with each body is pinned too:
it reads only a body that is a string, and as padded standard base64, as Graph sends binary
bodies (a profile photo's ``"/9j/4AAQ..."``); a JSON body, which Graph sends as the value
itself, it leaves unread (None), so the raw answer is read here as well.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from flask import Flask, Response, request
from kiota_abstractions.authentication import AnonymousAuthenticationProvider
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
from kiota_serialization_json.json_serialization_writer_factory import (
    JsonSerializationWriterFactory,
)
from msgraph_core.base_graph_request_adapter import BaseGraphRequestAdapter
from msgraph_core.graph_client_factory import GraphClientFactory
from msgraph_core.requests.batch_request_builder import BatchRequestBuilder
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem
from werkzeug.exceptions import NotFound

from flask_batch import add_batch_route
from tests.servers import live_server

#: A JPEG's first bytes and more: in standard base64 ("/9j/4Pv/vz4=") it has "/" and "+"
#: where base64url has "_" and "-", and it needs padding.
PHOTO = b"\xff\xd8\xff\xe0\xfb\xff\xbf\x3e"


@dataclass
class Mailbox:
    """What the Graph-like app was sent: each message's JSON, in order."""

    messages: list[Any] = field(default_factory=list)


def create_graph_app() -> tuple[Flask, Mailbox]:
    """A few of Graph's routes under /v1.0, its errors as Graph writes them, and the batch
    route where Graph has it, answering in Graph's dialect."""
    app = Flask(__name__)
    mailbox = Mailbox()

    @app.get("/v1.0/me")
    def me() -> dict[str, Any]:
        return {"id": "48d31887", "displayName": "Adele Vance"}

    @app.post("/v1.0/me/messages")
    def send_message() -> tuple[dict[str, Any], int]:
        mailbox.messages.append(request.get_json())
        return {"id": f"AAMk{len(mailbox.messages)}", **request.get_json()}, 201

    @app.get("/v1.0/me/photo/$value")
    def photo() -> Response:
        return Response(PHOTO, mimetype="image/jpeg")

    @app.errorhandler(NotFound)
    def not_found(error: NotFound) -> tuple[dict[str, Any], int]:
        return {"error": {"code": "Request_ResourceNotFound", "message": "Not found"}}, 404

    add_batch_route(app, "/v1.0/$batch", json_dialect="graph")
    return app, mailbox


@contextmanager
def serving() -> Iterator[tuple[str, Mailbox]]:
    """The Graph-like app on a real socket: its Graph base URL (``.../v1.0``), its mailbox."""
    app, mailbox = create_graph_app()
    with live_server(app) as base:
        yield f"{base}/v1.0", mailbox


def graph_request(
    base: str, method: Method, path: str, json_body: dict[str, Any] | None = None
) -> RequestInformation:
    """A request as Graph's request builders make it: an absolute URL, a JSON body."""
    info = RequestInformation(method)
    info.url = f"{base}{path}"
    if json_body is not None:
        info.headers.try_add("Content-Type", "application/json")
        info.content = json.dumps(json_body).encode()
    return info


@dataclass
class Answered:
    """What the client made of a batch's answer, and that answer as it came."""

    responses: dict[str, Any]
    raw: dict[str, Any]
    photo: bytes | None


def post_batch(base: str, items: list[BatchRequestItem]) -> Answered:
    """``items`` in one batch, posted as Graph users post it: ``BatchRequestBuilder`` on
    Graph's request adapter, with Graph's default middleware around httpx."""
    raw: list[bytes] = []

    async def keep(response: httpx.Response) -> None:
        raw.append(await response.aread())

    async def main() -> Answered:
        async with httpx.AsyncClient(event_hooks={"response": [keep]}) as http:
            adapter = BaseGraphRequestAdapter(
                AnonymousAuthenticationProvider(),
                JsonParseNodeFactory(),
                JsonSerializationWriterFactory(),
                GraphClientFactory.create_with_default_middleware(client=http),
            )
            adapter.base_url = base
            content = BatchRequestContent()
            for item in items:
                content.add_request(item.id, item)
            answer = await BatchRequestBuilder(adapter).post(content)
        stream = answer.get_response_stream_by_id("photo")
        return Answered(answer.responses, json.loads(raw[-1]), stream and stream.getvalue())

    return asyncio.run(main())


def test_graph_batch_answers_each_request() -> None:
    """Each answer reaches its request: status, Graph's header names, the body on the wire
    as Graph sends it, and the binary body as the client decodes it."""
    with serving() as (base, mailbox):
        answered = post_batch(
            base,
            [
                BatchRequestItem(graph_request(base, Method.GET, "/me"), id="me"),
                BatchRequestItem(
                    graph_request(base, Method.POST, "/me/messages", {"subject": "Hi"}),
                    id="send",
                ),
                BatchRequestItem(graph_request(base, Method.GET, "/me/photo/$value"), id="photo"),
                BatchRequestItem(graph_request(base, Method.GET, "/users/nobody"), id="missing"),
            ],
        )
    statuses = {key: item.status for key, item in answered.responses.items()}
    assert statuses == {"me": 200, "send": 201, "photo": 200, "missing": 404}
    assert answered.responses["me"].headers == {
        "Content-Type": "application/json",
        "Content-Length": "46",
    }
    assert answered.responses["photo"].headers == {
        "Content-Type": "image/jpeg",
        "Content-Length": str(len(PHOTO)),
    }
    assert answered.photo == PHOTO
    raw = {item["id"]: item for item in answered.raw["responses"]}
    assert raw["photo"]["body"] == "/9j/4Pv/vz4="  # padded standard base64, as Graph's
    assert raw["me"]["body"] == {"id": "48d31887", "displayName": "Adele Vance"}
    assert raw["send"]["body"] == {"id": "AAMk1", "subject": "Hi"}
    assert raw["missing"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    # msgraph-core 1.5.2 reads only string bodies: a JSON one, as Graph sends it, stays None.
    assert answered.responses["me"].body is None
    assert mailbox.messages == [{"subject": "Hi"}]


def test_graph_depends_on() -> None:
    """The client's ``depends_on`` (its spelling of ``dependsOn``): a request after a
    success runs; one after a failure is answered 424 and does not run."""
    with serving() as (base, mailbox):
        me = BatchRequestItem(graph_request(base, Method.GET, "/me"), id="1")
        missing = BatchRequestItem(graph_request(base, Method.GET, "/users/nobody"), id="2")
        after_me = BatchRequestItem(
            graph_request(base, Method.POST, "/me/messages", {"subject": "after 1"}),
            id="3",
            depends_on=[me],
        )
        after_missing = BatchRequestItem(
            graph_request(base, Method.POST, "/me/messages", {"subject": "after 2"}),
            id="4",
            depends_on=["2"],
        )
        answered = post_batch(base, [me, missing, after_me, after_missing])
    statuses = {key: item.status for key, item in answered.responses.items()}
    assert statuses == {"1": 200, "2": 404, "3": 201, "4": 424}
    assert answered.responses["4"].headers["Content-Type"] == "application/problem+json"
    assert mailbox.messages == [{"subject": "after 1"}]
