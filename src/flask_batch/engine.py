"""Runs a batch: sub-requests through a dispatcher, in dependency order, answers streamed.

The engine knows neither the wire format (a writer does) nor the framework (a dispatcher
does), so every format and every framework shares one execution model: dependencies,
parallelism on a bounded pool, the error policy and the deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass

from .wire.errors import problem_response
from .wire.formats import Writer
from .wire.model import SubRequest, SubResponse

logger = logging.getLogger("flask_batch")

Dispatch = Callable[[SubRequest], SubResponse]

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

    #: Threads of the endpoint's pool. 1: parts run one after another, in the server's thread,
    #: so an application that is not thread-safe keeps working.
    max_workers: int = 1
    #: Threads one batch may use at once (None: ``max_workers``).
    max_workers_per_request: int | None = None

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

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return ("max_workers", "max_workers_per_request")


@dataclass(frozen=True, slots=True)
class Policy:
    """How one batch runs."""

    #: A :func:`time.monotonic` instant: parts not started by then are answered 503.
    deadline: float | None = None
    #: Parts of this batch that may run at once (1: one after another, in order).
    workers: int = 1
    #: False: once a part answers >= 400, start no more parts (the rest are answered 424).
    continue_on_error: bool = True


DEFAULT_POLICY = Policy()


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
    With an ``executor``, up to ``policy.workers`` independent parts run concurrently.
    """
    run = _Run(requests, dependencies, dispatch, writer, policy)
    parts = run.concurrently(executor, policy.workers) if executor else run.in_order()
    # The opening goes out with the first part: the status line waits until there is an answer.
    opening = writer.start()
    for part in parts:
        yield opening + part
        opening = b""
    yield opening + writer.close()


class _Run:
    def __init__(
        self,
        requests: Sequence[SubRequest],
        dependencies: Sequence[tuple[int, ...]],
        dispatch: Dispatch,
        writer: Writer,
        policy: Policy,
    ) -> None:
        self.requests = requests
        self.dependencies = dependencies
        self.dispatch = dispatch
        self.writer = writer
        self.policy = policy
        self.answers: list[SubResponse | None] = [None] * len(requests)
        self.stopped = False

    def in_order(self) -> Iterator[bytes]:
        for index in range(len(self.requests)):
            self.finish(index, self.settle(index) or self.run(index))
            yield self.write(index)

    def concurrently(self, executor: Executor, workers: int) -> Iterator[bytes]:
        waiting = list(range(len(self.requests)))
        running: dict[Future[SubResponse], int] = {}
        written = 0
        try:
            while written < len(self.requests):
                waiting = self.start_ready(waiting, running, executor, workers)
                while written < len(self.requests) and self.answers[written] is not None:
                    yield self.write(written)
                    written += 1
                if running and written < len(self.requests):
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        self.finish(running.pop(future), future.result())
        finally:
            for future in running:  # the client went away: start nothing more
                future.cancel()

    def start_ready(
        self,
        waiting: list[int],
        running: dict[Future[SubResponse], int],
        executor: Executor,
        workers: int,
    ) -> list[int]:
        """Start (in request order) the waiting parts whose dependencies are answered."""
        still_waiting = []
        for index in waiting:
            ready = all(self.answers[i] is not None for i in self.dependencies[index])
            if not ready or len(running) >= workers:
                still_waiting.append(index)
                continue
            settled = self.settle(index)
            if settled is not None:
                self.finish(index, settled)
            else:
                running[executor.submit(self.run, index)] = index
        return still_waiting

    def settle(self, index: int) -> SubResponse | None:
        """The answer of a part that must not run, or None if it may run now."""
        request = self.requests[index]
        if request.refusal is not None:
            return problem_response(400, "Invalid request", request.refusal)
        for dependency in self.dependencies[index]:
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
        if self.stopped:
            return SKIPPED
        if self.policy.deadline is not None and time.monotonic() >= self.policy.deadline:
            return DEADLINE_PASSED
        return None

    def run(self, index: int) -> SubResponse:
        request = self.requests[index]
        try:
            return self.dispatch(request)
        except Exception:
            # An exception escaping the application stays inside its own part (the answer
            # is already streaming); the batch goes on.
            logger.exception("part %d (%s %s) raised", index + 1, request.method, request.target)
            return UNHANDLED

    def finish(self, index: int, answer: SubResponse) -> None:
        self.answers[index] = answer
        if answer.status >= 400 and not self.policy.continue_on_error:
            self.stopped = True

    def write(self, index: int) -> bytes:
        answer, request = self.answers[index], self.requests[index]
        assert answer is not None
        try:
            return self.writer.part(answer, request)
        except ValueError as error:
            # A response that cannot be framed (CR/LF in a header, say) must not reach the wire.
            logger.error("part %d: cannot send the application's response: %s", index + 1, error)
            return self.writer.part(INVALID_RESPONSE, request)
