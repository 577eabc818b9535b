"""The I/O loops of a run: :func:`drive` (threads) and :func:`drive_async` (asyncio), and
the connection pools front ends keep warm across sessions (:class:`SharedPools`), and what
the clients of a batch URL know of its endpoint (:data:`KNOWN_ENDPOINTS`).

A front end gives a loop the callables that move bytes (post a batch, ask for the endpoint's
description, sleep); the loop asks the run (:mod:`._core.run`, no I/O) what to do next and
hands it what came back. Each batch's exchange ends by a deadline: a blocking read cannot be
interrupted, so :func:`drive` runs an exchange in a worker thread it abandons at the deadline
(:func:`call_within`), :func:`drive_async` cancels it; an answer is read in pieces with the
deadline checked after each (:func:`read_within`), so an abandoned exchange stops soon after.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Generic, TypeVar

from ._core.limits import EndpointKnowledge, endpoint_of
from ._core.model import Arrival, Lost, OuterT, PreparedBatch, Reply
from ._core.run import Run

ResultT = TypeVar("ResultT")
PoolT = TypeVar("PoolT")

#: Idle connections a shared pool keeps to one origin (more may be open at once; those
#: beyond it are closed when their exchange ends).
KEPT_CONNECTIONS = 10


class Overdue(Exception):
    """Raised by :func:`read_within` inside a call of :func:`call_within`: the deadline has
    passed (the call is then late, as if it had not ended)."""


def read_within(
    pieces: Iterable[bytes], deadline: float | None, arrival: Arrival | None = None
) -> bytes:
    """A body read piece by piece as it arrives; :class:`Overdue` once ``deadline`` (monotonic
    seconds) has passed, so a server that trickles an answer cannot hold a reader forever.
    Each piece goes to ``arrival`` too: its answers are read while the next piece comes."""
    body = []
    for piece in pieces:
        body.append(piece)
        if arrival is not None:
            arrival.feed(piece)
        if deadline is not None and time.monotonic() > deadline:
            raise Overdue
    return b"".join(body)


def remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (at least a millisecond: 0 means "no wait" to some
    libraries), or None for no deadline."""
    if deadline is None:
        return None
    return max(deadline - time.monotonic(), 0.001)


class _Workers:
    """Daemon threads that run the calls of :func:`call_within`, kept for the next call:
    starting a thread for every batch costs more than handing the batch to one that waits.

    A thread left behind at a deadline (still reading) serves again once its call ends.
    Daemon threads, so one that a server keeps busy forever does not hold up the
    interpreter's exit; one idle for a while ends.
    """

    #: Seconds an idle thread waits for another call before it ends.
    IDLE = 30.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[Callable[[], None]]] = []
        if hasattr(os, "register_at_fork"):  # a forked child has none of these threads
            os.register_at_fork(after_in_child=self._idle.clear)

    def run(self, task: Callable[[], None]) -> None:
        """Run ``task`` in an idle thread, or in a new one."""
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            threading.Thread(
                target=self._serve, args=(inbox,), name="flask-batch-exchange", daemon=True
            ).start()
        inbox.put(task)

    def _serve(self, inbox: queue.SimpleQueue[Callable[[], None]]) -> None:
        while True:
            try:
                task = inbox.get(timeout=self.IDLE)
            except queue.Empty:
                with self._lock:
                    if inbox in self._idle:  # still idle, so nobody is handing it a task
                        self._idle.remove(inbox)
                        return
                continue  # taken just now: its task is on the way
            task()
            with self._lock:
                self._idle.append(inbox)


_workers = _Workers()


#: Every :class:`SharedPools`, for :func:`close_shared_connections`.
_EVERY_SHARED_POOLS: list[SharedPools[Any]] = []


def close_shared_connections() -> None:
    """Close the connections every client keeps open to batch endpoints across sessions; the
    next batch opens new ones (a benchmark's cold run, or a test that counts connections)."""
    for pools in list(_EVERY_SHARED_POOLS):
        pools.close_all()


class SharedPools(Generic[PoolT]):
    """Connection pools that outlive the sessions using them, one per key, so that a new
    session (the README's ``with Batching(url) as s:`` for each batch) finds its connection
    open: no new handshake per batch.

    A key names everything a connection depends on (origin, TLS settings, proxies): sessions
    whose keys differ never share one. At most ``most`` pools are kept, the least recently
    used one closed beyond that; all are closed at the interpreter's exit. Safe across
    threads; a forked child forgets the parent's pools without closing them (their sockets
    are the parent's, and one shared by two processes would mix their answers).
    """

    def __init__(
        self, open: Callable[[], PoolT], close: Callable[[PoolT], object], most: int = 16
    ) -> None:
        self._open = open
        self._close = close
        self._most = most
        self._lock = threading.Lock()
        self._pools: OrderedDict[Hashable, PoolT] = OrderedDict()
        atexit.register(self.close_all)
        _EVERY_SHARED_POOLS.append(self)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget)

    def get(self, key: Hashable) -> PoolT:
        """The pool for ``key``, opened if there is none."""
        evicted: list[PoolT] = []
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = self._open()
                while len(self._pools) > self._most:
                    evicted.append(self._pools.popitem(last=False)[1])
            else:
                self._pools.move_to_end(key)
        for old in evicted:
            self._close(old)
        return pool

    def close_all(self) -> None:
        """Close every pool (the next :meth:`get` opens a new one)."""
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            self._close(pool)

    def _forget(self) -> None:
        # The lock too: another thread of the parent may have held it at the fork.
        self._lock = threading.Lock()
        self._pools = OrderedDict()


class SharedKnowledge:
    """What the clients of each batch URL know of its endpoint (its limits, its description,
    whether it takes gzip bodies), kept across clients so that a new one starts knowing it:
    no discovery again, and its first large batch compressed.

    At most ``most`` endpoints are kept, the least recently used forgotten beyond that; what
    is older than ``max_age`` seconds (by ``clock``) is forgotten when next asked for, and
    gathered again (a server redeployed may have changed; a ``413`` or a ``415`` corrects it
    sooner). Safe across threads; a forked child keeps what its parent knew (it is data, not
    a socket), with a lock of its own.
    """

    def __init__(
        self,
        most: int = 256,
        max_age: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._most = most
        self.max_age = max_age
        self.clock = clock
        self._lock = threading.Lock()
        #: Each endpoint's knowledge, and when it was first asked for.
        self._known: OrderedDict[Hashable, tuple[float, EndpointKnowledge]] = OrderedDict()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._new_lock)

    def of(self, batch_url: str) -> EndpointKnowledge:
        """The knowledge of ``batch_url``'s endpoint: a new one if none, or too old."""
        key = endpoint_of(batch_url)
        now = self.clock()
        with self._lock:
            kept = self._known.get(key)
            if kept is None or now - kept[0] > self.max_age:
                kept = self._known[key] = (now, EndpointKnowledge())
                while len(self._known) > self._most:
                    self._known.popitem(last=False)
            self._known.move_to_end(key)
        return kept[1]

    def forget(self) -> None:
        """Forget every endpoint: the next client gathers what it needs again."""
        with self._lock:
            self._known.clear()

    def _new_lock(self) -> None:
        # Another thread of the parent may have held it at the fork.
        self._lock = threading.Lock()


#: What the clients know of each batch endpoint (docs/clients/index.md, "What a client
#: knows of its endpoint").
KNOWN_ENDPOINTS = SharedKnowledge()


def forget_endpoints() -> None:
    """Forget what every client learned of batch endpoints (limits, description, gzip): the
    next batch starts as a new process's would (a benchmark's cold run, or a test)."""
    KNOWN_ENDPOINTS.forget()


def call_within(
    timeout: float | None,
    call: Callable[[float | None], ResultT],
    late: Callable[[], ResultT],
) -> ResultT:
    """``call(deadline)``, or ``late()`` once ``timeout`` seconds have passed without it ending
    (or when it raises :class:`Overdue`).

    A blocking read cannot be interrupted, so with a timeout the call runs in a daemon thread
    that is abandoned at the deadline: what it returns after is dropped, and as it reads with
    the same deadline (:func:`read_within`, waits of at most :func:`remaining`), it ends soon
    after. Another exception it raises in time is raised here.
    """
    if timeout is None:
        return call(None)
    deadline = time.monotonic() + timeout
    outcome: list[ResultT] = []
    failure: list[BaseException] = []
    finished = threading.Event()

    def run() -> None:
        try:
            outcome.append(call(deadline))
        except BaseException as error:  # handed to the caller, if it still waits
            failure.append(error)
        finally:
            finished.set()

    _workers.run(run)
    if not finished.wait(timeout) or (failure and isinstance(failure[0], Overdue)):
        return late()
    if failure:
        raise failure[0]
    return outcome[0]


async def call_within_async(
    timeout: float | None,
    call: Callable[[float | None], Awaitable[ResultT]],
    late: Callable[[], ResultT],
) -> ResultT:
    """:func:`call_within` on an event loop: the call is cancelled at the deadline."""
    if timeout is None:
        return await call(None)
    deadline = time.monotonic() + timeout
    try:
        return await asyncio.wait_for(call(deadline), timeout)
    except (TimeoutError, Overdue):
        return late()


def drive(
    run: Run[OuterT],
    post: Callable[[PreparedBatch, float | None], Reply[OuterT] | Lost],
    *,
    discover: Callable[[float | None], object] | None = None,
    sleep: Callable[[float], object] = time.sleep,
    timed_out: Callable[[str], BaseException] = TimeoutError,
) -> None:
    """Run ``run`` to the end: ``post(batch, deadline)`` sends one batch (from this thread
    when it is the only one to go, else in a pool's threads, as many at once as the run gives
    out), ``discover(deadline)`` fetches the endpoint's description (None if it fails; in a
    pool thread beside the first batches when the run says they may go meanwhile), ``sleep``
    waits. Each is given up at its deadline (the smallest timeout of the requests
    concerned); a batch given up is lost with ``timed_out(message)``.
    """
    pool: ThreadPoolExecutor | None = None

    def submit(call: Callable[..., ResultT], *arguments: Any) -> Future[ResultT]:
        """``call(*arguments)`` in the run's pool, made when first needed."""
        nonlocal pool
        if pool is None:
            pool = ThreadPoolExecutor(run.concurrency, thread_name_prefix="flask-batch")
        return pool.submit(call, *arguments)

    def bounded(batch: PreparedBatch) -> Reply[OuterT] | Lost:
        return call_within(
            batch.timeout,
            functools.partial(post, batch),
            lambda: Lost(timed_out(batch.overdue())),
        )

    discovery: Future[object] | None = None
    in_flight: dict[Future[Reply[OuterT] | Lost], PreparedBatch] = {}
    try:
        if discover is not None and run.needs_discovery():
            if run.discover_beside():
                discovery = submit(call_within, run.timeout, discover, lambda: None)
            else:
                run.discovered(call_within(run.timeout, discover, lambda: None))
        while not run.done:
            batches = []
            while (batch := run.next_batch()) is not None:
                batches.append(batch)
            if len(batches) == 1 and not in_flight and discovery is None:
                run.feed(batches[0], bounded(batches[0]))  # alone: from this thread, no pool
                continue
            for batch in batches:
                in_flight[submit(bounded, batch)] = batch
            if in_flight or discovery is not None:  # until one comes back, or a retry is due
                waited: set[Future[Any]] = {*in_flight, *([discovery] if discovery else [])}
                done, _ = wait(waited, run.wake_in(), FIRST_COMPLETED)
                for future in done:
                    if future is discovery:
                        run.discovered(discovery.result())
                        discovery = None
                    else:
                        run.feed(in_flight.pop(future), future.result())
                continue
            sleep(run.pause())
            run.waited()
        if discovery is not None:  # the answers came first: what it says is for the next run
            run.discovered(discovery.result())
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


async def drive_async(
    run: Run[OuterT],
    post: Callable[[PreparedBatch, float | None], Awaitable[Reply[OuterT] | Lost]],
    *,
    discover: Callable[[float | None], Awaitable[object]] | None = None,
    discovering: asyncio.Lock | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    timed_out: Callable[[str], BaseException] = TimeoutError,
) -> None:
    """:func:`drive` on an event loop: the batches in flight are tasks, cancelled at their
    deadline. Runs that share their limits share the lock ``discovering``: one discovery at
    a time, and the first one counts."""

    async def discovery() -> None:
        """Ask for the description and take it, under the lock: a run that held it before
        may have asked already (then what it found is taken again)."""
        assert discover is not None
        async with discovering or contextlib.nullcontext():
            if run.limits.discoverable:
                run.discovered(await call_within_async(run.timeout, discover, lambda: None))
            else:
                run.discovered(run.limits.document)

    beside: asyncio.Task[None] | None = None
    if discover is not None and run.needs_discovery():
        if run.discover_beside():
            beside = asyncio.ensure_future(discovery())
        else:
            await discovery()

    async def bounded(batch: PreparedBatch) -> Reply[OuterT] | Lost:
        return await call_within_async(
            batch.timeout,
            functools.partial(post, batch),
            lambda: Lost(timed_out(batch.overdue())),
        )

    in_flight: dict[asyncio.Task[Reply[OuterT] | Lost], PreparedBatch] = {}
    try:
        while not run.done:
            while (batch := run.next_batch()) is not None:
                in_flight[asyncio.ensure_future(bounded(batch))] = batch
            if in_flight or beside is not None:  # until one comes back, or a retry is due
                waited: set[asyncio.Future[Any]] = {*in_flight, *([beside] if beside else [])}
                done, _ = await asyncio.wait(
                    waited, timeout=run.wake_in(), return_when=asyncio.FIRST_COMPLETED
                )
                if beside is not None and beside in done:
                    beside.result()  # it took what it found
                    beside = None
                for task in [task for task in in_flight if task in done]:
                    run.feed(in_flight.pop(task), task.result())
                continue
            await sleep(run.pause())
            run.waited()
        if beside is not None:  # the answers came first: what it says is for the next run
            await beside
    finally:
        pending: list[asyncio.Future[Any]] = [*in_flight, *([beside] if beside else [])]
        for running in pending:
            running.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
