"""Drive an ASGI application in-process, as a server would, with full control of the body's
chunks: the ASGI counterpart of Werkzeug's test client, for the middleware tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote

from flask_batch.wire.model import SubRequest, SubResponse
from flask_batch.wire.multipart_answers import read_responses
from flask_batch.wire.multipart_requests import encode_requests

Message = dict[str, Any]
App = Callable[..., Awaitable[None]]
T = TypeVar("T")

BOUNDARY = "test-boundary"
MULTIPART = f"multipart/mixed; boundary={BOUNDARY}"
HOST = "testserver"


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on a fresh event loop (one per test, as a server process has one)."""
    return asyncio.run(coroutine)


@dataclass
class Exchange:
    """What the application sent back, and how much of the request it read."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    messages: list[Message]
    #: How many request chunks the application received before it answered.
    chunks_read: int = 0
    #: Body chunks of the answer, as sent (a streamed answer has several).
    body_chunks: list[bytes] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode("latin-1")
        return next((v.decode("latin-1") for k, v in self.headers if k == wanted), None)

    def json(self) -> Any:
        return json.loads(self.body)

    def problem(self) -> dict[str, Any]:
        """The problem document of a refused batch, checked to be application/problem+json."""
        assert self.header("content-type") == "application/problem+json", self.body
        document: dict[str, Any] = self.json()
        assert document["status"] == self.status
        return document

    def parts(self) -> list[SubResponse]:
        """The answers of a multipart batch, checked to be a 200."""
        assert self.status == 200, self.body
        content_type = self.header("content-type")
        return [response for _, response in read_responses(content_type, self.body)]


def http_scope(
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]] = (),
    **overrides: Any,
) -> dict[str, Any]:
    """The scope uvicorn builds for ``method target`` on 127.0.0.1 (no root path)."""
    raw_path, _, query = target.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": (HOST, 80),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("ascii"),
        "query_string": query.encode("ascii"),
        "headers": [(b"host", HOST.encode())]
        + [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "state": {},
    }
    scope.update(overrides)
    return scope


async def request(
    app: App,
    method: str,
    target: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | Sequence[bytes] = b"",
    scope: dict[str, Any] | None = None,
    disconnect_after: int | None = None,
    on_send: Callable[[Message], Awaitable[None]] | None = None,
    state: dict[str, Any] | None = None,
) -> Exchange:
    """Send one request; ``body`` as bytes or as the chunks the server would deliver.

    ``state``: the lifespan state (:func:`lifespan`), copied into the scope as servers do.

    ``disconnect_after``: the client goes away after that many answer body chunks (``send``
    then raises OSError, as an ASGI 2.4 server does).
    """
    chunks = [body] if isinstance(body, bytes) else list(body)
    headers = list(headers)
    if not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        headers.append(("content-length", str(sum(len(c) for c in chunks))))
    full_scope = scope if scope is not None else http_scope(method, target, headers)
    framing = (b"content-length", b"transfer-encoding")
    if not any(bytes(name).lower() in framing for name, _ in full_scope["headers"]):
        # An HTTP/1.1 server passes on the framing the client sent; a test's scope too.
        length = str(sum(len(c) for c in chunks)).encode()
        full_scope["headers"] = [*full_scope["headers"], (b"content-length", length)]
    if state is not None:
        full_scope["state"] = state.copy()
    messages: list[Message] = []
    read = 0
    read_when_answered: list[int] = []

    async def receive() -> Message:
        nonlocal read
        if read < len(chunks):
            read += 1
            more = read < len(chunks)
            return {"type": "http.request", "body": chunks[read - 1], "more_body": more}
        await asyncio.Event().wait()  # the client stays connected: wait forever
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        if (
            disconnect_after is not None
            and sum(1 for m in messages if m["type"] == "http.response.body") >= disconnect_after
        ):
            raise OSError("the client went away")
        if message["type"] == "http.response.start":
            read_when_answered.append(read)
        messages.append(message)
        if on_send is not None:
            await on_send(message)

    await app(full_scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body_chunks = [m.get("body", b"") for m in messages if m["type"] == "http.response.body"]
    return Exchange(
        start["status"],
        [(bytes(k), bytes(v)) for k, v in start.get("headers", [])],
        b"".join(body_chunks),
        messages,
        read_when_answered[0] if read_when_answered else read,
        body_chunks,
    )


async def batch(
    app: App,
    *requests: SubRequest,
    path: str = "/batch",
    headers: Iterable[tuple[str, str]] = (),
    **kwargs: Any,
) -> list[SubResponse]:
    """Send ``requests`` as one multipart batch; the answers in order, checked to be a 200."""
    body = encode_requests(requests, BOUNDARY)
    answer = await request(
        app, "POST", path, headers=[("content-type", MULTIPART), *headers], body=body, **kwargs
    )
    parts = answer.parts()
    assert len(parts) == len(requests)
    return parts


def sub(
    method: str,
    target: str,
    body: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (),
    *,
    content_id: str | None = None,
    depends_on: tuple[str, ...] = (),
) -> SubRequest:
    return SubRequest(method, target, headers, body, content_id, depends_on)


def part_json(response: SubResponse) -> Any:
    return json.loads(response.body)


def part_header(response: SubResponse, name: str) -> str | None:
    return next((v for k, v in response.headers if k.lower() == name.lower()), None)


@asynccontextmanager
async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
    """Run ``app``'s lifespan (startup, then shutdown on exit); yield its state."""
    state: dict[str, Any] = {}
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": state}
    task = asyncio.ensure_future(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    message = await outbox.get()
    assert message["type"] == "lifespan.startup.complete", message
    try:
        yield state
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        message = await outbox.get()
        assert message["type"] == "lifespan.shutdown.complete", message
        await task
