"""WSGI adapter: read a batch from an environ, run each part through a WSGI application.

Each part gets a fresh environ derived from the outer one (docs/design.md section 3) and runs in an
empty :class:`contextvars.Context`, so no context-local state (Flask's ``g``, request, session,
current user) flows from the outer request into a part or from one part into the next.
"""

from __future__ import annotations

import contextvars
import functools
import io
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any

from .answers import AnswerBody, answer_too_large
from .execution import stream_answers
from .intake import DESCRIBE_METHODS, Answer, Intake, describe, error_answer, plan_run
from .options import MiddlewareOptions, Settings
from .part_headers import DEFAULT_HEADER_RULES, HeaderRules, connection_options, inherited
from .targets import PART_KEY, PartRefused, Router, server_host
from .wire.errors import BatchError, MalformedBatch
from .wire.formats import Writer
from .wire.model import DEFAULT_LIMITS, Limits, SubRequest, SubResponse

if TYPE_CHECKING:
    from _typeshed import OptExcInfo, WriteableBuffer
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["BatchEndpoint", "BatchMiddleware", "Dispatcher", "call_app", "read_batch"]

_CHUNK_SIZE = 64 * 1024
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


class BatchEndpoint:
    """A batch endpoint over one WSGI application: its limits, how parts run, its thread pool.

    The pool (``execution.max_workers`` threads) is created at the first parallel batch and
    shared by every batch of the endpoint; one batch uses at most
    ``execution.max_workers_per_request`` of its threads at once.
    """

    def __init__(self, app: WSGIApplication, settings: Settings | None = None) -> None:
        self.app = app
        self.settings = settings or Settings()
        self.limits = self.settings.limits
        self.execution = self.settings.execution
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def answer(self, environ: WSGIEnvironment) -> Answer:
        """Read the batch in ``environ`` and answer it, running each part through the app.

        The whole batch is read and checked before any part runs: a malformed or oversized
        batch changes nothing. The parts then run as the answer is streamed.
        """
        started = time.monotonic()
        if environ.get("REQUEST_METHOD") in DESCRIBE_METHODS and not environ.get(PART_KEY):
            return self.describe()
        try:
            requests, writer = read_batch(
                environ, self.limits, started, self.settings.conventions.json_dialect
            )
            run = plan_run(
                requests,
                writer,
                limits=self.limits,
                execution=self.execution,
                prefer=environ.get("HTTP_PREFER"),
                started=started,
            )
        except BatchError as error:
            return error_answer(error)
        workers = run.policy.workers
        dispatcher = Dispatcher(
            self.app,
            environ,
            self.settings.header_rules,
            answer_limit=self.limits.max_answer_part_size,
            concurrent=workers > 1,
        )
        pool = self.pool() if workers > 1 else None
        body = stream_answers(
            requests, run.dependencies, dispatcher, writer, policy=run.policy, executor=pool
        )
        return Answer("200 OK", run.headers, body)

    def describe(self) -> Answer:
        """What this endpoint accepts (GET, HEAD and OPTIONS), so clients can size batches."""
        return describe(self.limits, self.execution)

    def pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.execution.max_workers, thread_name_prefix="flask-batch"
                )
            return self._pool


def read_batch(
    environ: WSGIEnvironment,
    limits: Limits,
    started: float | None = None,
    json_dialect: str = "auto",
) -> tuple[list[SubRequest], Writer]:
    """The sub-requests of the batch in ``environ`` and the writer of its answer.

    Raises :class:`BatchError` to refuse the batch; with a deadline (counted from
    ``started``), a body still arriving when it passes is refused with 408.
    """
    intake = Intake(
        limits,
        method=environ.get("REQUEST_METHOD"),
        content_type=environ.get("CONTENT_TYPE"),
        content_length=environ.get("CONTENT_LENGTH"),
        framed=bool(environ.get("wsgi.input_terminated")),
        content_encoding=environ.get("HTTP_CONTENT_ENCODING"),
        nested=bool(environ.get(PART_KEY)),
        started=started,
        json_dialect=json_dialect,
        odata_version=environ.get("HTTP_ODATA_VERSION") or environ.get("HTTP_ODATA_MAXVERSION"),
    )
    stream = environ["wsgi.input"]
    if intake.deadline is None:
        chunks = _chunks(stream, intake.length)
    else:
        chunks = _timed_chunks(stream, intake)
    for chunk in chunks:
        intake.feed(chunk)
    return intake.close(), intake.writer


def _chunks(stream: Any, length: int | None) -> Iterator[bytes]:
    """The body, read in chunks up to its declared ``length`` (None: to its end)."""
    remaining = length
    while remaining != 0:
        size = _CHUNK_SIZE if remaining is None else min(_CHUNK_SIZE, remaining)
        try:
            chunk: bytes = stream.read(size)
        except (OSError, ValueError) as error:  # bad chunked framing, a reset
            raise MalformedBatch(f"the body could not be read: {error}") from None
        if not chunk:
            return  # Intake.close() refuses a body shorter than its length
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk


def _timed_chunks(stream: Any, intake: Intake) -> Iterator[bytes]:
    """:func:`_chunks` under the batch's deadline: a read blocks until bytes arrive, so a
    thread reads, and a body that stalls past the deadline is refused (408) all the same."""
    arrived: queue.SimpleQueue[bytes | BatchError | None] = queue.SimpleQueue()

    def read() -> None:
        try:
            for chunk in _chunks(stream, intake.length):
                arrived.put(chunk)
            arrived.put(None)
        except BatchError as error:
            arrived.put(error)
        except Exception as error:  # the server closed the stream under an abandoned read
            arrived.put(MalformedBatch(f"the body could not be read: {error}"))

    threading.Thread(target=read, name="flask-batch-read", daemon=True).start()
    while True:
        try:
            item = arrived.get(timeout=intake.seconds_left())
        except queue.Empty:
            intake.check_time()
            continue
        if item is None:
            return
        if isinstance(item, BatchError):
            raise item
        yield item


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
    ) -> None:
        self._app = app
        self._own_fields = header_rules.own_fields
        self._answer_limit = answer_limit
        self._base = _base_environ(outer)
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
        )

    def __call__(self, request: SubRequest) -> SubResponse:
        try:
            environ = self.environ(request)
        except PartRefused as refusal:
            return refusal.answer()
        return contextvars.Context().run(call_app, self._app, environ, self._answer_limit)

    def environ(self, request: SubRequest) -> WSGIEnvironment:
        """The WSGI environ of ``request``, as a server would have built it."""
        route = self._router.route(request.target, request.method)
        raw_path, query = route.raw_path, route.query
        request_uri = f"{raw_path}?{query}" if query else raw_path
        environ = self._base.copy()
        environ["REQUEST_METHOD"] = request.method
        environ["PATH_INFO"] = route.local.decode("latin-1")
        environ["QUERY_STRING"] = query
        environ["REQUEST_URI"] = environ["RAW_URI"] = request_uri
        environ["wsgi.input"] = _input(request.body)
        # The part's own headers, each replacing the batch request's of the same name; in an
        # environ, a repeated one is one key, its values joined (PEP 3333).
        fields, length = self._own_fields(request.headers, len(request.body))
        seen: set[str] = set()
        for name, value in fields:
            key = _environ_key(name)
            if key in seen:
                environ[key] = f"{environ[key]}, {value}"
            else:
                seen.add(key)
                environ[key] = value
        if length is not None:
            environ["CONTENT_LENGTH"] = length
        return environ


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


@functools.lru_cache(maxsize=1024)
@functools.lru_cache(maxsize=1024)
def _environ_key(name: str) -> str:
    """The environ key of a part's header (names repeat from part to part: cached)."""
    key = name.upper().replace("-", "_")
    return key if key == "CONTENT_TYPE" else "HTTP_" + key


class _AnswerTooLarge(Exception):
    """Raised from ``write()`` (PEP 3333's legacy writer) past the part's answer limit."""


def call_app(
    app: WSGIApplication, environ: WSGIEnvironment, limit: int = DEFAULT_LIMITS.max_answer_part_size
) -> SubResponse:
    """Run ``app`` on ``environ`` and collect its whole response, up to ``limit`` bytes of
    body: a larger one is not read further, and stands as a 502."""
    started: list[Any] = []
    body = AnswerBody(limit)

    def write(chunk: bytes) -> None:
        if not body.add(chunk):
            raise _AnswerTooLarge

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        if exc_info is not None and exc_info[1] is not None and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = (status, headers)
        return write

    try:
        iterable = app(environ, start_response)
    except _AnswerTooLarge:
        return answer_too_large("max_answer_part_size", limit)
    try:
        for chunk in iterable:
            if not isinstance(chunk, bytes):
                raise TypeError(f"the application yielded {type(chunk).__name__}, not bytes")
            if not body.add(chunk):
                break  # not read further: closing the iterable stops a streaming answer
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    if not started:
        raise RuntimeError("the application did not call start_response")
    status, headers = started
    if body.over:
        return answer_too_large("max_answer_part_size", limit)
    code, _, reason = status.partition(" ")
    return SubResponse(int(code), reason, tuple(headers), body.value)


class BatchMiddleware(MiddlewareOptions["WSGIApplication"]):
    """Serve batches at ``path`` in front of any WSGI application (Django, Falcon, Pyramid...).

    A request to ``path`` is a batch whose parts run through ``app``; every other request
    passes through untouched. The options are those of the Flask extension (README,
    Configuration), as keyword arguments; an invalid value raises ValueError.
    """

    @functools.cached_property
    def endpoint(self) -> BatchEndpoint:
        return BatchEndpoint(self.app, self.settings)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != self.path:
            return self.app(environ, start_response)
        answer = self.endpoint.answer(environ)
        start_response(answer.status, answer.headers)
        return answer.body
