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
import functools
import logging
import time
from collections.abc import (
    AsyncIterator,
    Iterable,
)
from contextlib import aclosing

from .asgi_parts import ASGIApp, Message, Parts, Receive, Scope, Send, under
from .conventions import Versions
from .execution import astream_answers
from .intake import DESCRIBE_METHODS, Answer, Intake, describe, error_answer, plan_run
from .observe import Tally
from .options import MiddlewareOptions
from .targets import PART_KEY
from .tracing import batch_trace
from .wire.content_coding import GzipEncoder
from .wire.errors import BatchError

__all__ = ["BatchMiddleware", "route_path"]

logger = logging.getLogger("flask_batch")


class BatchMiddleware(MiddlewareOptions[ASGIApp]):
    """Serve batches at ``path`` in front of any ASGI application (on a ``shared_path``,
    only a POST, carrying ``batch_query`` if set; every other request passes through).

    The options are those of the Flask extension (docs/configuration.md), as keyword
    arguments; an invalid value raises ValueError. With ``max_workers`` above 1, independent
    parts of a batch run concurrently as tasks on the event loop: at most
    ``max_workers_per_request`` at once for one batch, and at most ``max_workers`` at once for
    all the batches of this middleware. The default, 1, runs the parts one after another, in
    request order, as the Flask extension and the WSGI middleware do.
    """

    asynchronous = True

    @functools.cached_property
    def _limiters(self) -> dict[asyncio.AbstractEventLoop, asyncio.Semaphore]:
        # One semaphore per event loop (a server runs one; test clients may run several).
        return {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or route_path(scope) != self.path
            or not self.settings.routing.takes(
                scope.get("method", ""), scope.get("query_string", b"").decode("latin-1")
            )
        ):
            await self.app(scope, receive, send)
            return
        await self.serve(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the batch request of ``scope``, whatever its path."""
        started = time.monotonic()
        method = scope.get("method", "")
        nested = bool(scope.get(PART_KEY))
        if method in DESCRIBE_METHODS and not nested:
            described = describe(self.limits, self.execution, self.settings.conventions)
            await _send_whole(send, described, head=method == "HEAD")
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
                accept_encoding=_joined(scope, b"accept-encoding"),
                nested=nested,
                started=started,
                conventions=self.settings.conventions,
                versions=Versions.read(lambda name: headers.get(name.lower())),
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
                intake,
                limits=self.limits,
                execution=self.execution,
                prefer=headers.get("prefer"),
                started=started,
                request_id=headers.get("x-request-id"),
            )
        except BatchError as error:
            await _send_whole(send, error_answer(error))
            if more_body:
                await _drain(receive, self.limits.max_body_size)
            return
        concurrent = run.policy.workers > 1
        trace = batch_trace(lambda: headers, method, route_path(scope), started)
        parts = Parts(
            self.app,
            scope,
            self.settings.header_rules,
            self.limits.max_answer_part_size,
            self.settings.routing.takes,
            trace_fields=trace.fields,
        )
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
            member_dispatch=parts.member,
            resolve=run.resolver(parts.router),
            tally=run.tally,
            observer=run.observer,
        )
        try:
            async with aclosing(answer):
                encoder = GzipEncoder() if intake.gzip else None
                await _stream(send, intake.status, run.headers, answer, run.tally, encoder=encoder)
        finally:
            watcher.cancel()
            await parts.finish()
            trace.end(intake.status)

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
    if root and under(path, root):
        return path[len(root) :]
    return path


def _fields(scope: Scope) -> dict[str, str]:
    """The first value of each header of ``scope`` (names lower-cased)."""
    fields: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        fields.setdefault(bytes(name).decode("latin-1").lower(), bytes(value).decode("latin-1"))
    return fields


def _joined(scope: Scope, name: bytes) -> str | None:
    """Every value of the list header ``name`` (lower-case) of ``scope``, joined by commas
    as a WSGI server joins them (RFC 9110, 5.3), or None if there is none."""
    values = [
        bytes(value).decode("latin-1")
        for key, value in scope.get("headers", ())
        if bytes(key).lower() == name
    ]
    return ", ".join(values) if values else None


def _encode(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


async def _send_whole(send: Send, answer: Answer, *, head: bool = False) -> None:
    body = b"".join(answer.body)
    headers = _encode(answer.headers)  # with its Content-Length (intake.whole_answer)
    await send({"type": "http.response.start", "status": answer.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _stream(
    send: Send,
    status: int,
    headers: list[tuple[str, str]],
    chunks: AsyncIterator[bytes],
    tally: Tally,
    *,
    encoder: GzipEncoder | None = None,
) -> None:
    """Send the batch's answer as its parts are written (through ``encoder``, if it is
    compressed); the status line waits for the first, and says how the batch went if every
    part has answered by then (``tally``)."""
    started = False
    try:
        async for chunk in chunks:
            if not started:
                fields = _encode(headers + tally.headers())
                await send({"type": "http.response.start", "status": status, "headers": fields})
                started = True
            data = chunk if encoder is None else encoder.encode(chunk)
            await send({"type": "http.response.body", "body": data, "more_body": True})
            # Parts that answer at once never give the loop a turn (a part's task starts
            # eagerly): one between chunks, so the server's other requests are not held up
            # for a whole batch.
            await asyncio.sleep(0)
        end = b"" if encoder is None else encoder.finish()
        await send({"type": "http.response.body", "body": end, "more_body": False})
    except OSError:
        return  # the client went away (ASGI 2.4 servers raise OSError from send)
