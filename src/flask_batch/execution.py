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
import weakref
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from .groups import Gone, arun_group, run_group
from .observe import Observer, Tally
from .schedule import (
    DEFAULT_POLICY,
    HOLD_PARTS,
    QUICK_PART,
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

__all__ = [
    "AHEAD",
    "HOLD_WAIT",
    "RUNNER_TURN",
    "WIDEN_AFTER",
    "Execution",
    "astream_answers",
    "stream_answers",
]


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
        # Each part's steps, looked up once (a part of the workload takes about 64 µs of
        # Flask's, and every step around it counts: docs/performance.md).
        settle, call, finish, release = (
            schedule.settle,
            schedule.call,
            schedule.finish,
            schedule.release,
        )
        clock = time.perf_counter
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
            started = clock()
            answer = settle(index) or call(index, dispatch)
            finish(index, answer)
            if release(answer, clock() - started):
                yield from schedule.flush()
        yield from schedule.close()
        return
    yield from _PoolRun(schedule, executor, dispatch, member, gone).answer()


#: Parts a runner runs before it goes back to the end of the pool's queue, if another
#: runner waits there, so that the batches sharing a pool take turns (a handful of parts
#: each, not a whole batch each).
RUNNER_TURN = 16
#: Parts that may start while the answer is away being sent: a client that reads slowly
#: holds the batch back, as it holds back a batch run one part after another.
AHEAD = HOLD_PARTS
#: Seconds an answer held back waits at most for more to go with it: as long as HOLD_PARTS
#: quick parts may take (QUICK_PART measured the same, and wakes the server's thread more
#: when parts are slow: docs/performance.md).
HOLD_WAIT = HOLD_PARTS * QUICK_PART
#: Seconds a batch on the pool must have waited before it widens to all its workers: its
#: parts' wall time beyond their runner's CPU time, the last few parts' weighing most, and
#: at least as long as they computed. A batch starts on one runner: parts that only compute
#: gain nothing from more runners, as the GIL lets one run at a time, and pay for their
#: turns at it, up to 1.6 times the one-runner time at 1,000 parts (docs/performance.md).
#: Parts that wait (for a database, another service) let the others run beside them.
WIDEN_AFTER = QUICK_PART / 2
#: What each part's end keeps of the batch's record of waiting and running: the last eight
#: parts or so are what count, so a batch that turns to waiting late still widens.
_KEEP = 7 / 8
#: Threads' CPU clocks, readable from another thread. Where there are none (macOS, Windows)
#: a batch on the pool uses all its workers from its start.
_CPU_CLOCKS = hasattr(time, "pthread_getcpuclockid")


def _waits(waited: float, ran: float) -> bool:
    """Whether a batch that waited ``waited`` seconds of the ``ran`` its parts ran is worth
    more runners."""
    return waited >= WIDEN_AFTER and 2 * waited >= ran


class _Queued:
    """Runners handed to each pool and not yet started, across the batches sharing it. A
    runner whose turn is over goes on while none waits: going to the end of an empty queue
    costs a pool thread's wakeup and a turn at the GIL (docs/performance.md)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: weakref.WeakKeyDictionary[Executor, int] = weakref.WeakKeyDictionary()

    def add(self, pool: Executor, change: int) -> None:
        with self._lock:
            self._counts[pool] = self._counts.get(pool, 0) + change

    def waiting(self, pool: Executor) -> bool:
        with self._lock:
            return self._counts.get(pool, 0) > 0


_queued = _Queued()


class _PoolRun:
    """One batch's parts on a pool: a few runners, each taking parts from the batch until
    none is ready, instead of a future and a wakeup of the server's thread per part (the
    handoff cost more than half a Flask call). The server's thread only writes the answer:
    woken when answers are worth sending (:meth:`Schedule.release`) or nothing runs.

    The batch starts on one runner and widens to ``policy.workers`` once its parts are seen
    to wait (:func:`_waits`): by the runner as each part ends, and by the server's thread at
    a part that has run QUICK_PART (its wait for answers times out then), and again at
    twice its age while the part computes. Parts that answer quickly are never looked at:
    their answers wake the server's thread first. Nothing polls while no part runs (the
    runner waits for a thread of a busy pool, say).

    Every change to the schedule is made under one lock, so the answer is written from a
    consistent state; a part itself runs outside it.
    """

    def __init__(
        self,
        schedule: Schedule,
        executor: Executor,
        dispatch: Dispatch,
        member: Dispatch,
        gone: Gone | None,
    ) -> None:
        self.schedule = schedule
        self.executor = executor
        self.dispatch = dispatch
        self.member = member
        self.client_gone = gone
        self.workers = schedule.policy.workers
        # Runners the batch may use now: 1, then all its workers once its parts wait.
        self.width = 1 if _CPU_CLOCKS else self.workers
        # While the width is 1: the recent parts' time waiting and running (_KEEP), and the
        # running part's start in wall time and in its runner's CPU time (on that runner's
        # clock), and when the server's thread looks at it next.
        self.waited = self.ran = 0.0
        self.since = self.since_cpu = self.look_at = 0.0
        self.cpu_clock = 0
        self.lock = threading.Condition(threading.Lock())
        self.ready: deque[int] = deque()  # started by the schedule, not yet taken by a runner
        self.running = 0  # parts (or groups) running
        self.runners = 0  # runners submitted to the pool and not yet returned
        self.closed = False  # the answer is over or abandoned: start nothing more
        self.abandoned = False  # the client went away during a group
        self.wake = False  # the server's thread has something to do
        self.untimed = False  # it waits with no timeout (nothing was held back)
        self.away = False  # the answer is being sent (the generator is suspended)
        self.started_away = 0  # parts started meanwhile (at most AHEAD)
        self.error: BaseException | None = None  # what a runner raised, re-raised here

    def answer(self) -> Iterator[bytes]:
        """The answer, in request order, as the runners answer the parts."""
        schedule, lock = self.schedule, self.lock
        try:
            with lock:
                self._fill()
            while not schedule.done:
                with lock:
                    held_until = None  # what is held back waits for more until then
                    while not (self.wake or self.error or self._idle):
                        now = time.perf_counter()
                        timeout = None
                        if schedule.holding:
                            if held_until is None:
                                held_until = now + HOLD_WAIT
                            timeout = held_until - now
                            if timeout <= 0:
                                break
                        if self.width == 1 and self.running:
                            left = self._look(now)
                            if left is None:  # the batch waits: what is held goes now
                                break
                            timeout = left if timeout is None else min(timeout, left)
                        self.untimed = timeout is None
                        lock.wait(timeout)
                    self.wake = self.untimed = False
                    if self.error is not None:
                        raise self.error
                    if self.abandoned:
                        return
                    schedule.release_all()
                yield from self._sent(schedule.flush())
        finally:
            with lock:
                self.closed = True
        yield from self._sent(schedule.close())

    def _sent(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """``chunks``, each made under the lock and sent outside it; parts may start while
        they are away (up to AHEAD)."""
        while True:
            with self.lock:
                chunk = next(chunks, None)
                if chunk is None:
                    self.away = False
                    self._fill()
                    return
                self.away = True
                self.started_away = 0
            yield chunk

    def _look(self, now: float) -> float | None:
        """Seconds from ``now`` until the running part is worth a look, or None: the batch
        waits, and now uses all its workers (under the lock, while the width is 1 and a part
        runs; a part handed to the runner and not yet taken is not looked at: the runner
        wakes the server's thread as it takes it, if that thread waits with no timeout)."""
        if now < self.look_at:
            return self.look_at - now
        age = now - self.since
        computed = time.clock_gettime(self.cpu_clock) - self.since_cpu
        if _waits(self.waited + age - computed, self.ran + age):
            self.width = self.workers
            self._fill()
            return None
        self.look_at = now + age  # it computes: look again at twice its age
        return age

    @property
    def _idle(self) -> bool:
        return self.running == 0 and not self.ready

    def _fill(self) -> None:
        """Start what may start, and enough runners for it (under the lock)."""
        if self.closed:
            return
        room = self.width
        if self.away:
            room = min(room, self.running + len(self.ready) + AHEAD - self.started_away)
        started = self.schedule.startable(self.running + len(self.ready), room)
        if started:
            self.ready.extend(started)
            if self.away:
                self.started_away += len(started)
        while self.runners < self.running + len(self.ready):
            _queued.add(self.executor, 1)
            try:
                self.executor.submit(self._runner)
            except BaseException:
                _queued.add(self.executor, -1)
                raise
            self.runners += 1

    def _runner(self) -> None:
        """Run ready parts one after another, in turns of RUNNER_TURN parts. What a part
        answered is recorded, and the next part taken, under one hold of the lock."""
        lock, pool, schedule = self.lock, self.executor, self.schedule
        _queued.add(pool, -1)
        clock = time.pthread_getcpuclockid(threading.get_ident()) if _CPU_CLOCKS else 0
        # When the last part ended (or the runner started), in wall and CPU time.
        mark = time.perf_counter()
        mark_cpu = time.clock_gettime(clock) if _CPU_CLOCKS else 0.0
        last: tuple[int, SubResponse | GroupOutcome, float] | None = None  # part, answer, end
        narrow = False
        taken = 0
        try:
            while True:
                with lock:
                    if last is not None:
                        index, result, ended = last
                        self.running -= 1
                        if narrow and self.width == 1:
                            cpu = time.clock_gettime(clock)
                            self._account(ended - mark, cpu - mark_cpu)
                            mark_cpu = cpu
                        self._record(index, result, ended - mark)
                        mark = ended
                        if taken == RUNNER_TURN:
                            if _queued.waiting(pool):  # to the end of the pool's queue
                                self.runners -= 1
                                self._fill()
                                return
                            taken = 0
                    if self.closed or not self.ready:
                        self.runners -= 1
                        return
                    index = self.ready.popleft()
                    self.running += 1
                    narrow = self.width == 1
                    if narrow:
                        self._watch(mark, mark_cpu, clock)
                taken += 1
                if index in schedule.groups:
                    result = run_group(schedule, index, self.member, self._group_gone)
                else:
                    result = schedule.run(index, self.dispatch)
                last = index, result, time.perf_counter()
        except BaseException as error:  # the pool is shutting down, say: the answer stops
            with lock:
                self.error = error
                self.closed = True
                lock.notify()

    def _watch(self, since: float, since_cpu: float, clock: int) -> None:
        """A runner takes a part while the width is 1, at ``since`` (``since_cpu`` on its
        thread's CPU ``clock``): what the server's thread looks at (:meth:`_look`), and
        wakes for if it waits with no timeout (under the lock)."""
        self.since, self.since_cpu, self.cpu_clock = since, since_cpu, clock
        self.look_at = since + QUICK_PART
        if self.untimed:
            self.untimed = False
            self.lock.notify()

    def _account(self, ran: float, computed: float) -> None:
        """A part ran ``ran`` seconds, ``computed`` of them on its runner's CPU: the batch's
        record of waiting and running, and its width (under the lock, while it is 1)."""
        self.waited = self.waited * _KEEP + ran - computed
        self.ran = self.ran * _KEEP + ran
        if _waits(self.waited, self.ran):
            self.width = self.workers

    def _record(self, index: int, result: SubResponse | GroupOutcome, seconds: float) -> None:
        """What part (or group) ``index`` answered (under the lock)."""
        schedule = self.schedule
        if isinstance(result, GroupOutcome):
            schedule.finish_group(index, result)
            if result.abandoned:
                self.abandoned = self.closed = True
            wake = True  # what the group answered goes out now (it may have taken long)
        else:
            schedule.finish(index, result)
            wake = schedule.release(result, seconds)
        self._fill()
        if wake or self._idle:
            self.wake = True
            self.lock.notify()
        elif self.untimed and schedule.holding:
            self.untimed = False
            self.lock.notify()  # the server's thread now waits HOLD_WAIT at most

    def _group_gone(self) -> bool:
        return self.closed or (self.client_gone is not None and self.client_gone())


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
    if workers <= 1:
        # One after another, in request order, as stream_answers runs them: every dependency
        # is answered by then, and every part before this one is written.
        for index in range(len(requests)):
            if gone():
                return
            if schedule.stopped and schedule.ended:
                break  # the answer ended with a part that failed (OData)
            if groups and index in groups:
                if schedule.release_all():  # a group may take long: what is held goes first
                    for chunk in schedule.flush():
                        yield chunk
                outcome = await arun_group(schedule, index, member, gone, limiter)
                schedule.finish_group(index, outcome)
                schedule.release_all()
                for chunk in schedule.flush():
                    yield chunk
                continue
            if groups and schedule.answers[index] is not None:
                continue  # a member of a group, answered with it
            started = time.perf_counter()
            # settle() has just looked at the deadline and the failures (arun() looks again
            # for a part that waited for the limiter): a part answers at once without it.
            answer = schedule.settle(index) or await (
                schedule.acall(index, dispatch)
                if limiter is None
                else schedule.arun(index, dispatch, limiter)
            )
            schedule.finish(index, answer)
            if schedule.release(answer, time.perf_counter() - started):
                for chunk in schedule.flush():
                    yield chunk
        for chunk in schedule.close():
            yield chunk
        return
    running: dict[asyncio.Task[SubResponse | GroupOutcome], int] = {}
    try:
        while not schedule.done:
            if stop is not None and stop.is_set():
                await asyncio.gather(*running, return_exceptions=True)
                running.clear()
                return
            for index in schedule.startable(len(running), workers):
                work: Awaitable[SubResponse | GroupOutcome] = (
                    arun_group(schedule, index, member, gone, limiter)
                    if index in groups
                    else schedule.arun(index, dispatch, limiter)
                )
                running[asyncio.ensure_future(work)] = index
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
