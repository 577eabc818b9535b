"""ASGI adapter: batches served in front of any ASGI application (FastAPI, Starlette, Quart,
Litestar...), each part dispatched in-process as an ASGI sub-request::

    from flask_batch.asgi import BatchMiddleware

    app = BatchMiddleware(app)            # POST /batch now accepts batches

A pure ASGI middleware: ``lifespan`` and ``websocket`` scopes, and every HTTP request to
another path, pass through untouched. The batch body is read from ``receive`` as it streams in
and fed to the wire readers chunk by chunk, so a limit is enforced as soon as it is exceeded.

Each part gets the scope an ASGI server would have built for it (see :class:`Parts`), its own
``receive`` (its body once, then ``http.disconnect`` once its response is complete) and its own
``send``, and runs as its own task in an empty :class:`contextvars.Context`, so nothing
context-local flows from the batch request into a part or from one part into the next. A part
is answered as soon as its response is complete; work the application does after that (a
Starlette background task) goes on, and the batch request ends once all of it has finished.

Requires an asyncio event loop (uvicorn, hypercorn's asyncio worker, daphne, granian).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import sys
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    MutableMapping,
)
from contextlib import aclosing
from typing import Any

from .execution import AnswerBody, answer_too_large, astream_answers
from .intake import DESCRIBE_METHODS, Answer, Intake, describe, error_answer, plan_run
from .options import MiddlewareOptions
from .part_headers import DEFAULT_HEADER_RULES, HeaderRules, connection_options, inherited
from .targets import PART_KEY, PartRefused, Router, server_host
from .wire.errors import BatchError, reason_phrase
from .wire.model import DEFAULT_LIMITS, SubRequest, SubResponse

__all__ = ["BatchMiddleware", "Parts", "route_path"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: Any ASGI 3 application (typed loosely: frameworks type their scopes as TypedDicts).
ASGIApp = Callable[..., Awaitable[None]]

logger = logging.getLogger("flask_batch")

#: What the batch's scope shares with every part: the server's and the connection's facts.
_SHARED_KEYS = ("asgi", "http_version", "root_path", "client", "server")
_DISCONNECT: Message = {"type": "http.disconnect"}


class BatchMiddleware(MiddlewareOptions[ASGIApp]):
    """Serve batches at ``path`` in front of any ASGI application.

    The options are those of the Flask extension (README, Configuration), as keyword
    arguments; an invalid value raises ValueError. With ``max_workers`` above 1, independent
    parts of a batch run concurrently as tasks on the event loop: at most
    ``max_workers_per_request`` at once for one batch, and at most ``max_workers`` at once for
    all the batches of this middleware. The default, 1, runs the parts one after another, in
    request order, as the Flask extension and the WSGI middleware do.
    """

    @functools.cached_property
    def _limiters(self) -> dict[asyncio.AbstractEventLoop, asyncio.Semaphore]:
        # One semaphore per event loop (a server runs one; test clients may run several).
        return {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or route_path(scope) != self.path:
            await self.app(scope, receive, send)
            return
        await self.serve(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the batch request of ``scope``, whatever its path."""
        started = time.monotonic()
        method = scope.get("method", "")
        nested = bool(scope.get(PART_KEY))
        if method in DESCRIBE_METHODS and not nested:
            await _send_whole(send, describe(self.limits, self.execution), head=method == "HEAD")
            return
        headers = _fields(scope)
        more_body = True
        try:
            intake = Intake(
                self.limits,
                method=method,
                content_type=headers.get("content-type"),
                content_length=headers.get("content-length"),
                # HTTP/2 and HTTP/3 frame every body; HTTP/1 needs a length or chunks.
                framed="transfer-encoding" in headers
                or scope.get("http_version", "1.1") not in ("1.0", "1.1"),
                content_encoding=headers.get("content-encoding"),
                nested=nested,
                started=started,
                json_dialect=self.settings.conventions.json_dialect,
                odata_version=headers.get("odata-version") or headers.get("odata-maxversion"),
            )
            while more_body:
                message = await _receive(receive, intake)
                if message["type"] == "http.disconnect":
                    return  # the client went away: there is no one to answer
                if chunk := message.get("body", b""):
                    intake.feed(chunk)
                more_body = message.get("more_body", False)
            requests = intake.close()
            run = plan_run(
                requests,
                intake.writer,
                limits=self.limits,
                execution=self.execution,
                prefer=headers.get("prefer"),
                started=started,
            )
        except BatchError as error:
            await _send_whole(send, error_answer(error))
            if more_body:
                await _drain(receive, self.limits.max_body_size)
            return
        concurrent = run.policy.workers > 1
        parts = Parts(self.app, scope, self.settings.header_rules, self.limits.max_answer_part_size)
        gone = asyncio.Event()  # set when the client disconnects: start no more parts
        watcher = asyncio.ensure_future(_watch_disconnect(receive, gone))
        answer = astream_answers(
            requests,
            run.dependencies,
            parts,
            intake.writer,
            policy=run.policy,
            limiter=self._limiter() if concurrent else None,
            stop=gone,
        )
        try:
            async with aclosing(answer):
                await _stream(send, run.headers, answer)
        finally:
            watcher.cancel()
            await parts.finish()

    def _limiter(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            for closed in [other for other in self._limiters if other.is_closed()]:
                del self._limiters[closed]
            limiter = self._limiters[loop] = asyncio.Semaphore(self.execution.max_workers)
        return limiter


async def _receive(receive: Receive, intake: Intake) -> Message:
    """The next message of the batch request's body, refused (408) if the deadline passes
    while the client is still sending it."""
    while True:
        seconds = intake.seconds_left()
        if seconds is None:
            return await receive()
        try:
            return await asyncio.wait_for(receive(), seconds)
        except TimeoutError:
            intake.check_time()


#: Seconds a refused request's unread body is read and dropped for, at most.
_DRAIN_SECONDS = 1.0


async def _drain(receive: Receive, limit: int) -> None:
    """Read and drop what is left of a refused request's body, for a moment: a server that
    closes with unread bytes resets the connection, and the client can lose the refusal
    before it reads it. Bounded: at most ``limit`` bytes and :data:`_DRAIN_SECONDS`."""

    async def read() -> None:
        dropped = 0
        while dropped <= limit:
            message = await receive()
            dropped += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body", False):
                return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(read(), _DRAIN_SECONDS)


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    """Set ``gone`` when the client disconnects: once the body is read, a server has nothing
    else to say (anything else is ignored, and not waited for again)."""
    if (await receive())["type"] == "http.disconnect":
        gone.set()


def route_path(scope: Scope) -> str:
    """The path of ``scope`` below its ``root_path`` (servers differ on whether ``path``
    includes it: uvicorn's does, hypercorn's does not)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and _under(path, root):
        return path[len(root) :]
    return path


class Parts:
    """Dispatches the parts of one batch into an ASGI application, as ASGI sub-requests.

    The scope of a part is what an ASGI server would have built had the part come on its own:

    - ``type``, ``asgi``, ``http_version``, ``scheme``, ``root_path``, ``client`` and
      ``server``: the batch request's;
    - ``method``, ``query_string`` and the body: the part's own; ``path`` (percent-decoded,
      UTF-8) and ``raw_path`` (percent-encoding kept), with ``root_path`` included or not as
      the batch's own ``path`` has it;
    - ``headers`` (lower-cased names): the batch request's except ``Content-*``, ``Host`` and
      hop-by-hop ones, each replaced by the part's own of the same name; ``host`` is always
      the batch's, as are ``forwarded``, ``x-forwarded-*`` and ``x-real-ip``; a part's repeated
      ``cookie`` headers are joined with ``"; "``; ``content-length`` is the body's;
    - ``state``: a fresh shallow copy, for each part, of the batch request's ``state`` as it
      reached the middleware (what the server copied from the lifespan state, plus what
      middleware outside this one added): what a part stores there stays in that part;
    - ``extensions``: only ``tls`` (facts about the connection); capabilities such as
      ``http.response.pathsend`` or trailers are not offered, so the application falls
      back to plain ``http.response.body`` messages, which a part collects;
    - ``app``, if an outer layer set it (Starlette's ``add_middleware``): the application;
    - ``"flask_batch.part": True``, by which any batch endpoint refuses to nest.

    Nothing else of the batch's scope reaches a part: not what outer middleware derived from
    the batch request (``scope["user"]``, ``scope["session"]``...).
    """

    def __init__(
        self,
        app: ASGIApp,
        outer: Scope,
        header_rules: HeaderRules = DEFAULT_HEADER_RULES,
        answer_limit: int = DEFAULT_LIMITS.max_answer_part_size,
    ) -> None:
        self._app = app
        self._own_fields = header_rules.own_fields
        self._answer_limit = answer_limit
        self._lingering: set[asyncio.Task[None]] = set()
        scheme: str = outer.get("scheme") or "http"
        root: str = outer.get("root_path", "")
        path: str = outer.get("path", "")
        #: Does ``path`` include ``root_path`` (uvicorn) or not (hypercorn)?
        self._root_in_path = not root or _under(path, root)
        self._root_length = 0 if self._root_in_path else len(root.encode("utf-8"))
        headers = [(bytes(name).lower(), bytes(value)) for name, value in outer.get("headers", ())]
        listed = connection_options(
            ", ".join(value.decode("latin-1") for name, value in headers if name == b"connection")
        )
        host = next((value for name, value in headers if name == b"host"), None)
        if host is None:
            server = outer.get("server")
            host = (
                server_host(str(server[0]), server[1], scheme) if server else "localhost"
            ).encode("latin-1")
        self._headers = [(b"host", host)] + [
            (name, value) for name, value in headers if inherited(name.decode("latin-1"), listed)
        ]
        self._state: dict[str, Any] = dict(outer.get("state") or {})
        base: dict[str, Any] = {key: outer[key] for key in _SHARED_KEYS if key in outer}
        base.update({"type": "http", "scheme": scheme, PART_KEY: True})
        base.setdefault("asgi", {"version": "3.0"})
        if "extensions" in outer:
            tls = (outer["extensions"] or {}).get("tls")
            base["extensions"] = {} if tls is None else {"tls": tls}
        if "app" in outer:
            base["app"] = outer["app"]
        self._base = base
        full_path = path if self._root_in_path else root + path
        self._router = Router(
            scheme, host.decode("latin-1"), full_path.encode("utf-8"), root.encode("utf-8")
        )

    async def __call__(self, request: SubRequest) -> SubResponse:
        """Run ``request`` through the application; its response once complete."""
        try:
            scope = self.scope(request)
        except PartRefused as refusal:
            return refusal.answer()
        loop = asyncio.get_running_loop()
        exchange = _Exchange(request.body, loop.create_future(), self._answer_limit)
        # Its own task, as a server gives each request, started in an empty context: nothing
        # context-local (or keyed on the current task) is shared with the batch or other parts.
        task = _start_task(loop, exchange.run(self._app, scope))
        try:
            await exchange.answered
        except asyncio.CancelledError:
            task.cancel()
            raise
        if exchange.complete:
            if task.done():
                _report(task)
            else:  # the application works on after its response (background tasks)
                self._lingering.add(task)
                task.add_done_callback(self._forget)
            return exchange.response(self._answer_limit)
        if not task.done():  # it ended its response early; let it finish, then judge
            await asyncio.wait({task})
        if task.cancelled():  # by the application itself: only the batch cancels its parts
            raise RuntimeError("the part's task was cancelled before its response was complete")
        error = task.exception()
        if error is not None:
            raise error
        raise RuntimeError("the application returned without completing its response")

    def scope(self, request: SubRequest) -> Scope:
        """The ASGI scope of ``request``, as a server would have built it."""
        route = self._router.route(request.target, request.method)
        if self._root_in_path:
            path, raw_path = route.path, route.raw_path
        else:
            path, raw_path = route.local, _skip_decoded(route.raw_path, self._root_length)
        fields, length = self._own_fields(request.headers, len(request.body))
        if fields:  # each replaces the batch request's of the same name
            own = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in fields]
            replaced = {name for name, _ in own}
            headers = [field for field in self._headers if field[0] not in replaced]
            headers += own
        else:
            headers = self._headers.copy()
        if length is not None:
            headers.append((b"content-length", length.encode("ascii")))
        scope = self._base.copy()
        scope["method"] = request.method
        scope["path"] = path.decode("utf-8", "replace")
        scope["raw_path"] = raw_path.encode("latin-1")
        scope["query_string"] = route.query.encode("latin-1")
        scope["headers"] = headers
        scope["state"] = self._state.copy()
        return scope

    async def finish(self) -> None:
        """Wait for the work parts do after their responses (cancelled if this is)."""
        try:
            while self._lingering:
                await asyncio.wait(set(self._lingering))
        except asyncio.CancelledError:
            for task in self._lingering:
                task.cancel()
            raise

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._lingering.discard(task)
        _report(task)


#: The largest ``http.request`` message a part's body is sent in, when it is large.
_BODY_PIECE = 1024 * 1024


class _Exchange:
    """The ``receive`` and ``send`` of one part, and the response they collect."""

    __slots__ = (
        "_body_sent",
        "_ended",
        "_sent_body",
        "answer",
        "answered",
        "body",
        "complete",
        "headers",
        "status",
    )

    def __init__(
        self, body: bytes | bytearray, answered: asyncio.Future[None], answer_limit: int
    ) -> None:
        self.body = body
        #: Resolved when the response is complete or the application returned.
        self.answered = answered
        self.status: int | None = None
        self.headers: Iterable[tuple[bytes, bytes]] = ()
        #: The response body, gathered up to the part's answer limit.
        self.answer = AnswerBody(answer_limit)
        self.complete = False
        self._sent_body = False
        self._body_sent = 0  # bytes of a large body sent so far
        self._ended: asyncio.Event | None = None

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        try:
            await app(scope, self.receive, self.send)
        except _StoppedReading:
            pass  # what the application sent past the answer limit is dropped, as it was told
        finally:
            self._end()

    async def receive(self) -> Message:
        if not self._sent_body:
            body = self.body
            if isinstance(body, bytes):
                self._sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            # A large body handed over by the reader goes in bounded pieces, as a server
            # streams one: never a second whole copy of it.
            start = self._body_sent
            self._body_sent = end = min(start + _BODY_PIECE, len(body))
            self._sent_body = end == len(body)
            with memoryview(body) as view:
                piece = view[start:end].tobytes()
            return {"type": "http.request", "body": piece, "more_body": not self._sent_body}
        # As a server does: nothing more to read; the client "leaves" once it has its answer.
        if not self.answered.done():
            if self._ended is None:
                self._ended = asyncio.Event()
            await self._ended.wait()
        return dict(_DISCONNECT)

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if self.status is None:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self.answer.over:
                raise _StoppedReading  # as a server raises once its client has gone
            if self.complete:
                raise RuntimeError("http.response.body sent after the response was complete")
            if not self.answer.add(bytes(message.get("body", b""))):
                self.complete = True  # a 502 part: the rest is not waited for
                self._end()
            elif not message.get("more_body", False):
                self.complete = True
                self._end()
        elif kind == "http.response.start":
            if self.status is not None:
                raise RuntimeError("http.response.start sent twice")
            self.status = int(message["status"])
            self.headers = message.get("headers", ())
        else:
            raise RuntimeError(
                f"unexpected ASGI message {kind!r}: a part takes http.response.start and "
                "http.response.body"
            )

    def _end(self) -> None:
        if not self.answered.done():
            self.answered.set_result(None)
        if self._ended is not None:
            self._ended.set()

    def response(self, limit: int) -> SubResponse:
        assert self.status is not None
        if self.answer.over:
            return answer_too_large("max_answer_part_size", limit)
        headers = tuple(
            (bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
            for name, value in self.headers
        )
        return SubResponse(self.status, reason_phrase(self.status), headers, self.answer.value)


class _StoppedReading(OSError):
    """Raised from a part's ``send`` once its answer went past the limit: the application's
    cue to stop, as the ``OSError`` a server raises once the client has gone (ASGI 2.4)."""


if sys.version_info >= (3, 12):

    def _start_task(
        loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, None]
    ) -> asyncio.Task[None]:
        """A task in an empty context, started eagerly: an application that answers without
        suspending (most do) has answered when this returns, with no trip round the loop."""
        return asyncio.Task(coroutine, loop=loop, context=contextvars.Context(), eager_start=True)

else:

    def _start_task(
        loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, None]
    ) -> asyncio.Task[None]:
        """A task in an empty context (it starts at the loop's next turn)."""
        return contextvars.Context().run(loop.create_task, coroutine)


def _report(task: asyncio.Task[None]) -> None:
    """Log what a part's application raised after its response was complete."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        logger.error("a part's application raised after its response", exc_info=error)


def _under(path: str, root: str) -> bool:
    return path == root or (path.startswith(root) and path[len(root)] == "/")


def _skip_decoded(raw_path: str, count: int) -> str:
    """``raw_path`` without its first ``count`` bytes once percent-decoded (the root)."""
    position = 0
    while count > 0 and position < len(raw_path):
        position += 3 if raw_path[position] == "%" else 1
        count -= 1
    return raw_path[position:]


def _fields(scope: Scope) -> dict[str, str]:
    """The first value of each header of ``scope`` (names lower-cased)."""
    fields: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        fields.setdefault(bytes(name).decode("latin-1").lower(), bytes(value).decode("latin-1"))
    return fields


def _encode(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


async def _send_whole(send: Send, answer: Answer, *, head: bool = False) -> None:
    body = b"".join(answer.body)
    headers = _encode(answer.headers)  # with its Content-Length (endpoint.whole_answer)
    await send({"type": "http.response.start", "status": answer.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _stream(send: Send, headers: list[tuple[str, str]], chunks: AsyncIterator[bytes]) -> None:
    """Send the batch's answer as its parts are written; the status line waits for the first."""
    start: Message | None = {
        "type": "http.response.start",
        "status": 200,
        "headers": _encode(headers),
    }
    try:
        async for chunk in chunks:
            if start is not None:
                await send(start)
                start = None
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:
        return  # the client went away (ASGI 2.4 servers raise OSError from send)
