"""Runs a batch: sub-requests through a dispatcher, in dependency order, answers streamed.

The engine knows neither the wire format (a writer does) nor the framework (a dispatcher
does), so every format and every framework shares one execution model: dependencies,
parallelism on a bounded pool, the error policy and the deadline. The bookkeeping
(:class:`Schedule`) has no I/O; two small drivers run it, one on threads for WSGI
(:func:`stream_answers`) and one on an event loop for ASGI (:func:`astream_answers`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from .wire.errors import problem_response
from .wire.formats import Writer
from .wire.model import SubRequest, SubResponse, option

logger = logging.getLogger("flask_batch")

Dispatch = Callable[[SubRequest], SubResponse]
AsyncDispatch = Callable[[SubRequest], Awaitable[SubResponse]]

DEADLINE_PASSED = problem_response(
    503,
    "Batch deadline passed",
    "the batch's deadline passed before this part started; it was not run",
    (("Retry-After", "1"),),
)
SKIPPED = problem_response(
    424,
    "Skipped",
    "an earlier part failed and the batch asked to stop on errors (continue-on-error=false); "
    "this part was not run",
)
UNHANDLED = problem_response(
    500, "Internal Server Error", "the sub-request failed with an unhandled exception"
)
INVALID_RESPONSE = problem_response(
    500, "Invalid response", "the application's response could not be sent"
)


@dataclass(frozen=True, slots=True)
class Execution:
    """How the parts of a batch run: a server setting, not something the client controls."""

    max_workers: int = option(
        1,
        "threads of the route's pool, shared by all its batches; 1 runs parts one after "
        "another in the server's thread, so an application that is not thread-safe keeps working",
    )
    max_workers_per_request: int | None = option(
        None, "threads one batch may use at once (None: max_workers)"
    )

    def __post_init__(self) -> None:
        for name in ("max_workers", "max_workers_per_request"):
            value = getattr(self, name)
            if not (value is None and name != "max_workers") and (
                type(value) is not int or value < 1
            ):
                raise ValueError(f"{name} must be a positive integer, not {value!r}")

    @property
    def workers_per_request(self) -> int:
        cap = self.max_workers_per_request
        return self.max_workers if cap is None else min(cap, self.max_workers)


@dataclass(frozen=True, slots=True)
class Policy:
    """How one batch runs."""

    #: A :func:`time.monotonic` instant: parts not started by then are answered 503.
    deadline: float | None = None
    #: Parts of this batch that may run at once (1: one after another, in order).
    workers: int = 1
    #: False: once a part answers >= 400, start no more parts (the rest are answered 424).
    continue_on_error: bool = True
    #: Bytes of answer bodies the whole batch may send (None: no bound); a part whose answer
    #: would go past it is answered 502 instead.
    max_answer_size: int | None = None


DEFAULT_POLICY = Policy()

# The answers of quick parts run one after another are held back and sent together, up to
# these bounds: each chunk costs the server a send call and a chunked-encoding frame (an ASGI
# message), and the writer runs in a tight loop. A part slower than QUICK_PART releases what
# is held at once, so a slow part never waits for the next one to be sent.
HOLD_PARTS = 16
HOLD_BYTES = 64 * 1024
QUICK_PART = 0.001


def stream_answers(
    requests: Sequence[SubRequest],
    dependencies: Sequence[tuple[int, ...]],
    dispatch: Dispatch,
    writer: Writer,
    *,
    policy: Policy = DEFAULT_POLICY,
    executor: Executor | None = None,
) -> Iterator[bytes]:
    """Run the batch and yield its answer, one part at a time and in request order.

    ``dependencies[i]`` are the indices (all lower than ``i``) that part ``i`` waits for.
    With an ``executor``, up to ``policy.workers`` independent parts run concurrently;
    without one, parts run one after another in the caller's thread.
    """
    schedule = Schedule(requests, dependencies, writer, policy)
    if executor is None or policy.workers <= 1:
        # One after another, in request order: every dependency is answered by then, and
        # every part before this one is written.
        for index in range(len(requests)):
            started = time.perf_counter()
            answer = schedule.settle(index) or schedule.call(index, dispatch)
            schedule.finish(index, answer)
            if schedule.release(answer, time.perf_counter() - started):
                yield from schedule.flush()
        yield from schedule.close()
        return
    workers = policy.workers
    running: dict[Future[SubResponse], int] = {}
    try:
        while not schedule.done:
            for index in schedule.startable(len(running), workers):
                running[executor.submit(schedule.run, index, dispatch)] = index
            yield from schedule.flush()
            if running and not schedule.done:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    schedule.finish(running.pop(future), future.result())
    finally:
        for future in running:  # the client went away: start nothing more
            future.cancel()
    yield from schedule.close()


async def astream_answers(
    requests: Sequence[SubRequest],
    dependencies: Sequence[tuple[int, ...]],
    dispatch: AsyncDispatch,
    writer: Writer,
    *,
    policy: Policy = DEFAULT_POLICY,
    limiter: AbstractAsyncContextManager[object] | None = None,
    stop: asyncio.Event | None = None,
) -> AsyncGenerator[bytes, None]:
    """:func:`stream_answers` on an event loop: ``dispatch`` is a coroutine function.

    With ``policy.workers`` above 1, up to that many independent parts run concurrently as
    asyncio tasks, each holding ``limiter`` (a semaphore shared by an endpoint's batches, say)
    while it runs; with 1, each part is awaited in turn. Once ``stop`` is set (the client went
    away) no part starts, the running ones finish, and the answer ends unfinished, as the
    thread driver's does when its iterator is closed. Closing the iterator
    (``contextlib.aclosing``) instead cancels the running parts.
    """
    schedule = Schedule(requests, dependencies, writer, policy)
    workers = policy.workers
    running: dict[asyncio.Task[SubResponse], int] = {}
    try:
        while not schedule.done:
            if stop is not None and stop.is_set():
                await asyncio.gather(*running, return_exceptions=True)
                running.clear()
                return
            for index in schedule.startable(len(running), workers):
                if workers == 1:
                    started = time.perf_counter()
                    answer = await schedule.arun(index, dispatch, limiter)
                    schedule.finish(index, answer)
                    if not schedule.release(answer, time.perf_counter() - started):
                        continue
                else:
                    task = asyncio.ensure_future(schedule.arun(index, dispatch, limiter))
                    running[task] = index
            # One after another, answers are held back while more parts are to start.
            holding = workers == 1 and schedule.holding and schedule.waiting
            if not holding:
                for chunk in schedule.flush():
                    yield chunk
            if running and not schedule.done:
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    schedule.finish(running.pop(task), task.result())
    finally:
        if running:  # the client went away, or the server cancelled the batch
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
    for chunk in schedule.close():
        yield chunk


class Schedule:
    """The bookkeeping of one batch, without I/O, shared by the thread and event-loop drivers.

    Which parts may start (dependencies answered, a free worker), the answers of parts that
    must not run (refused, failed dependency, skipped by the error policy, past the deadline),
    and the answer's bytes in request order, each part written as soon as it and every part
    before it are answered.
    """

    def __init__(
        self,
        requests: Sequence[SubRequest],
        dependencies: Sequence[tuple[int, ...]],
        writer: Writer,
        policy: Policy,
    ) -> None:
        self.requests = requests
        self.dependencies = dependencies
        self.writer = writer
        self.policy = policy
        self.answers: list[SubResponse | None] = [None] * len(requests)
        self.stopped = False
        # No deadline and not stopped: too_late() is None without a look at the clock.
        self._unhindered = policy.deadline is None
        self._waiting = list(range(len(requests)))
        self._written = 0
        self._held = 0  # answers held back, and the size of their bodies (release())
        self._held_bytes = 0
        self._answered_bytes = 0  # bytes of answer bodies written (max_answer_size)
        # The opening goes out with the first part: the status line waits for an answer.
        self._opening = writer.start()

    @property
    def done(self) -> bool:
        """Every part is answered and written."""
        return self._written == len(self.requests)

    def startable(self, running: int, workers: int) -> list[int]:
        """The waiting parts to start now, in request order, with ``running`` parts running
        and room for ``workers``; parts that must not run are answered on the way."""
        start: list[int] = []
        scanned = 0
        still_waiting = []
        for index in self._waiting:
            if running + len(start) >= workers:
                break
            scanned += 1
            if not all(self.answers[i] is not None for i in self.dependencies[index]):
                still_waiting.append(index)
                continue
            settled = self.settle(index)
            if settled is not None:
                self.finish(index, settled)
            else:
                start.append(index)
        self._waiting[:scanned] = still_waiting
        return start

    def settle(self, index: int) -> SubResponse | None:
        """The answer of a part that must not run, or None if it may run now."""
        request = self.requests[index]
        dependencies = self.dependencies[index]
        if request.refusal is None and not dependencies and self._unhindered:
            return None  # the common case, decided at once
        if request.refusal is not None:
            return problem_response(400, "Invalid request", request.refusal)
        for dependency in dependencies:
            answer = self.answers[dependency]
            assert answer is not None, "a part starts only after its dependencies"
            if not 200 <= answer.status < 300:
                name = self.requests[dependency].content_id
                return problem_response(
                    424,
                    "Failed dependency",
                    f"this part depends on {name!r}, which answered {answer.status}; "
                    "it was not run",
                )
        return self.too_late()

    def too_late(self) -> SubResponse | None:
        """SKIPPED after a failure under stop-on-error, DEADLINE_PASSED past the deadline."""
        if self.stopped:
            return SKIPPED
        if self.policy.deadline is not None and time.monotonic() >= self.policy.deadline:
            return DEADLINE_PASSED
        return None

    def run(self, index: int, dispatch: Dispatch) -> SubResponse:
        # Checked again as the part really starts: a shared pool may start it late.
        return self.too_late() or self.call(index, dispatch)

    def call(self, index: int, dispatch: Dispatch) -> SubResponse:
        """Dispatch part ``index`` now; an exception becomes its 500 answer."""
        try:
            return dispatch(self.requests[index])
        except Exception:
            return self.failed(index)

    async def arun(
        self,
        index: int,
        dispatch: AsyncDispatch,
        limiter: AbstractAsyncContextManager[object] | None = None,
    ) -> SubResponse:
        if limiter is not None:
            async with limiter:  # a part waiting here has not started yet
                return await self.arun(index, dispatch)
        # Checked again as the part really starts: a shared limiter may start it late.
        late = self.too_late()
        if late is not None:
            return late
        try:
            return await dispatch(self.requests[index])
        except Exception:
            return self.failed(index)

    def failed(self, index: int) -> SubResponse:
        """The answer of a part whose dispatch raised (call from the ``except`` clause)."""
        # An exception escaping the application stays inside its own part (the answer is
        # already streaming); the batch goes on.
        request = self.requests[index]
        logger.exception("part %d (%s %s) raised", index + 1, request.method, request.target)
        return UNHANDLED

    def finish(self, index: int, answer: SubResponse) -> None:
        self.answers[index] = answer
        if answer.status >= 400 and not self.policy.continue_on_error:
            self.stopped = True
            self._unhindered = False

    def release(self, answer: SubResponse, seconds: float) -> bool:
        """Whether the answers held so far go out now, ``answer`` having taken ``seconds``.

        For the one-after-another drivers: False holds them back (see HOLD_PARTS).
        """
        self._held += 1
        self._held_bytes += len(answer.body)
        if self._held < HOLD_PARTS and self._held_bytes < HOLD_BYTES and seconds < QUICK_PART:
            return False
        self._held = self._held_bytes = 0
        return True

    @property
    def waiting(self) -> bool:
        """Parts are still to start."""
        return bool(self._waiting)

    @property
    def holding(self) -> bool:
        """Answers are held back (:meth:`release`)."""
        return self._held > 0

    def flush(self, ending: bytes = b"") -> Iterator[bytes]:
        """The parts that can be written now, in request order: the small ones as one chunk,
        a large answer's body in slices of its own, read in place (never copied whole);
        ``ending`` goes out with the last chunk."""
        small: list[bytes | bytearray] = []
        while self._written < len(self.requests) and self.answers[self._written] is not None:
            head, body, tail = self.write_next()
            if len(body) < LARGE_BODY:  # copied once, with the parts around it
                small.append(head)
                small.append(body)
                small.append(tail)
            else:
                small.append(head)
                yield b"".join(small)
                small = [tail]
                yield from slices(body)
        if ending:
            small.append(ending)
        if small and (chunk := b"".join(small)):
            yield chunk

    def write_next(self) -> Pieces:
        """The next part of the answer, which must be answered (the opening goes first)."""
        head, body, tail = self.write(self._written)
        if self._opening:
            head = self._opening + head
            self._opening = b""
        self._written += 1
        return head, body, tail

    def close(self) -> Iterator[bytes]:
        """The rest of the answer once every part is answered: the parts held back, the end."""
        if not self.requests:
            yield self._opening + self.writer.close()
            return
        yield from self.flush(ending=self.writer.close())
        assert self.done

    def write(self, index: int) -> Pieces:
        """Part ``index`` written: its head, its body (not copied) and its tail.

        An answer past the batch's ``max_answer_size`` is replaced by a 502 part.
        """
        answer, request = self.answers[index], self.requests[index]
        assert answer is not None
        budget = self.policy.max_answer_size
        if budget is not None:
            self._answered_bytes += len(answer.body)
            if self._answered_bytes > budget:
                self._answered_bytes -= len(answer.body)
                answer = answer_too_large("max_answer_size", budget)
        try:
            return self.writer.part_pieces(answer, request)
        except ValueError as error:
            # A response that cannot be framed (CR/LF in a header, say) must not reach the wire.
            logger.error("part %d: cannot send the application's response: %s", index + 1, error)
            return self.writer.part_pieces(INVALID_RESPONSE, request)


#: A part written: a head, a body to send as it is (empty when the part is all in the head),
#: and a tail.
Pieces = tuple[bytes, "bytes | bytearray", bytes]
#: An answer body this large is sent in slices of its own instead of being copied into a part.
LARGE_BODY = 64 * 1024
#: The size of those slices: each is a copy (servers take bytes), made as it is sent.
SLICE = 1024 * 1024


def slices(body: bytes | bytearray) -> Iterator[bytes]:
    """``body`` in slices of at most :data:`SLICE` bytes, each made when it is asked for."""
    with memoryview(body) as view:
        for start in range(0, len(body), SLICE):
            yield view[start : start + SLICE].tobytes()


def answer_too_large(limit: str, value: int) -> SubResponse:
    """The 502 part standing for an answer over ``limit`` (which is ``value`` bytes)."""
    what = "this part's answer" if limit == "max_answer_part_size" else "the batch's answer"
    return problem_response(
        502,
        "Answer too large",
        f"the part ran, but its answer was not sent: {what} would be larger than {limit} "
        f"({value} bytes)",
    )


class AnswerBody:
    """An application's answer body as it streams in, up to ``limit`` bytes.

    The first chunk is kept as it is (most answers are one chunk: no copy); more are appended
    to one buffer, so there is never a list of chunks and their join alive at once. Past the
    limit, what was held is dropped and :attr:`over` is set.
    """

    __slots__ = ("_room", "over", "value")

    def __init__(self, limit: int) -> None:
        self._room = limit
        self.over = False
        self.value: bytes | bytearray = b""

    def add(self, chunk: bytes) -> bool:
        """Take the next chunk; False once the body is over the limit (and dropped)."""
        room = self._room - len(chunk)
        if room < 0 or self.over:
            self.over = True
            self.value = b""
            return False
        self._room = room
        value = self.value
        if not value:
            self.value = chunk
        elif chunk:
            if type(value) is bytes:
                self.value = value = bytearray(value)
            value += chunk  # a bytearray grows in place
        return True
