"""WSGI adapter: read a batch from an environ, run each part through a WSGI application.

Each part gets a fresh environ derived from the outer one, in a context of its own
(:mod:`flask_batch.wsgi_parts`, docs/design.md section 3).
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .answers import ClosingBody, gzipped
from .conventions import Conventions, Versions
from .execution import stream_answers
from .groups import check_hook
from .intake import DESCRIBE_METHODS, Answer, Intake, describe, error_answer, plan_run
from .observe import Tally
from .options import MiddlewareOptions, Settings
from .targets import PART_KEY
from .tracing import batch_trace
from .wire.errors import BatchError, MalformedBatch, reason_phrase
from .wire.model import Limits, SubRequest
from .wsgi_parts import Dispatcher, client_gone, request_headers

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["BatchEndpoint", "BatchMiddleware", "read_batch", "start_with_first_chunk"]

_CHUNK_SIZE = 64 * 1024


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
        check_hook(self.execution.transaction, asynchronous=False)
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
            requests, intake = read_batch(environ, self.limits, started, self.settings.conventions)
            writer = intake.writer
            run = plan_run(
                requests,
                intake,
                limits=self.limits,
                execution=self.execution,
                prefer=environ.get("HTTP_PREFER"),
                started=started,
                request_id=environ.get("HTTP_X_REQUEST_ID"),
            )
        except BatchError as error:
            return error_answer(error)
        workers = run.policy.workers
        trace = batch_trace(
            lambda: request_headers(environ),
            environ.get("REQUEST_METHOD", "POST"),
            environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
            started,
        )
        dispatcher = Dispatcher(
            self.app,
            environ,
            self.settings.header_rules,
            answer_limit=self.limits.max_answer_part_size,
            concurrent=workers > 1,
            endpoint_takes=self.settings.routing.takes,
            trace_fields=trace.fields,
            in_order=() if workers > 1 else requests,
        )
        pool = self.pool() if workers > 1 else None
        body = stream_answers(
            requests,
            run.dependencies,
            dispatcher,
            writer,
            policy=run.policy,
            executor=pool,
            member_dispatch=dispatcher.member,
            gone=client_gone(environ),
            resolve=run.resolver(dispatcher.router),
            tally=run.tally,
            observer=run.observer,
        )
        status = f"{intake.status} {reason_phrase(intake.status)}"
        body = trace.ending(body, intake.status)
        if intake.gzip:
            body = gzipped(body)
        return Answer(status, run.headers, body, run.tally)

    def describe(self) -> Answer:
        """What this endpoint accepts (GET, HEAD and OPTIONS), so clients can size batches."""
        return describe(self.limits, self.execution, self.settings.conventions)

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
    conventions: Conventions = Conventions(),  # noqa: B008 (frozen: nothing is shared)
) -> tuple[list[SubRequest], Intake]:
    """The sub-requests of the batch in ``environ``, and the intake that read them (the
    writer of its answer, its status).

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
        accept_encoding=environ.get("HTTP_ACCEPT_ENCODING"),
        nested=bool(environ.get(PART_KEY)),
        started=started,
        conventions=conventions,
        versions=_versions_of(environ),
    )
    stream = environ["wsgi.input"]
    if intake.deadline is None:
        chunks = _chunks(stream, intake.length)
    else:
        chunks = _timed_chunks(stream, intake)
    for chunk in chunks:
        intake.feed(chunk)
    return intake.close(), intake


def _versions_of(environ: WSGIEnvironment) -> Versions:
    """The version headers of the batch request in ``environ`` (OData's, Azure Storage's)."""
    return Versions.read(lambda name: environ.get("HTTP_" + name.upper().replace("-", "_")))


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


class BatchMiddleware(MiddlewareOptions["WSGIApplication"]):
    """Serve batches at ``path`` in front of any WSGI application (Django, Falcon, Pyramid...).

    A request to ``path`` is a batch whose parts run through ``app`` (on a ``shared_path``,
    only a POST, carrying ``batch_query`` if set); every other request passes through
    untouched. The options are those of the Flask extension (docs/configuration.md), as
    keyword arguments; an invalid value raises ValueError.
    """

    @functools.cached_property
    def endpoint(self) -> BatchEndpoint:
        return BatchEndpoint(self.app, self.settings)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != self.path or not self.settings.routing.takes(
            environ.get("REQUEST_METHOD", ""), environ.get("QUERY_STRING", "")
        ):
            return self.app(environ, start_response)
        return start_with_first_chunk(self.endpoint.answer(environ), start_response)


def start_with_first_chunk(answer: Answer, start_response: StartResponse) -> Iterable[bytes]:
    """``answer``'s body, its head given to ``start_response``: a streamed answer's with its
    first chunk (PEP 3333 lets the first iteration call it), so that the head can say how the
    batch went if every part has answered by then (:meth:`flask_batch.observe.Tally.headers`).
    """
    if answer.tally is None:
        start_response(answer.status, answer.headers)
        return answer.body
    return _started_late(answer, answer.tally, start_response)


def _started_late(answer: Answer, tally: Tally, start_response: StartResponse) -> ClosingBody:
    return ClosingBody(_head_with_first(answer, tally, start_response), answer.body)


def _head_with_first(
    answer: Answer, tally: Tally, start_response: StartResponse
) -> Iterator[bytes]:
    chunks = iter(answer.body)
    first = next(chunks, b"")
    start_response(answer.status, answer.headers + tally.headers())
    yield first
    yield from chunks
