"""ASGI sub-requests: each part of a batch run through an ASGI application in-process, with
the scope, ``receive`` and ``send`` a server would have given it (docs/design.md section 3).

:class:`Parts` builds a part's scope and runs it as its own task in an empty
:class:`contextvars.Context`; its ``_Exchange`` gives the body once, then ``http.disconnect``
once the response is complete, and gathers the response under the part's answer limit.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable, MutableMapping
from typing import Any

from .answers import AnswerBody, answer_too_large
from .part_headers import (
    DEFAULT_HEADER_RULES,
    HeaderRules,
    connection_options,
    inherited,
    voided,
)
from .targets import MEMBER_INDEX_KEY, PART_INDEX_KEY, PART_KEY, PartRefused, Router, server_host
from .wire.errors import reason_phrase
from .wire.model import DEFAULT_LIMITS, Headers, SubRequest, SubResponse

__all__ = ["ASGIApp", "Message", "Parts", "Receive", "Scope", "Send", "under"]

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
#: Distinct header blocks of one batch's parts kept worked out, at most (a client chooses
#: them: bounded).
_MERGED_BLOCKS = 256


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
    - ``"flask_batch.part": True``, by which any batch endpoint refuses to nest;
      ``"flask_batch.part_index"``, the part's index in the batch, and for a group's member
      ``"flask_batch.member_index"``, its index in the group (both from 0).

    Nothing else of the batch's scope reaches a part: not what outer middleware derived from
    the batch request (``scope["user"]``, ``scope["session"]``...).
    """

    def __init__(
        self,
        app: ASGIApp,
        outer: Scope,
        header_rules: HeaderRules = DEFAULT_HEADER_RULES,
        answer_limit: int = DEFAULT_LIMITS.max_answer_part_size,
        endpoint_takes: Callable[[str, str], bool] | None = None,
        *,
        trace_fields: Iterable[tuple[str, str]] = (),
    ) -> None:
        self._app = app
        self._own_fields = header_rules.own_fields
        self._answer_limit = answer_limit
        self._lingering: set[asyncio.Task[None]] = set()
        scheme: str = outer.get("scheme") or "http"
        root: str = outer.get("root_path", "")
        path: str = outer.get("path", "")
        #: Does ``path`` include ``root_path`` (uvicorn) or not (hypercorn)?
        self._root_in_path = not root or under(path, root)
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
        # The batch's trace context replaces the one the parts would inherit (tracing.py).
        traced = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in trace_fields]
        replaced = {name for name, _ in traced}
        self._headers = (
            [(b"host", host)]
            + [
                (name, value)
                for name, value in headers
                if name not in replaced and inherited(name.decode("latin-1"), listed)
            ]
            + traced
        )
        self._merged: dict[Headers, tuple[list[tuple[bytes, bytes]], bool]] = {}
        self._decoded: dict[tuple[Any, ...], Headers] = {}
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
            scheme,
            host.decode("latin-1"),
            full_path.encode("utf-8"),
            root.encode("utf-8"),
            endpoint_takes,
        )

    async def __call__(self, request: SubRequest, index: int) -> SubResponse:
        """Run ``request``, part ``index`` of the batch, through the application; its
        response once complete."""
        try:
            scope = self.scope(request, index)
        except PartRefused as refusal:
            return refusal.answer()
        loop = asyncio.get_running_loop()
        exchange = _Exchange(request.body, self._answer_limit)
        # Its own task, as a server gives each request, started in an empty context: nothing
        # context-local (or keyed on the current task) is shared with the batch or other parts.
        task, returned = _start_task(loop, exchange.run(self._app, scope))
        if not exchange.ended:  # it waits for something: wait for its answer (or its end)
            try:
                await exchange.answered(loop)
            except asyncio.CancelledError:
                task.cancel()
                raise
        if exchange.complete:
            if returned:
                pass  # nothing left to run or to report
            elif task.done():
                _report(task)
            else:  # the application works on after its response (background tasks)
                self._lingering.add(task)
                task.add_done_callback(self._forget)
            return exchange.response(self._answer_limit, self._decoded)
        if not task.done():  # it ended its response early; let it finish, then judge
            await asyncio.wait({task})
        if task.cancelled():  # by the application itself: only the batch cancels its parts
            raise RuntimeError("the part's task was cancelled before its response was complete")
        error = task.exception()
        if error is not None:
            raise error
        raise RuntimeError("the application returned without completing its response")

    async def member(self, request: SubRequest, index: int) -> SubResponse:
        """Run a member of an atomic group in the current task (the group's, where its
        transaction hook's ``begin`` ran: flask_batch.groups), to its end: what it does after
        its response (background tasks) is done inside the group's transaction too."""
        try:
            scope = self.scope(request, index)
        except PartRefused as refusal:
            return refusal.answer()
        exchange = _Exchange(request.body, self._answer_limit)
        try:
            await exchange.run(self._app, scope)
        except Exception:
            if not exchange.complete:
                raise
            logger.exception("a part's application raised after its response")
        if not exchange.complete:
            raise RuntimeError("the application returned without completing its response")
        return exchange.response(self._answer_limit, self._decoded)

    def scope(self, request: SubRequest, index: int) -> Scope:
        """The ASGI scope of ``request``, part ``index`` of the batch, as a server would have
        built it, and where the part is in its batch (and group)."""
        route = self._router.route(request.target, request.method)
        raw = route.raw_path
        if not self._root_in_path:
            path = route.local.decode("utf-8", "replace")
            raw_path = _skip_decoded(raw, self._root_length).encode("latin-1")
        elif "%" in raw or not raw.isascii():
            path, raw_path = route.path.decode("utf-8", "replace"), raw.encode("latin-1")
        else:  # nothing to decode: the path is the raw path, its bytes the route's
            path, raw_path = raw, route.path
        # Each distinct header block of the batch worked out once: a list to copy, and
        # whether it said a Content-Length.
        block = self._merged.get(request.headers) or self._merge(request.headers)
        headers = block[0].copy()
        if block[1] or request.body:
            headers.append((b"content-length", b"%d" % len(request.body)))
        scope = self._base.copy()
        scope["method"] = request.method
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = route.query.encode("latin-1")
        scope["headers"] = headers
        scope["state"] = self._state.copy()
        scope[PART_INDEX_KEY] = index
        if request.group is not None:
            scope[MEMBER_INDEX_KEY] = index - request.group.first
        return scope

    def _merge(self, own: Headers) -> tuple[list[tuple[bytes, bytes]], bool]:
        """The scope headers of a part whose own are ``own`` (without Content-Length; the
        caller copies them), and whether it said a Content-Length; kept for the parts that
        repeat the block (bounded)."""
        fields, length = self._own_fields(own, 0)  # raises PartRefused (not kept)
        headers = self._headers
        if fields:  # each replaces the batch request's of the same name
            mine = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in fields]
            replaced = {name for name, _ in mine}
            replaced.update(name.encode("latin-1") for name in voided(n for n, _ in fields))
            headers = [field for field in headers if field[0] not in replaced] + mine
        if len(self._merged) >= _MERGED_BLOCKS:
            self._merged.clear()
        merged = self._merged[own] = (headers, length is not None)
        return merged

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

    @property
    def router(self) -> Router:
        """Where the parts go: their targets resolved and confined on the batch's origin
        (what a reference resolves against: flask_batch.references)."""
        return self._router


#: The largest ``http.request`` message a part's body is sent in, when it is large.
_BODY_PIECE = 1024 * 1024


class _Exchange:
    """The ``receive`` and ``send`` of one part, and the response they collect."""

    __slots__ = (
        "_answered",
        "_body_sent",
        "_receive_wakeup",
        "_sent_body",
        "answer",
        "body",
        "complete",
        "ended",
        "headers",
        "status",
    )

    def __init__(self, body: bytes | bytearray, answer_limit: int) -> None:
        self.body = body
        #: The response is complete or the application returned.
        self.ended = False
        # Made only for a part that has to be waited for: most answer in their task's first
        # step, and a future made, resolved and awaited for each would be spent for nothing.
        self._answered: asyncio.Future[None] | None = None
        self.status: int | None = None
        self.headers: Iterable[tuple[bytes, bytes]] = ()
        #: The response body, gathered up to the part's answer limit.
        self.answer = AnswerBody(answer_limit)
        self.complete = False
        self._sent_body = False
        self._body_sent = 0  # bytes of a large body sent so far
        self._receive_wakeup: asyncio.Event | None = None

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
        if not self.ended:
            if self._receive_wakeup is None:
                self._receive_wakeup = asyncio.Event()
            await self._receive_wakeup.wait()
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

    def answered(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """A future resolved once :attr:`ended` is (at once if it is already)."""
        if self._answered is None:
            self._answered = loop.create_future()
            if self.ended:
                self._answered.set_result(None)
        return self._answered

    def _end(self) -> None:
        if self.ended:
            return
        self.ended = True
        if self._answered is not None:
            self._answered.set_result(None)
        if self._receive_wakeup is not None:
            self._receive_wakeup.set()

    def response(self, limit: int, decoded: dict[tuple[Any, ...], Headers]) -> SubResponse:
        """The part's answer; ``decoded``: the header blocks of the batch's answers already
        decoded (parts answer alike: each distinct block is decoded once, then shared)."""
        assert self.status is not None
        if self.answer.over:
            return answer_too_large("max_answer_part_size", limit)
        block = tuple(self.headers)
        try:
            headers = decoded.get(block)
            keyed = True
        except TypeError:  # a pair that is a list, a bytearray: not a key, decoded each time
            headers, keyed = None, False
        if headers is None:
            # (bytes and bytearray decode alike; a list comprehension is about twice as
            # quick as a generator here.)
            headers = tuple(
                [(name.decode("latin-1"), value.decode("latin-1")) for name, value in block]
            )
            if keyed:
                if len(decoded) >= _MERGED_BLOCKS:
                    decoded.clear()
                decoded[block] = headers
        return SubResponse(self.status, reason_phrase(self.status), headers, self.answer.value)


class _StoppedReading(OSError):
    """Raised from a part's ``send`` once its answer went past the limit: the application's
    cue to stop, as the ``OSError`` a server raises once the client has gone (ASGI 2.4)."""


if sys.version_info >= (3, 12):

    def _start_task(
        loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, None]
    ) -> tuple[asyncio.Task[None], bool]:
        """A task in an empty context, started eagerly: an application that answers without
        suspending (most do) has answered when this returns, with no trip round the loop.
        And False: whether it is over, and how, the task says itself."""
        task = asyncio.Task(coroutine, loop=loop, context=contextvars.Context(), eager_start=True)
        return task, False

else:

    def _start_task(
        loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, None]
    ) -> tuple[asyncio.Task[None], bool]:
        """A task in an empty context whose first step runs now, as Python 3.12's eager start
        runs it: in the task's own context, the task current (``asyncio.current_task()``);
        and whether the coroutine has returned (then the task has nothing left to do).

        Starting a task on Python 3.11 costs two turns of the loop (its first step, then the
        caller's wake-up); an application that answers without suspending has answered when
        this returns. The task itself still steps once, at the loop's next turn, to take
        over the rest of the coroutine (nothing, if it returned): see :class:`_Resumed`.
        """
        context = contextvars.Context()
        current = asyncio.current_task(loop)
        if current is None:  # not called from a task: nothing to step aside for
            return context.run(loop.create_task, coroutine), False
        resumed = _Resumed(coroutine)
        task = (
            # What loop.create_task does without a task factory, less its Python call.
            asyncio.Task(resumed, loop=loop, context=context)
            if loop.get_task_factory() is None
            else loop.create_task(resumed, context=context)
        )
        # The swap asyncio's own tasks make around each step (the API it keeps for task
        # implementations of others: asyncio.tasks.__all__).
        asyncio.tasks._leave_task(loop, current)
        asyncio.tasks._enter_task(loop, task)
        try:
            context.run(resumed.first_step)
        finally:
            asyncio.tasks._leave_task(loop, task)
            asyncio.tasks._enter_task(loop, current)
        return task, resumed.returned

    class _Resumed(Coroutine[Any, Any, None]):
        """What a task runs after :func:`_start_task` ran the first step of ``coroutine``:
        where that step stopped (the future it waits for, a bare yield), or its end."""

        __slots__ = ("_coroutine", "_error", "_resumed", "_waiting_for", "returned")

        def __init__(self, coroutine: Coroutine[Any, Any, None]) -> None:
            self._coroutine = coroutine
            self._waiting_for: Any = None
            self.returned = False
            self._error: BaseException | None = None
            self._resumed = False

        def first_step(self) -> None:
            try:
                self._waiting_for = self._coroutine.send(None)
            except StopIteration:
                self.returned = True
            except BaseException as error:  # the task's outcome, raised when it steps
                self._error = error

        def send(self, value: Any) -> Any:
            if not self._resumed:
                self._resumed = True
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                if self.returned:
                    raise StopIteration
                if self._waiting_for is not None:  # the task waits for it, as if just yielded
                    return self._waiting_for
                # A bare yield (asyncio.sleep(0)): the turn it asked for has passed.
            return self._coroutine.send(value)

        def throw(self, *error: Any) -> Any:
            if not self._resumed:
                if self.returned or self._error is not None:
                    return self.send(None)  # over already: as cancelling a done task, nothing
                self._resumed = True
                if asyncio.isfuture(self._waiting_for):
                    self._waiting_for.cancel()  # as the task would cancel what it waits for
            return self._coroutine.throw(*error)

        def close(self) -> None:
            self._coroutine.close()

        def __await__(self) -> Generator[Any, None, None]:  # a task never awaits it
            raise NotImplementedError


def _report(task: asyncio.Task[None]) -> None:
    """Log what a part's application raised after its response was complete."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        logger.error("a part's application raised after its response", exc_info=error)


def under(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or below it."""
    return path == root or (path.startswith(root) and path[len(root)] == "/")


def _skip_decoded(raw_path: str, count: int) -> str:
    """``raw_path`` without its first ``count`` bytes once percent-decoded (the root)."""
    position = 0
    while count > 0 and position < len(raw_path):
        position += 3 if raw_path[position] == "%" else 1
        count -= 1
    return raw_path[position:]
