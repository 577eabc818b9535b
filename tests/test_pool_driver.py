"""The thread driver of :func:`~flask_batch.execution.stream_answers` on a pool (issue 14).

Why: handing each part to the pool as a future of its own, and waking the server's thread
for each answer, cost more than half a Flask call per part. A few runners now take parts
from the batch one after another; these tests count the pool's tasks (deterministic, unlike
time) and check what must not change: answers in request order, a client that reads slowly
holding the batch back, and what a runner raises reaching the server's thread.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

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
    # The first four runners are taken; replacing one at the end of its turn is refused.
    with CountingPool(4, accept=4) as pool, pytest.raises(RuntimeError, match="shutdown"):
        run(200, pool)
