"""The ledger API of tests/ledger.py behind real batch routes on real servers (127.0.0.1),
each stack with its own transaction hook, and the ways a test sends it batches: our clients
and raw bytes.

Every stack serves two batch routes with the hook: ``/batch`` (parts one after another) and
``/batch/parallel`` (``max_workers=2``: two groups at once, each on a worker of its own, or
each in a task of its own). A batch is a list of :data:`Item`: a request alone, or a tuple
of requests, an atomic group (a changeset in the multipart format, an ``atomicityGroup`` in
JSON). A sender answers one :class:`~tests.ledger.Answer` per request, in order, as our
clients fill a failed group's members: the member that failed its own answer, the others
``424``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
import requests
from flask import Flask

from flask_batch import Batch, add_batch_route
from flask_batch.asgi import BatchMiddleware as AsgiBatchMiddleware
from flask_batch.client import Batching
from flask_batch.client._core.formats import FormatName
from flask_batch.client.httpx import AsyncBatchTransport, BatchTransport
from flask_batch.wire.model import SubResponse
from flask_batch.wsgi import BatchMiddleware as WsgiBatchMiddleware

from .conformance.wire import post
from .databases import Database
from .frameworks.serving import asgi_server
from .ledger import GUARD, Answer, AsgiLedger, Call, Ledger, WsgiLedger, make_ledger
from .servers import live_server

#: A request alone, or an atomic group.
Item = Call | tuple[Call, ...]
#: Sends ``items`` as one batch to a batch URL in a format ("multipart" or "json").
Sender = Callable[[str, Sequence[Item], FormatName], list[Answer]]

#: Each batch route every stack serves, and its ``max_workers``.
ROUTES = {"/batch": 1, "/batch/parallel": 2}


@dataclass(frozen=True)
class Served:
    """A stack serving the ledger: its base URL, its database, and how it is sent batches."""

    base: str
    database: Database
    sender: Sender

    def send(
        self, *items: Item, format: FormatName = "multipart", route: str = "/batch"
    ) -> list[Answer]:
        return self.sender(self.base + route, items, format)

    def entries(self) -> Any:
        """``GET /entries`` on its own: what the next request sees."""
        answer = requests.get(f"{self.base}/entries", timeout=GUARD)
        assert answer.status_code == 200, answer.text
        return answer.json()


@contextmanager
def served(stack: str, database: Database) -> Iterator[Served]:
    """``stack``, a kind of :data:`tests.ledger.KINDS`, serving the ledger on ``database``
    with its hook on both :data:`ROUTES`."""
    with make_ledger(stack, database, served=True) as ledger, _serving(ledger) as base:
        yield Served(base, database, SENDERS.get(stack, send_raw))


@contextmanager
def _serving(ledger: Ledger) -> Iterator[str]:
    if isinstance(ledger, AsgiLedger):
        asgi = ledger.app
        for path, workers in ROUTES.items():
            asgi = AsgiBatchMiddleware(asgi, path, transaction=ledger.hook, max_workers=workers)
        # On the ledger's loop, where its engine's connections belong.
        with asgi_server(asgi, ledger.loop) as base:
            yield base
        return
    assert isinstance(ledger, WsgiLedger)
    app, hook = ledger.app, ledger.hook
    if isinstance(app, Flask):
        # The extension both ways: its object, and the function.
        Batch(app, transaction=hook)
        workers = ROUTES["/batch/parallel"]
        add_batch_route(app, "/batch/parallel", "parallel", transaction=hook, max_workers=workers)
    else:
        for path, workers in ROUTES.items():
            app = WsgiBatchMiddleware(app, path, transaction=hook, max_workers=workers)
    with live_server(app) as base:
        yield base


# --------------------------------------------------------------------------------------
# Raw bytes
# --------------------------------------------------------------------------------------

BOUNDARY = "ledger-batch"


def send_raw(batch_url: str, items: Sequence[Item], format: FormatName) -> list[Answer]:
    """Write the batch by hand: each request's id is its position from 1, each group's name
    ``g<position of its first member>``."""
    base, route = _origin(batch_url), urlsplit(batch_url).path
    numbered = list(_numbered(items))
    if format == "json":
        document = {"requests": [_json_request(*each) for each in numbered]}
        answer = post(base, route, json.dumps(document).encode(), "application/json")
        assert answer.status == 200, answer.body[:500]
        return [Answer(r["status"], r.get("body")) for r in json.loads(answer.body)["responses"]]
    parts = _by_part(numbered)
    body = b"".join(_multipart_item(group, calls) for group, calls in parts)
    body += f"--{BOUNDARY}--\r\n".encode()
    tree = post(base, route, body, f"multipart/mixed; boundary={BOUNDARY}").tree()
    answers = []
    for (group, calls), (content_id, part) in zip(parts, tree, strict=True):
        answers += _part_answers(group, calls, content_id, part)
    return answers


def _numbered(items: Sequence[Item]) -> Iterator[tuple[str, str | None, Call]]:
    """(id, group or None, request) of every request, in order."""
    position = 0
    for item in items:
        calls = (item,) if isinstance(item, Call) else item
        group = None if isinstance(item, Call) else f"g{position + 1}"
        for call in calls:
            position += 1
            yield str(position), group, call


def _by_part(
    numbered: list[tuple[str, str | None, Call]],
) -> list[tuple[str | None, list[tuple[str, Call]]]]:
    """The requests of each part of a multipart batch: one alone, or a changeset's."""
    parts: list[tuple[str | None, list[tuple[str, Call]]]] = []
    for request_id, group, call in numbered:
        if group is None or not parts or parts[-1][0] != group:
            parts.append((group, []))
        parts[-1][1].append((request_id, call))
    return parts


def _json_request(request_id: str, group: str | None, call: Call) -> dict[str, Any]:
    request: dict[str, Any] = {"id": request_id, "method": call.method, "url": call.path}
    if call.body is not None:
        request |= {"headers": {"Content-Type": "application/json"}, "body": call.body}
    if group is not None:
        request["atomicityGroup"] = group
    return request


def _http_part(request_id: str, call: Call, boundary: str) -> bytes:
    body = b"" if call.body is None else json.dumps(call.body).encode()
    head = f"{call.method} {call.path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n"
    if body:
        head += "Content-Type: application/json\r\n"
    return (
        (
            f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: {request_id}\r\n\r\n"
            f"{head}\r\n"
        ).encode()
        + body
        + b"\r\n"
    )


def _multipart_item(group: str | None, calls: list[tuple[str, Call]]) -> bytes:
    if group is None:
        [(request_id, call)] = calls
        return _http_part(request_id, call, BOUNDARY)
    members = b"".join(_http_part(request_id, call, group) for request_id, call in calls)
    changeset = members + f"--{group}--\r\n".encode()
    mime = f"--{BOUNDARY}\r\nContent-Type: multipart/mixed; boundary={group}\r\n\r\n"
    return mime.encode() + changeset + b"\r\n"


def _part_answers(
    group: str | None, calls: list[tuple[str, Call]], content_id: str | None, part: Any
) -> list[Answer]:
    """The answers of one part: a request's; a changeset's members' (nested: it was applied);
    or a failed changeset's one part, which OData's rule gives to the member its Content-ID
    names, the others ``424``, as our clients fill them (a part that names none, as when the
    commit failed, is every member's)."""
    if isinstance(part, list):
        assert group is not None, part
        return [_answer(response) for _, response in part]
    if group is None or content_id is None:
        return [_answer(part)] * len(calls)
    assert content_id in [request_id for request_id, _ in calls], content_id
    return [_answer(part) if i == content_id else Answer(424, None) for i, _ in calls]


def _answer(response: SubResponse) -> Answer:
    return Answer(response.status, json.loads(response.body) if response.body else None)


# --------------------------------------------------------------------------------------
# Our clients
# --------------------------------------------------------------------------------------


def send_with_batching(batch_url: str, items: Sequence[Item], format: FormatName) -> list[Answer]:
    """``Batching``, each group a ``with s.changeset():`` block."""
    origin = _origin(batch_url)
    with Batching(batch_url, format=format, retries=0, timeout=GUARD) as s:
        responses = _queued(
            items, lambda c: s.request(c.method, origin + c.path, json=c.body), s.changeset
        )
    return _answers(responses)


def send_with_httpx(batch_url: str, items: Sequence[Item], format: FormatName) -> list[Answer]:
    """The sync httpx transport, in a batch scope, each group a ``batch.changeset()``."""
    transport = BatchTransport(batch_url, format=format, retries=0)
    with (
        httpx.Client(transport=transport, base_url=_origin(batch_url), timeout=GUARD) as client,
        transport.batch(client) as batch,
    ):
        responses = _queued(
            items, lambda c: batch.request(c.method, c.path, json=c.body), batch.changeset
        )
    return _answers(responses)


R = TypeVar("R", bound="_Response")


def _queued(
    items: Sequence[Item],
    queue: Callable[[Call], R],
    changeset: Callable[[], AbstractContextManager[object]],
) -> list[R]:
    """Queue ``items`` in order with ``queue``, each group's inside a ``changeset()`` block."""
    responses = []
    for item in items:
        if isinstance(item, Call):
            responses.append(queue(item))
            continue
        with changeset():
            responses += [queue(call) for call in item]
    return responses


class _Response(Protocol):
    """What the answers of ``requests`` and httpx have in common."""

    @property
    def status_code(self) -> int: ...
    @property
    def content(self) -> bytes: ...
    def json(self) -> Any: ...


def _answers(responses: Sequence[_Response]) -> list[Answer]:
    return [Answer(r.status_code, r.json() if r.content else None) for r in responses]


def send_all_sync(batch_url: str, items: Sequence[Item], format: FormatName) -> list[Answer]:
    """The sync httpx transport's ``send_all`` (see :func:`_send_all_arguments`)."""
    arguments = _send_all_arguments(batch_url, items)
    if arguments is None:
        return send_raw(batch_url, items, format)
    batch, atomic = arguments
    with BatchTransport(batch_url, format=format, retries=0) as transport:
        return _answers(transport.send_all(batch, atomic=atomic))


def send_all_async(batch_url: str, items: Sequence[Item], format: FormatName) -> list[Answer]:
    """The async httpx transport's ``send_all`` (see :func:`_send_all_arguments`)."""
    arguments = _send_all_arguments(batch_url, items)
    if arguments is None:
        return send_raw(batch_url, items, format)

    async def send(batch: list[httpx.Request], atomic: bool) -> list[httpx.Response]:
        transport = AsyncBatchTransport(batch_url, format=format, retries=0)
        try:
            return await transport.send_all(batch, atomic=atomic)
        finally:
            await transport.aclose()

    return _answers(asyncio.run(send(*arguments)))


def _send_all_arguments(
    batch_url: str, items: Sequence[Item]
) -> tuple[list[httpx.Request], bool] | None:
    """What ``send_all`` is given for ``items``: the requests of one group (``atomic``), or
    requests alone; None for a batch of another shape, which ``send_all`` cannot send (it
    goes as raw bytes)."""
    groups = [item for item in items if not isinstance(item, Call)]
    if groups and len(items) > 1:
        return None
    calls = groups[0] if groups else [item for item in items if isinstance(item, Call)]
    origin = _origin(batch_url)
    batch = [httpx.Request(c.method, origin + c.path, json=c.body) for c in calls]
    return batch, bool(groups)


def _origin(batch_url: str) -> str:
    url = urlsplit(batch_url)
    return f"{url.scheme}://{url.netloc}"


#: Which stacks our clients send to (each client on one stack at least); raw bytes for the rest.
SENDERS: dict[str, Sender] = {
    "flask-sqlalchemy": send_with_batching,
    "django": send_with_httpx,
    "django-atomic-requests": send_all_sync,
    "sqlalchemy-asyncio": send_all_async,
}
