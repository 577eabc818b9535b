"""Runs a batch: its parts through a dispatcher, in dependency order, answers streamed.

Execution knows neither the wire format (a writer does) nor the framework (a dispatcher
does), so every format and every framework shares one execution model: dependencies,
parallelism on a bounded pool, the error policy and the deadline. The bookkeeping
(:class:`~flask_batch.schedule.Schedule`) has no I/O; two small drivers run it, one on
threads for WSGI (:func:`stream_answers`) and one on an event loop for ASGI
(:func:`astream_answers`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from .schedule import DEFAULT_POLICY, AsyncDispatch, Dispatch, Policy, Schedule
from .wire.formats import Writer
from .wire.model import SubRequest, SubResponse, option

__all__ = ["Execution", "astream_answers", "stream_answers"]


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
