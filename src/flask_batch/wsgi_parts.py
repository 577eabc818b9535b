"""WSGI sub-requests: each part of a batch run through a WSGI application in-process, with
the environ a server would have built for it (docs/design.md section 3).

:class:`Dispatcher` derives each part's environ from the batch request's and runs the part in
an empty :class:`contextvars.Context` (a member of an atomic group: in a copy of its group's),
so no context-local state (Flask's ``g``, request, session, current user) flows from the
batch request into a part or from one part into the next; :func:`call_app` gathers the answer
under the part's limit; :func:`client_gone` tells a client that left, where the server shows
the connection.
"""

from __future__ import annotations

import contextvars
import functools
import io
import select
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import IO, TYPE_CHECKING

from .answers import AnswerBody, answer_too_large
from .part_headers import (
    DEFAULT_HEADER_RULES,
    HeaderRules,
    connection_options,
    inherited,
    voided,
)
from .targets import MEMBER_INDEX_KEY, PART_INDEX_KEY, PART_KEY, PartRefused, Router, server_host
from .wire.model import DEFAULT_LIMITS, Headers, SubRequest, SubResponse, filled_tuple

if TYPE_CHECKING:
    from _typeshed import OptExcInfo, WriteableBuffer
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

__all__ = ["Dispatcher", "call_app", "client_gone", "request_headers"]

#: Outer keys every part shares; everything else (server objects, the outer request) stays out.
_SHARED_KEYS = (
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "SCRIPT_NAME",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "REMOTE_USER",
    "HTTPS",
    "wsgi.version",
    "wsgi.url_scheme",
    "wsgi.errors",
    "wsgi.multithread",
    "wsgi.multiprocess",
    "wsgi.run_once",
)

#: Parts whose environs are built together, ahead of their calls, when the parts of a batch
#: run one after another (:meth:`Dispatcher.__call__`).
_PREPARED_PARTS = 16
#: Distinct header blocks a batch's dispatcher remembers (a block past them is worked out for
#: each part that sends it).
_KNOWN_HEADER_BLOCKS = 64


class Dispatcher:
    """Runs sub-requests of one batch through a WSGI application."""

    def __init__(
        self,
        app: WSGIApplication,
        outer: WSGIEnvironment,
        header_rules: HeaderRules = DEFAULT_HEADER_RULES,
        *,
        answer_limit: int = DEFAULT_LIMITS.max_answer_part_size,
        concurrent: bool = False,
        endpoint_takes: Callable[[str, str], bool] | None = None,
        trace_fields: Iterable[tuple[str, str]] = (),
        in_order: Sequence[SubRequest] = (),
    ) -> None:
        self._app = app
        self._own_fields = header_rules.own_fields
        self._answer_limit = answer_limit
        self._base = _base_environ(outer)
        # The batch's trace context replaces the one the parts would inherit (tracing.py).
        self._base.update((_environ_key(name), value) for name, value in trace_fields)
        if concurrent:
            self._base["wsgi.multithread"] = True  # parts of this batch run in threads
        script_name: str = self._base.get("SCRIPT_NAME", "")
        # Relative targets resolve against the batch URL (REQUEST_URI may lack SCRIPT_NAME).
        batch_path = script_name + outer.get("PATH_INFO", "")
        self._router = Router(
            outer.get("wsgi.url_scheme", "http"),
            self._base["HTTP_HOST"],
            batch_path.encode("latin-1"),
            script_name.encode("latin-1"),
            endpoint_takes,
        )
        # What the parts sending each header block seen in this batch start from (_headed).
        self._known_headers: dict[Headers, tuple[WSGIEnvironment, bool]] = {}
        # The batch's requests, when its parts are called one after another in request order
        # (empty: in any order, from any thread), and the environs (or refusals) built ahead.
        self._in_order = in_order
        self._prepared: dict[int, WSGIEnvironment | SubResponse] = {}

    def __call__(self, request: SubRequest, index: int) -> SubResponse:
        if self._in_order:
            prepared = self._prepared
            if index not in prepared:
                prepared.clear()  # parts before this one that did not run (settled, groups)
                self._prepare(index)
            environ = prepared.pop(index, None)
            # Unless references were resolved into a request of its own (flask_batch.references).
            if environ is not None and request is self._in_order[index]:
                if isinstance(environ, SubResponse):
                    return environ  # a refusal's answer
                return contextvars.Context().run(call_app, self._app, environ, self._answer_limit)
        return self.run_in(contextvars.Context(), request, index)

    def _prepare(self, first: int) -> None:
        """Build the environs of _PREPARED_PARTS parts from ``first`` at once, ahead of their
        calls: run together, between two application calls, their steps cost less than each
        built alone (docs/performance.md, "Issue 14, third round"). Building an environ has no
        effect beyond it; one that raises ends the run, and raises again at its own call."""
        requests, prepared = self._in_order, self._prepared
        for index in range(first, min(first + _PREPARED_PARTS, len(requests))):
            try:
                prepared[index] = self.environ(requests[index], index)
            except PartRefused as refusal:
                prepared[index] = refusal.answer()
            except Exception:  # raised again as the part runs (Schedule.call answers it 500)
                return

    def member(self, request: SubRequest, index: int) -> SubResponse:
        """Run a member of an atomic group in a copy of the current context: the group's,
        where its transaction hook's ``begin`` ran (flask_batch.groups)."""
        return self.run_in(contextvars.copy_context(), request, index)

    def run_in(self, context: contextvars.Context, request: SubRequest, index: int) -> SubResponse:
        """Run ``request``, part ``index`` of the batch, through the application inside
        ``context``."""
        try:
            environ = self.environ(request, index)
        except PartRefused as refusal:
            return refusal.answer()
        return context.run(call_app, self._app, environ, self._answer_limit)

    def environ(self, request: SubRequest, index: int) -> WSGIEnvironment:
        """The WSGI environ of ``request``, part ``index`` of the batch, as a server would
        have built it, and where the part is in its batch (and group)."""
        route = self._router.route(request.target, request.method)
        raw_path, query = route.raw_path, route.query
        # The batch's shared items with the part's own headers (_headed).
        headed, says_length = self._headed(request.headers)
        environ = headed.copy()
        environ["REQUEST_METHOD"] = request.method
        environ["PATH_INFO"] = route.local.decode("latin-1")
        environ["QUERY_STRING"] = query
        environ["REQUEST_URI"] = environ["RAW_URI"] = f"{raw_path}?{query}" if query else raw_path
        body = request.body
        environ["wsgi.input"] = io.BytesIO(body) if type(body) is bytes else _input(body)
        environ[PART_INDEX_KEY] = index
        if request.group is not None:
            environ[MEMBER_INDEX_KEY] = index - request.group.first
        if says_length or body:
            environ["CONTENT_LENGTH"] = str(len(body))
        return environ

    def _headed(self, headers: Headers) -> tuple[WSGIEnvironment, bool]:
        """What every part sending ``headers`` starts from: the batch's shared items, the
        part's own headers each replacing the batch request's of the same name, less the
        batch request's headers they void (part_headers.voided); and whether they say a
        Content-Length.

        In an environ a repeated header is one key, its values joined (PEP 3333). The parts
        of a batch repeat their header blocks (the parser gives each distinct block once):
        each is worked out once per batch, and only in this batch, so that no batch learns
        from timing what another sent. Raises :class:`PartRefused` for a pinned header.
        """
        known = self._known_headers.get(headers)
        if known is not None:
            return known
        fields, length = self._own_fields(headers, 0)  # a length only if the part says one
        items: dict[str, str] = {}
        for name, value in fields:
            key = _environ_key(name)
            items[key] = f"{items[key]}, {value}" if key in items else value
        headed = self._base.copy()
        headed.update(items)
        for name in voided(name for name, _ in fields):
            headed.pop(_environ_key(name), None)
        known = (headed, length is not None)
        if len(self._known_headers) < _KNOWN_HEADER_BLOCKS:
            self._known_headers[headers] = known
        return known

    @property
    def router(self) -> Router:
        """Where the parts go: their targets resolved and confined on the batch's origin
        (what a reference resolves against: flask_batch.references)."""
        return self._router


def client_gone(environ: WSGIEnvironment) -> Callable[[], bool] | None:
    """How to tell that the client closed its connection while the batch runs, where the
    server shows the connection (Werkzeug's ``werkzeug.socket``, gunicorn's
    ``gunicorn.socket``): its end of stream is readable. A WSGI application hears of a client
    that left only when an answer's write fails, too late for a group that is about to
    commit. None where the connection cannot be seen."""
    connection = environ.get("werkzeug.socket") or environ.get("gunicorn.socket")
    if not isinstance(connection, socket.socket):
        return None

    def gone() -> bool:
        try:
            readable, _, _ = select.select([connection], [], [], 0)
        except (OSError, ValueError):  # closed under us
            return True
        if not readable:
            return False
        try:  # the body was read whole: what is readable is the end, or a next request
            return connection.recv(1, socket.MSG_PEEK) == b""
        except (BlockingIOError, InterruptedError, ValueError):  # TLS: no peeking
            return False
        except OSError:  # reset
            return True

    return gone


def _input(body: bytes | bytearray) -> IO[bytes]:
    """A part's ``wsgi.input``; never a copy of its body (BytesIO shares bytes, not a
    bytearray, which a large part's body is)."""
    if isinstance(body, bytes):
        return io.BytesIO(body)
    return io.BufferedReader(_BufferReader(body))


class _BufferReader(io.RawIOBase):
    """Reads a buffer in place."""

    def __init__(self, buffer: bytearray) -> None:
        super().__init__()
        self._view = memoryview(buffer)
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: WriteableBuffer) -> int:
        with memoryview(target) as into:
            start = self._position
            size = min(len(into), len(self._view) - start)
            into[:size] = self._view[start : start + size]
        self._position = start + size
        return size

    def close(self) -> None:
        self._view.release()
        super().close()


def _base_environ(outer: WSGIEnvironment) -> WSGIEnvironment:
    """What every part of the batch shares: server facts and the inherited headers."""
    base = {key: outer[key] for key in _SHARED_KEYS if key in outer}
    # Environ keys cannot tell "-" from "_": neither can the names Connection lists.
    listed = connection_options(outer.get("HTTP_CONNECTION", "").replace("_", "-"))
    for key, value in outer.items():
        if key.startswith("HTTP_") and inherited(key[5:].replace("_", "-").lower(), listed):
            base[key] = value
    scheme = outer.get("wsgi.url_scheme", "http")
    base["HTTP_HOST"] = outer.get("HTTP_HOST") or server_host(
        outer.get("SERVER_NAME", "localhost"), outer.get("SERVER_PORT"), scheme
    )
    base["wsgi.input_terminated"] = True
    base[PART_KEY] = True
    return base


def request_headers(environ: WSGIEnvironment) -> dict[str, str]:
    """The request's header fields in ``environ``, by lower-case name."""
    fields = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if "CONTENT_TYPE" in environ:
        fields["content-type"] = environ["CONTENT_TYPE"]
    return fields


@functools.lru_cache(maxsize=1024)
def _environ_key(name: str) -> str:
    """The environ key of a part's header (names repeat from part to part)."""
    key = name.upper().replace("-", "_")
    return key if key == "CONTENT_TYPE" else "HTTP_" + key


class _AnswerTooLarge(Exception):
    """Raised from ``write()`` (PEP 3333's legacy writer) past the part's answer limit."""


class _Answer:
    """One part's answer as the application gives it: its ``start_response``, its
    ``write()`` (PEP 3333's legacy writer) and the body so far, up to ``limit`` bytes.

    Most answers are one chunk: it is kept as it is, and an :class:`AnswerBody` is made only
    for a second chunk or a ``write()``. One object with its state in slots costs a part
    less than three closures and their cells (docs/performance.md, "Issue 14, seventh
    round").
    """

    __slots__ = ("body", "first", "headers", "limit", "status")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.first = b""  # the body so far, while it is one chunk within the limit
        self.body: AnswerBody | None = None

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        if exc_info is not None and exc_info[1] is not None and self.status is not None:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status = status
        self.headers = headers
        return self.write

    def add(self, chunk: bytes) -> bool:
        """Take the next chunk of the body; False once it is over the limit."""
        body = self.body
        if body is None:
            if not self.first and len(chunk) <= self.limit:
                self.first = chunk
                return True
            body = self.body = AnswerBody(self.limit)
            body.add(self.first)  # within the limit
            self.first = b""
        return body.add(chunk)

    def write(self, chunk: bytes) -> None:
        if not self.add(chunk):
            raise _AnswerTooLarge


def call_app(
    app: WSGIApplication, environ: WSGIEnvironment, limit: int = DEFAULT_LIMITS.max_answer_part_size
) -> SubResponse:
    """Run ``app`` on ``environ`` and collect its whole response, up to ``limit`` bytes of
    body: a larger one is not read further, and stands as a 502."""
    answer = _Answer(limit)
    try:
        iterable = app(environ, answer.start_response)
    except _AnswerTooLarge:
        return answer_too_large("max_answer_part_size", limit)
    try:
        for chunk in iterable:
            if not isinstance(chunk, bytes):
                raise TypeError(f"the application yielded {type(chunk).__name__}, not bytes")
            if not answer.add(chunk):
                break  # not read further: closing the iterable stops a streaming answer
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    status = answer.status
    if status is None:
        raise RuntimeError("the application did not call start_response")
    body = answer.body
    value: bytes | bytearray = answer.first
    if body is not None:
        if body.over:
            return answer_too_large("max_answer_part_size", limit)
        value = body.value
    known = _STATUSES.get(status)
    if known is None:
        code, _, reason = status.partition(" ")
        known = (int(code), reason)
        if len(_STATUSES) < _KNOWN_STATUSES:
            _STATUSES[status] = known
    return filled_tuple(SubResponse, (*known, tuple(answer.headers), value))


#: Status lines the applications gave, read (a few recur in every batch); bounded.
_STATUSES: dict[str, tuple[int, str]] = {}
_KNOWN_STATUSES = 256
