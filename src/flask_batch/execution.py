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
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from .groups import Gone, arun_group, run_group
from .observe import Observer, Tally
from .schedule import (
    DEFAULT_POLICY,
    AsyncDispatch,
    Dispatch,
    GroupOutcome,
    Policy,
    Resolve,
    Schedule,
)
from .transactions import AsyncTransactionHook, TransactionHook
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
    # (option() makes a field whose default is None: nothing mutable is shared.)
    transaction: TransactionHook | AsyncTransactionHook | None = option(  # noqa: RUF009
        None,
        "the transaction hook that makes each atomic group all or nothing: called with the "
        "group before its first member, it returns the transaction, committed once every "
        "member succeeded and rolled back otherwise (a function for Flask and WSGI routes, a "
        "coroutine function for ASGI ones)",
    )
    non_atomic_groups: bool = option(
        False,
        "without a transaction hook, run atomic groups anyway, in order and without "
        "atomicity, each member answering its own status (False: a batch holding a group is "
        "refused with 422)",
    )

    def __post_init__(self) -> None:
        for name in ("max_workers", "max_workers_per_request"):
            value = getattr(self, name)
            if not (value is None and name != "max_workers") and (
                type(value) is not int or value < 1
            ):
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.transaction is not None and not callable(self.transaction):
            raise ValueError(f"transaction must be a callable or None, not {self.transaction!r}")
        if type(self.non_atomic_groups) is not bool:
            raise ValueError(
                f"non_atomic_groups must be True or False, not {self.non_atomic_groups!r}"
            )
        if self.transaction is not None and self.non_atomic_groups:
            raise ValueError(
                "non_atomic_groups=True runs groups without a transaction, but the route has "
                "one: give one or the other"
            )

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
    member_dispatch: Dispatch | None = None,
    gone: Gone | None = None,
    resolve: Resolve | None = None,
    tally: Tally | None = None,
    observer: Observer | None = None,
) -> Iterator[bytes]:
    """Run the batch and yield its answer, one part at a time and in request order.

    ``dependencies[i]`` are the indices (all lower than ``i``) that part ``i`` waits for.
    With an ``executor``, up to ``policy.workers`` independent parts run concurrently;
    without one, parts run one after another in the caller's thread. An atomic group runs in
    one thread, its members through ``member_dispatch`` (in the group's context; default:
    ``dispatch``); ``gone`` says whether the client went away (a group then rolls back).
    ``resolve`` resolves the references of a part as it starts (flask_batch.references);
    ``tally`` counts the parts written and those that failed; ``observer`` logs and signals
    each part and the batch (both flask_batch.observe).
    """
    schedule = Schedule(
        requests, dependencies, writer, policy, resolve, tally=tally, observer=observer
    )
    groups = schedule.groups
    member = member_dispatch or dispatch
    if executor is None or policy.workers <= 1:
        # One after another, in request order: every dependency is answered by then, and
        # every part before this one is written.
        client_gone = gone or _present
        for index in range(len(requests)):
            if schedule.stopped and schedule.ended:
                break  # the answer ended with a part that failed (OData)
            if groups and index in groups:
                if schedule.release_all():  # a group may take long: what is held goes first
                    yield from schedule.flush()
                outcome = run_group(schedule, index, member, client_gone)
                schedule.finish_group(index, outcome)
                if outcome.abandoned:
                    return
                schedule.release_all()
                yield from schedule.flush()
                continue
            if groups and schedule.answers[index] is not None:
                continue  # a member of a group, answered with it
            started = time.perf_counter()
            answer = schedule.settle(index) or schedule.call(index, dispatch)
            schedule.finish(index, answer)
            if schedule.release(answer, time.perf_counter() - started):
                yield from schedule.flush()
        yield from schedule.close()
        return
    workers = policy.workers
    left = threading.Event()  # the client went away: running groups roll back

    def group_gone() -> bool:
        return left.is_set() or (gone is not None and gone())

    running: dict[Future[SubResponse | GroupOutcome], int] = {}
    try:
        while not schedule.done:
            for index in schedule.startable(len(running), workers):
                future: Future[SubResponse | GroupOutcome]
                if index in groups:
                    future = executor.submit(run_group, schedule, index, member, group_gone)
                else:
                    future = executor.submit(schedule.run, index, dispatch)
                running[future] = index
            yield from schedule.flush()
            if running and not schedule.done:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    if _finish(schedule, running.pop(future), future.result()):
                        return
    finally:
        left.set()
        for future in running:  # the client went away: start nothing more
            future.cancel()
    yield from schedule.close()


def _finish(schedule: Schedule, index: int, result: SubResponse | GroupOutcome) -> bool:
    """Record what part (or group) ``index`` answered; whether the client went away."""
    if isinstance(result, GroupOutcome):
        schedule.finish_group(index, result)
        return result.abandoned
    schedule.finish(index, result)
    return False


def _present() -> bool:
    """The client is still there, as far as anyone can tell."""
    return False


async def astream_answers(
    requests: Sequence[SubRequest],
    dependencies: Sequence[tuple[int, ...]],
    dispatch: AsyncDispatch,
    writer: Writer,
    *,
    policy: Policy = DEFAULT_POLICY,
    limiter: AbstractAsyncContextManager[object] | None = None,
    stop: asyncio.Event | None = None,
    member_dispatch: AsyncDispatch | None = None,
    resolve: Resolve | None = None,
    tally: Tally | None = None,
    observer: Observer | None = None,
) -> AsyncGenerator[bytes, None]:
    """:func:`stream_answers` on an event loop: ``dispatch`` is a coroutine function.

    With ``policy.workers`` above 1, up to that many independent parts run concurrently as
    asyncio tasks, each holding ``limiter`` (a semaphore shared by an endpoint's batches, say)
    while it runs; with 1, each part is awaited in turn. Once ``stop`` is set (the client went
    away) no part starts, a running group rolls back, the running parts finish, and the
    answer ends unfinished, as the thread driver's does when its iterator is closed. Closing
    the iterator (``contextlib.aclosing``) instead cancels the running parts (and groups,
    which roll back). An atomic group runs as one task, its members through
    ``member_dispatch`` (default: ``dispatch``); ``resolve``, ``tally`` and ``observer`` as
    for :func:`stream_answers`.
    """
    schedule = Schedule(
        requests, dependencies, writer, policy, resolve, tally=tally, observer=observer
    )
    groups = schedule.groups
    member = member_dispatch or dispatch
    gone = _present if stop is None else stop.is_set
    workers = policy.workers
    running: dict[asyncio.Task[SubResponse | GroupOutcome], int] = {}
    try:
        while not schedule.done:
            if stop is not None and stop.is_set():
                await asyncio.gather(*running, return_exceptions=True)
                running.clear()
                return
            for index in schedule.startable(len(running), workers):
                if workers > 1:
                    work: Awaitable[SubResponse | GroupOutcome] = (
                        arun_group(schedule, index, member, gone, limiter)
                        if index in groups
                        else schedule.arun(index, dispatch, limiter)
                    )
                    running[asyncio.ensure_future(work)] = index
                elif index in groups:
                    if schedule.release_all():  # a group may take long: what is held goes first
                        for chunk in schedule.flush():
                            yield chunk
                    schedule.finish_group(
                        index, await arun_group(schedule, index, member, gone, limiter)
                    )
                    schedule.release_all()
                else:
                    started = time.perf_counter()
                    answer = await schedule.arun(index, dispatch, limiter)
                    schedule.finish(index, answer)
                    if not schedule.release(answer, time.perf_counter() - started):
                        continue
            # One after another, answers are held back while more parts are to start.
            holding = workers == 1 and schedule.holding and schedule.waiting
            if not holding:
                for chunk in schedule.flush():
                    yield chunk
            if running and not schedule.done:
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    _finish(schedule, running.pop(task), task.result())
    finally:
        if running:  # the client went away, or the server cancelled the batch
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
    for chunk in schedule.close():
        yield chunk
