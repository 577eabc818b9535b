"""One small test API, served by each of the three front ends of a batch endpoint.

The routes are written once against a neutral request (:class:`Seen`) and answered with a
neutral :class:`Reply`; thin adapters turn them into a Flask app (the extension), a bare WSGI
app (behind :class:`flask_batch.wsgi.BatchMiddleware`) and a bare ASGI app (behind
:class:`flask_batch.asgi.BatchMiddleware`). So a behaviour asserted once is asserted of every
front end, and a difference between them fails the suite.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from flask import Flask, Response, request
from werkzeug.wsgi import ClosingIterator

from flask_batch import add_batch_route
from flask_batch import asgi as batch_asgi
from flask_batch import wsgi as batch_wsgi
from flask_batch.wire.model import MIB

from .ledger import Ledger

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

#: The batch routes every front end serves, and their options. A test picks the route whose
#: options it needs; nested middlewares (WSGI, ASGI) and several routes (Flask) serve them.
ROUTES: dict[str, dict[str, Any]] = {
    "/batch": {},
    "/batch/small": {
        "max_parts": 3,
        "max_body_size": 4000,
        "max_part_size": 600,
        "max_header_size": 300,
        "max_headers": 8,
    },
    "/batch/deadline": {"deadline": 1.0},
    "/batch/parallel": {"max_workers": 4},
    "/batch/pinned": {"pinned_headers": ["X-Tenant", "x-internal-*"]},
    "/batch/answers": {"max_answer_part_size": 1000, "max_answer_size": 2500},
    "/batch/mib-body": {"max_body_size": MIB},
    "/batch/parallel-capped": {"max_workers": 4, "max_workers_per_request": 2},
    # Atomic groups: TRANSACTION stands for the front end's hook over the Api's ledger.
    "/batch/tx": {"transaction": "TRANSACTION"},
    "/batch/tx-parallel": {"transaction": "TRANSACTION", "max_workers": 4},
    "/batch/tx-deadline": {"transaction": "TRANSACTION", "deadline": 0.5},
    "/batch/tx-small": {"transaction": "TRANSACTION", "max_parts": 4, "max_group_size": 2},
    # References ($<id>) resolve within the service root, the batch URL's parent: /service/.
    "/service/$batch": {"transaction": "TRANSACTION"},
    "/service/$batch-parallel": {"max_workers": 4},
    "/batch/in-order": {"non_atomic_groups": True},
    "/batch/tx-flat": {"transaction": "TRANSACTION", "flat_changesets": True},
    "/batch/accepted": {"answer_status": 202},
    "/batch/uncompressed": {"compress_answers": False},
    # A path the application's own view shares (SHARED): only POST ?comp=batch is a batch.
    "/batch/shared": {"shared_path": True, "batch_query": "comp=batch"},
    # The last one wraps the others (test_confinement.py): a route as plain as "/batch".
    "/batch/odata": {"json_dialect": "odata", "multipart_dialect": "odata"},
    "/batch/graph": {"json_dialect": "graph", "multipart_dialect": "google"},
}
TRANSACTION = "TRANSACTION"
#: The shared route's path, where the application answers every request that is no batch.
SHARED = "/batch/shared"


@dataclass(frozen=True)
class Seen:
    """A request as the application saw it (header names lower-case, repeats joined)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    client: str | None
    #: Where the request is in its batch and group (flask_batch.part_index, .member_index).
    place: tuple[int | None, int | None] = (None, None)

    def document(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body.decode("latin-1"),
            "client": self.client,
        }


@dataclass
class Reply:
    """What a route answers: ``chunks`` may be a generator (a streamed body)."""

    status: int
    headers: list[tuple[str, str]]
    chunks: Iterable[bytes]
    #: Seconds to wait before answering (slept, or awaited on ASGI).
    delay: float = 0.0
    #: Raise instead of answering.
    fail: bool = False
    #: Answer once this is true (polled; ten seconds at most): a part that waits for others.
    until: Callable[[], bool] | None = None


@dataclass
class Api:
    """The routes, and a log of the requests that reached them (``ran``)."""

    ran: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Bytes the streaming routes produced (a batch that stops reading stops them).
    produced: list[int] = field(default_factory=lambda: [0])
    #: The ``X-Test`` headers of the requests the server is done with (wsgi_telling_ends).
    over: set[str] = field(default_factory=set)
    changed: threading.Condition = field(default_factory=threading.Condition)
    #: The transactional store of the atomic groups' tests, and its hooks.
    ledger: Ledger = field(default_factory=Ledger)
    #: How many parts arrived at each meeting (/meet).
    met: dict[str, int] = field(default_factory=dict)

    def options(self, path: str, asynchronous: bool) -> dict[str, Any]:
        """The options of the batch route at ``path``, with this Api's transaction hook."""
        options = dict(ROUTES[path])
        if options.get("transaction") == TRANSACTION:
            options["transaction"] = self.ledger.abegin if asynchronous else self.ledger.begin
        return options

    def end(self, tag: str | None) -> None:
        if tag is None:
            return
        with self.changed:
            self.over.add(tag)
            self.changed.notify_all()

    def ended(self, tag: str, timeout: float = 10.0) -> bool:
        """Whether the request tagged ``tag`` is over (waiting ``timeout`` seconds at most)."""
        with self.changed:
            return self.changed.wait_for(lambda: tag in self.over, timeout)

    def answer(self, seen: Seen) -> Reply:
        with self.lock:
            self.ran.append(f"{seen.method} {seen.path}" + (f"?{seen.query}" if seen.query else ""))
        query = {key: values[0] for key, values in parse_qs(seen.query).items()}
        text = [("Content-Type", "text/plain")]
        if seen.path.startswith(("/service/Items", "/service/Orders")):  # test_references.py
            return self.items(seen, query)
        if seen.path == "/spelt":  # header names in every case (ASGI sends them lower-case)
            spelt = [
                ("content-TYPE", "text/plain"),
                ("etag", '"v1"'),
                ("WWW-Authenticate", "Bearer"),
                ("x-custom-thing", "1"),
                ("Set-Cookie", "a=1"),
                ("set-cookie", "b=2"),
            ]
            return Reply(200, spelt, [b"spelt"])
        if seen.path == "/ok":
            return Reply(200, text, [b"ok"])
        if seen.path == "/credentials":  # the token of its Authorization, back as a cookie
            token = seen.headers.get("authorization", "").split()[-1]
            return Reply(200, [*text, ("Set-Cookie", f"token={token}")], [b"credentials"])
        if seen.path == SHARED:  # the application's own view at the shared route's path
            return Reply(200, text, [b"the application's own"])
        if seen.path.startswith("/service/"):  # the service of OData's examples
            return _service(seen)
        if seen.path == "/set":  # a write, in the current transaction (if any)
            self.ledger.write(query["key"], query.get("value", "1"))
            return Reply(200, text, [b"set"])
        if seen.path == "/meet":  # waits until ``n`` parts came to the meeting ``name``
            name, count = query["name"], int(query.get("n", "2"))
            with self.lock:
                self.met[name] = self.met.get(name, 0) + 1
            return Reply(200, text, [b"met"], until=lambda: self.met[name] >= count)
        if seen.path == "/echo":
            return Reply(200, [("Content-Type", "application/octet-stream")], [seen.body])
        if seen.path == "/inspect":
            body = json.dumps(seen.document()).encode()
            return Reply(200, [("Content-Type", "application/json")], [body])
        if seen.path == "/place":  # where the part is: its index in the batch and group
            body = json.dumps(seen.place).encode()
            return Reply(200, [("Content-Type", "application/json")], [body])
        if seen.path == "/status":
            return Reply(int(query.get("code", "200")), text, [b"status"])
        if seen.path == "/slow":
            return Reply(200, text, [b"slow"], delay=float(query.get("s", "0.2")))
        if seen.path == "/raise":
            return Reply(500, text, [], fail=True)
        if seen.path in ("/stream", "/sized"):
            size, chunk = int(query.get("size", "0")), int(query.get("chunk", "65536"))
            headers = [("Content-Type", "application/octet-stream")]
            if seen.path == "/sized":
                headers.append(("Content-Length", str(size)))
            return Reply(200, headers, _pieces(size, chunk, self.produced))
        return Reply(404, text, [b"not found"])

    def items(self, seen: Seen, query: dict[str, str]) -> Reply:
        """The service of the references' tests: ``POST /service/Items?id=7`` creates item 7
        (``201``, ``ETag: "item-7"``, a ``Location`` of the kind ``location`` names); any
        other request answers what it saw (with ``ETag: "seen"``). A change is written to
        the ledger (in the group's transaction, if any) under its method and path."""
        if seen.method != "GET":
            self.ledger.write(f"{seen.method} {seen.path}", "1")
        delay = float(query.get("s", "0"))
        if (seen.method, seen.path) != ("POST", "/service/Items"):
            body = json.dumps(seen.document()).encode()
            headers = [("Content-Type", "application/json"), ("ETag", '"seen"')]
            return Reply(200, headers, [body], delay=delay)
        item = query.get("id", "1")
        locations = {
            "relative": f"Items({item})",
            "path": f"/service/Items({item})",
            "absolute": f"http://{seen.headers.get('host')}/service/Items({item})",
            "elsewhere": f"http://elsewhere.example/service/Items({item})",
            "outside": f"/admin/Items({item})",
        }
        headers = [("Content-Type", "application/json"), ("ETag", f'"item-{item}"')]
        location = locations.get(query.get("location", "relative"))
        if location is not None:
            headers.append(("Location", location))
        return Reply(201, headers, [json.dumps({"id": item}).encode()], delay=delay)


def _service(seen: Seen) -> Reply:
    """What the service of the OData 4.01 protocol's batch examples answers (section 11.7)."""
    json_type = [("Content-Type", "application/json")]
    if (seen.method, seen.path) == ("GET", "/service/Customers('ALFKI')"):
        return Reply(200, json_type, [b'{"CustomerID": "ALFKI"}'])
    if (seen.method, seen.path) == ("POST", "/service/Customers"):
        location = ("Location", "http://host/service.svc/Customer('POIUY')")
        return Reply(201, [*json_type, location], [seen.body])
    if (seen.method, seen.path) == ("PATCH", "/service/Customers('ALFKI')"):
        return Reply(204, [], [])
    return Reply(404, [("Content-Type", "application/xml")], [b"<error/>"])


def _pieces(size: int, chunk: int, produced: list[int]) -> Iterator[bytes]:
    sent = 0
    while sent < size:
        piece = min(chunk, size - sent)
        produced[0] += piece
        yield b"x" * piece
        sent += piece


def wsgi_telling_ends(app: WSGIApplication, api: Api) -> WSGIApplication:
    """``app``, telling ``api`` when the server is done with each request (:meth:`Api.end`):
    its answer sent, or given up when the client left (the server closes it either way)."""

    def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        answer = app(environ, start_response)
        return ClosingIterator(answer, lambda: api.end(environ.get("HTTP_X_TEST")))

    return application


def asgi_telling_ends(app: ASGIApp, api: Api) -> ASGIApp:
    """:func:`wsgi_telling_ends` for an ASGI ``app``: done when the application returns."""

    async def application(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                tag = dict(scope["headers"]).get(b"x-test")
                api.end(None if tag is None else tag.decode("latin-1"))

    return application


# Flask: the routes as views, and the extension's batch routes.


def flask_app(api: Api) -> Flask:
    app = Flask(__name__)

    @app.route("/<path:path>", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
    def route(path: str) -> Response:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = value if key not in headers else f"{headers[key]}, {value}"
        seen = Seen(
            request.method,
            request.path,
            request.query_string.decode("latin-1"),
            headers,
            request.get_data(),
            request.remote_addr,
            _place(request.environ),
        )
        reply = _wait(api.answer(seen))
        return Response(reply.chunks, status=reply.status, headers=reply.headers)

    for index, path in enumerate(ROUTES):
        add_batch_route(app, path, f"batch{index}", **api.options(path, asynchronous=False))
    return app


# WSGI: a bare application (no framework), behind one middleware per batch route.


def wsgi_app(api: Api) -> WSGIApplication:
    def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        headers: dict[str, str] = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                headers[key[5:].replace("_", "-").lower()] = value
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = environ[key]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        seen = Seen(
            environ["REQUEST_METHOD"],
            environ["PATH_INFO"],
            environ.get("QUERY_STRING", ""),
            headers,
            environ["wsgi.input"].read(length) if length else b"",
            environ.get("REMOTE_ADDR"),
            _place(environ),
        )
        reply = _wait(api.answer(seen))
        start_response(f"{reply.status} Status", reply.headers)
        return reply.chunks

    wrapped: WSGIApplication = application
    for path in ROUTES:
        wrapped = batch_wsgi.BatchMiddleware(wrapped, path, **api.options(path, False))
    return wrapped


def _place(environ_or_scope: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """Where a part is, as its environ or scope says (docs/execution.md, "Where a part is")."""
    return (
        environ_or_scope.get("flask_batch.part_index"),
        environ_or_scope.get("flask_batch.member_index"),
    )


def _wait(reply: Reply) -> Reply:
    if reply.delay:
        time.sleep(reply.delay)
    if reply.until is not None:
        deadline = time.monotonic() + 10
        while not reply.until() and time.monotonic() < deadline:
            time.sleep(0.002)
    if reply.fail:
        raise RuntimeError("the view failed")
    return reply


# ASGI: a bare application, behind one middleware per batch route.


def asgi_app(api: Api) -> ASGIApp:
    async def application(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            separator = "; " if name == "cookie" else ", "
            headers[name] = value if name not in headers else headers[name] + separator + value
        client = scope.get("client")
        seen = Seen(
            scope["method"],
            scope["path"],
            scope["query_string"].decode("latin-1"),
            headers,
            body,
            client[0] if client else None,
            _place(scope),
        )
        reply = api.answer(seen)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.until is not None:
            deadline = time.monotonic() + 10
            while not reply.until() and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
        if reply.fail:
            raise RuntimeError("the view failed")
        raw_headers = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in reply.headers]
        await send({"type": "http.response.start", "status": reply.status, "headers": raw_headers})
        for chunk in reply.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    wrapped: ASGIApp = application
    for path in ROUTES:
        wrapped = batch_asgi.BatchMiddleware(wrapped, path, **api.options(path, True))
    return wrapped
