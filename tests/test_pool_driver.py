"""The thread driver of :func:`~flask_batch.execution.stream_answers` on a pool (issue 14).

Why: handing each part to the pool as a future of its own, and waking the server's thread
for each answer, cost more than half a Flask call per part; and parts that only compute,
run by four threads taking turns at the GIL, cost up to 1.6 times what they cost on one. A
batch now starts on one runner, which takes its parts one after another, and widens to its
workers once its parts are seen to wait. These tests count the pool's tasks and the parts
running at once (deterministic, unlike time) and check what must not change: answers in
request order, waiting parts run side by side, batches sharing a pool taking turns, a client
that reads slowly holding the batch back, and what a runner raises reaching the server's
thread.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from flask_batch import execution
from flask_batch.execution import AHEAD, RUNNER_TURN, stream_answers
from flask_batch.schedule import Policy
from flask_batch.wire.json_answers import JsonResponseWriter
from flask_batch.wire.model import SubRequest, SubResponse


class CountingPool(ThreadPoolExecutor):
    """A pool that counts the tasks it is given, and refuses them after ``accept`` of them."""

    def __init__(self, workers: int, accept: int | None = None) -> None:
        super().__init__(workers)
        self.tasks = 0
        self._accept = accept

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._accept is not None and self.tasks >= self._accept:
            raise RuntimeError("cannot schedule new futures after shutdown")
        self.tasks += 1
        return super().submit(fn, *args, **kwargs)


def requests(count: int) -> list[SubRequest]:
    return [SubRequest("GET", f"/{i}", (), b"", str(i)) for i in range(count)]


def echo(request: SubRequest, index: int) -> SubResponse:
    body = json.dumps({"index": index}).encode()
    return SubResponse(200, "OK", (("Content-Type", "application/json"),), body)


def answered(body: bytes) -> list[tuple[str, int]]:
    """(id, index the part was dispatched as) of each answer, in order."""
    return [(r["id"], r["body"]["index"]) for r in json.loads(body)["responses"]]


def run(count: int, pool: CountingPool, dispatch: Callable[..., SubResponse] = echo) -> bytes:
    policy = Policy(workers=4)
    answer = stream_answers(
        requests(count), [()] * count, dispatch, JsonResponseWriter(), policy=policy, executor=pool
    )
    return b"".join(answer)


def test_a_batch_hands_the_pool_a_few_runners_not_a_task_per_part() -> None:
    with CountingPool(4) as pool:
        body = run(200, pool)
    assert answered(body) == [(str(i), i) for i in range(200)]
    # Four runners, each going back to the end of the pool's queue after its turn.
    assert pool.tasks <= 4 * (200 // RUNNER_TURN + 2)
    assert pool.tasks < 200 / 4


def test_parts_still_run_concurrently() -> None:
    meeting = threading.Barrier(4, timeout=10)

    def meet(request: SubRequest, index: int) -> SubResponse:
        meeting.wait()  # only returns once four parts run at once
        return echo(request, index)

    with CountingPool(4) as pool:
        assert answered(run(8, pool, meet)) == [(str(i), i) for i in range(8)]


def test_a_client_reading_slowly_holds_the_batch_back() -> None:
    started: list[int] = []
    first_sent = threading.Event()

    def record(request: SubRequest, index: int) -> SubResponse:
        started.append(index)
        if index >= 20:  # the parts after the first chunk's wait until it was sent
            first_sent.wait(10)
        return echo(request, index)

    with CountingPool(4) as pool:
        answer = stream_answers(
            requests(500),
            [()] * 500,
            record,
            JsonResponseWriter(),
            policy=Policy(workers=4),
            executor=pool,
        )
        assert isinstance(answer, Generator)
        next(answer)  # the first chunk; the client does not read on
        first_sent.set()
        time.sleep(0.3)
        before = len(started)
        answer.close()  # the client went away: nothing more starts
        time.sleep(0.1)
    # 20 quick parts, 4 waiting ones, and AHEAD more while the first chunk was away.
    assert before <= 20 + 4 + AHEAD
    assert len(started) == before


class Interrupted(BaseException):
    """What a worker thread may raise that is not an application's error."""


def test_what_a_runner_raises_reaches_the_server_thread() -> None:
    def interrupted(request: SubRequest, index: int) -> SubResponse:
        if index == 5:
            raise Interrupted
        return echo(request, index)

    with CountingPool(4) as pool, pytest.raises(Interrupted):
        run(50, pool, interrupted)


def test_a_pool_that_refuses_runners_stops_the_answer_with_its_error() -> None:
    # The first runner is taken; the runners the batch asks for as its parts wait are refused.
    def slow(request: SubRequest, index: int) -> SubResponse:
        time.sleep(0.005)
        return echo(request, index)

    with CountingPool(4, accept=1) as pool, pytest.raises(RuntimeError, match="shutdown"):
        run(20, pool, slow)


class Overlap:
    """Counts the parts running at once, and the most seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = self.most = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


def compute(seconds: float) -> None:
    """Work the CPU for ``seconds`` of this thread's CPU time, holding the GIL."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


class Computing:
    """The ``time`` module as the driver sees it, but with every thread's CPU clock reading
    the wall clock: its parts compute all the time they run, whatever else the machine runs
    (on a loaded machine, a part held back by the scheduler looks like one that waits)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def clock_gettime(clock: int) -> float:
        return time.perf_counter()


@pytest.fixture
def computing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execution, "time", Computing())


@pytest.mark.usefixtures("computing")
def test_parts_that_only_compute_run_on_one_runner() -> None:
    # Four runners taking turns at the GIL gain nothing here, and cost: the batch stays on
    # one runner. Turns at the GIL every 0.1 ms (5 by default) would show parts of four
    # runners running at once.
    overlap = Overlap()

    def busy(request: SubRequest, index: int) -> SubResponse:
        with overlap:
            compute(0.0005)
        return echo(request, index)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)
    try:
        with CountingPool(4) as pool:
            body = run(200, pool, busy)
    finally:
        sys.setswitchinterval(previous)
    assert answered(body) == [(str(i), i) for i in range(200)]
    assert overlap.most == 1


def test_parts_that_wait_briefly_widen_the_batch() -> None:
    # Each wait is shorter than the server's thread's first look at a running part: the
    # runner sees the batch wait as its parts end.
    overlap = Overlap()

    def query(request: SubRequest, index: int) -> SubResponse:
        with overlap:
            time.sleep(0.0003)  # a quick database query, say
        return echo(request, index)

    with CountingPool(4) as pool:
        body = run(200, pool, query)
    assert answered(body) == [(str(i), i) for i in range(200)]
    assert overlap.most == 4


@pytest.mark.usefixtures("computing")
def test_a_part_that_computes_at_length_leaves_the_batch_on_one_runner() -> None:
    # The server's thread looks at the long part as it runs (at 1, 2, 4, 8 and 16 ms), and
    # sees it compute.
    overlap = Overlap()

    def heavy(request: SubRequest, index: int) -> SubResponse:
        with overlap:
            compute(0.02 if index == 0 else 0.00005)
        return echo(request, index)

    with CountingPool(4) as pool:
        run(50, pool, heavy)
    assert overlap.most == 1


def test_a_runner_gives_its_turn_to_a_batch_waiting_for_the_pool() -> None:
    long_started: list[int] = []
    going = threading.Event()

    def long_part(request: SubRequest, index: int) -> SubResponse:
        long_started.append(index)
        going.set()
        compute(0.00005)
        return echo(request, index)

    with CountingPool(1) as pool:  # one thread: the short batch waits for the long one's
        long_batch = threading.Thread(target=run, args=(2000, pool, long_part))
        long_batch.start()
        assert going.wait(10)
        body = run(40, pool)
        started_meanwhile = len(long_started)
        long_batch.join(30)
    assert answered(body) == [(str(i), i) for i in range(40)]
    # The short batch waited a few turns of RUNNER_TURN parts, not for the whole long one.
    assert started_meanwhile < 2000 - 10 * RUNNER_TURN


def test_answers_held_back_go_out_while_a_long_part_computes() -> None:
    # Quick answers wait HOLD_WAIT at most for more to go with them, also while the batch
    # is on one runner and the part after them computes for long.
    long_done = threading.Event()

    def parts(request: SubRequest, index: int) -> SubResponse:
        if index == 5:
            compute(0.3)
            long_done.set()
        return echo(request, index)

    with CountingPool(4) as pool:
        answer = stream_answers(
            requests(6),
            [()] * 6,
            parts,
            JsonResponseWriter(),
            policy=Policy(workers=4),
            executor=pool,
        )
        sent = b""
        for chunk in answer:
            sent += chunk
            if b'"4"' in sent:
                assert not long_done.is_set()  # the first five went out before it ended
                break
        else:
            raise AssertionError("no answer of the quick parts")
        assert b"".join(answer)  # the rest


def test_nothing_polls_while_the_batch_waits_for_a_thread_of_the_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The pool's one thread is busy for 200 ms: the batch's runner waits in its queue, and
    # the server's thread waits for it without waking every millisecond to look.
    waits: list[float | None] = []

    class Counted(threading.Condition):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout)
            return super().wait(timeout)

    monkeypatch.setattr(threading, "Condition", Counted)  # the batch's, made as it starts
    with CountingPool(1) as pool:
        pool.submit(time.sleep, 0.2)
        assert answered(run(3, pool)) == [(str(i), i) for i in range(3)]
    assert len(waits) < 10, waits
