"""A batch's timeout bounds its whole exchange, in all three clients (#11).

Why: requests' and httpx's timeouts bound each read, so a server (or anything in the path)
that trickles its answer a byte at a time holds a plain client forever; a client that
promises a timeout must give up at it, headers or body. The servers here are real sockets
on 127.0.0.1 (``tests/servers.trickling_server``) that send a byte every 30 ms for 3 s at
most; what a test checks is that the client gave up with a timeout and, by counting the
bytes sent before it left, that it went away long before the server would have stopped.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import requests

from flask_batch.client import Batching, BatchNotSent
from flask_batch.client._core.run import Run
from flask_batch.client._drivers import (
    Overdue,
    _Workers,
    call_within,
    call_within_async,
    read_within,
)
from flask_batch.client.httpx import AsyncBatchTransport, BatchTransport, HttpxBatchFailed
from flask_batch.wire.model import SubRequest
from tests.servers import Trickle, trickling_server

#: Bytes a trickling server sends, one every 30 ms, before it gives up: 3 s in all.
TRICKLED = 100
INTERVAL = 0.03
#: The timeout the clients get: the server sends about 10 bytes in that time.
TIMEOUT = 0.3
#: An answer whose body never ends: its head at once, then a byte at a time.
SLOW_BODY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: multipart/mixed; boundary=b\r\n"
    b"Content-Length: 100000\r\n\r\n",
    b"-" * TRICKLED,
)
#: An answer whose status line and headers never end.
SLOW_HEAD = (b"", b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * TRICKLED)
OVERDUE = "took longer than its timeout"
IN_TIME = re.escape(f"{OVERDUE} ({TIMEOUT:g} s)")


@pytest.fixture
def slow_body() -> Iterator[Trickle]:
    with trickling_server(*SLOW_BODY, INTERVAL) as server:
        yield server


@pytest.fixture
def slow_head() -> Iterator[Trickle]:
    with trickling_server(*SLOW_HEAD, INTERVAL) as server:
        yield server


def left_early(server: Trickle, connections: int = 1) -> bool:
    """Whether the client closed each connection long before the server would have given up."""
    left_after = server.ended(connections)
    assert len(left_after) == connections, left_after
    return all(sent is not None and sent < TRICKLED // 2 for sent in left_after)


# -- requests ------------------------------------------------------------------------------


def test_batching_gives_up_an_answer_body_that_never_ends(slow_body: Trickle) -> None:
    s = Batching(f"{slow_body.base}/batch", timeout=TIMEOUT, retries=0)
    queued = s.get(f"{slow_body.base}/a")
    with pytest.raises(requests.Timeout, match=OVERDUE):
        s.send_batch()
    with pytest.raises(BatchNotSent, match=OVERDUE):
        _ = queued.status_code
    assert left_early(slow_body)


def test_batching_gives_up_an_answer_head_that_never_ends(slow_head: Trickle) -> None:
    s = Batching(f"{slow_head.base}/batch", timeout=TIMEOUT, retries=0)
    s.get(f"{slow_head.base}/a")
    with pytest.raises(requests.Timeout, match=OVERDUE):
        s.send_batch()


def test_a_connect_read_pair_bounds_the_exchange_by_its_sum(slow_body: Trickle) -> None:
    s = Batching(f"{slow_body.base}/batch", timeout=(TIMEOUT / 2, TIMEOUT / 2), retries=0)
    s.get(f"{slow_body.base}/a")
    with pytest.raises(requests.Timeout, match=IN_TIME):
        s.send_batch()
    assert left_early(slow_body)


def test_a_request_timeout_bounds_the_batch_it_goes_in(slow_body: Trickle) -> None:
    """``s.get(url, timeout=...)`` is honoured: the session has no timeout of its own, and
    the smallest timeout of the requests in a batch bounds it."""
    s = Batching(f"{slow_body.base}/batch", retries=0)
    queued = [
        s.get(f"{slow_body.base}/a", timeout=60),
        s.get(f"{slow_body.base}/b", timeout=TIMEOUT),
        s.get(f"{slow_body.base}/c"),
    ]
    with pytest.raises(requests.Timeout, match=IN_TIME):
        s.send_batch()
    for r in queued:
        with pytest.raises(BatchNotSent, match=OVERDUE):
            _ = r.status_code
    assert left_early(slow_body)


def test_a_request_timeout_replaces_the_sessions(slow_body: Trickle) -> None:
    s = Batching(f"{slow_body.base}/batch", timeout=60, retries=0)
    s.get(f"{slow_body.base}/a", timeout=TIMEOUT)
    with pytest.raises(requests.Timeout, match=IN_TIME):
        s.send_batch()


def test_asking_for_the_limits_is_bounded_too(slow_body: Trickle) -> None:
    """A queue that would be split asks the endpoint its limits first (a GET): that is given
    up at the deadline as well, and the batches go (and are given up) as configured."""
    s = Batching(f"{slow_body.base}/batch", timeout=TIMEOUT, retries=0, max_parts=1, concurrency=2)
    s.get(f"{slow_body.base}/a")
    s.get(f"{slow_body.base}/b")
    with pytest.raises(requests.Timeout, match=OVERDUE):
        s.send_batch()
    assert s.limits.discoverable is False
    assert s.limits.document is None
    assert left_early(slow_body, connections=3)


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), "5", True, (1, 2, 3)])
def test_a_timeout_that_cannot_bound_a_batch_is_refused(timeout: object) -> None:
    with pytest.raises(ValueError, match="timeout must be"):
        Batching("http://127.0.0.1:1/batch", timeout=timeout)  # type: ignore[arg-type]
    with Batching("http://127.0.0.1:1/batch") as s, pytest.raises(ValueError, match="timeout"):
        s.request("GET", "http://127.0.0.1:1/a", timeout=timeout)


# -- httpx, sync ---------------------------------------------------------------------------


def test_a_batch_scope_gives_up_an_answer_body_that_never_ends(slow_body: Trickle) -> None:
    transport = BatchTransport(f"{slow_body.base}/batch", retries=0)
    with httpx.Client(transport=transport, timeout=TIMEOUT) as client:
        batch = transport.batch(client)
        batch.get(f"{slow_body.base}/a")
        with pytest.raises(HttpxBatchFailed, match=OVERDUE) as info:
            batch.send()
    assert isinstance(info.value.__cause__, httpx.TimeoutException)
    assert left_early(slow_body)


def test_a_batch_scope_gives_up_an_answer_head_that_never_ends(slow_head: Trickle) -> None:
    transport = BatchTransport(f"{slow_head.base}/batch", retries=0)
    with httpx.Client(transport=transport, timeout=TIMEOUT) as client:
        batch = transport.batch(client)
        batch.get(f"{slow_head.base}/a")
        with pytest.raises(HttpxBatchFailed, match=OVERDUE):
            batch.send()


def test_a_scope_request_timeout_bounds_its_batch(slow_body: Trickle) -> None:
    """With a client that waits forever, and with none."""
    transport = BatchTransport(f"{slow_body.base}/batch", retries=0)
    with httpx.Client(transport=transport, timeout=None) as client:
        batch = transport.batch(client)
        batch.get(f"{slow_body.base}/a")
        batch.get(f"{slow_body.base}/b", timeout=TIMEOUT)
        with pytest.raises(HttpxBatchFailed, match=OVERDUE):
            batch.send()
    batch = transport.batch()
    batch.get(f"{slow_body.base}/a", timeout=TIMEOUT)
    with pytest.raises(HttpxBatchFailed, match=IN_TIME):
        batch.send()


def test_send_all_honours_the_timeouts_of_its_requests(slow_body: Trickle) -> None:
    transport = BatchTransport(f"{slow_body.base}/batch", retries=0)
    request = httpx.Request(
        "GET", f"{slow_body.base}/a", extensions={"timeout": httpx.Timeout(TIMEOUT).as_dict()}
    )
    with pytest.raises(HttpxBatchFailed, match=OVERDUE):
        transport.send_all([request])
    assert left_early(slow_body)


# -- httpx, async --------------------------------------------------------------------------


def test_the_async_transport_gives_up_an_answer_body_that_never_ends(slow_body: Trickle) -> None:
    async def main() -> None:
        transport = AsyncBatchTransport(f"{slow_body.base}/batch", retries=0)
        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
            with pytest.raises(HttpxBatchFailed, match=OVERDUE) as info:
                await client.get(f"{slow_body.base}/a")
        assert isinstance(info.value.__cause__, httpx.TimeoutException)

    asyncio.run(main())
    assert left_early(slow_body)


def test_the_async_transport_gives_up_an_answer_head_that_never_ends(slow_head: Trickle) -> None:
    async def main() -> None:
        transport = AsyncBatchTransport(f"{slow_head.base}/batch", retries=0)
        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
            with pytest.raises(HttpxBatchFailed, match=OVERDUE):
                await client.get(f"{slow_head.base}/a")

    asyncio.run(main())
    assert left_early(slow_head)  # cancelled, so the connection closes at once


def test_the_async_transport_bounds_asking_for_the_limits_too(slow_body: Trickle) -> None:
    transport = AsyncBatchTransport(
        f"{slow_body.base}/batch", retries=0, max_parts=1, max_batch=2, concurrency=2
    )

    async def main() -> None:
        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
            answers = await asyncio.gather(
                client.get(f"{slow_body.base}/a"),
                client.get(f"{slow_body.base}/b"),
                return_exceptions=True,
            )
        for answer in answers:
            assert isinstance(answer, HttpxBatchFailed)
            assert OVERDUE in str(answer)

    asyncio.run(main())
    assert transport.limits.discoverable is False
    assert left_early(slow_body, connections=3)


# -- the pieces ----------------------------------------------------------------------------


def test_a_batch_is_bounded_by_the_smallest_timeout_of_the_requests_it_carries() -> None:
    requests_ = [SubRequest("GET", f"/{index}", (), b"") for index in range(3)]
    run: Run[None] = Run(requests_, timeouts=[None, 2.0, 0.5])
    assert run.timeout == 0.5
    send = run.next_batch()
    assert send is not None
    assert send.timeout == 0.5
    assert send.overdue() == "the batch exchange took longer than its timeout (0.5 s)"
    unbounded: Run[None] = Run(requests_)
    assert unbounded.timeout is None
    send = unbounded.next_batch()
    assert send is not None
    assert send.timeout is None
    with pytest.raises(ValueError, match="timeouts needs one entry per request"):
        Run(requests_, timeouts=[1.0])


def test_read_within_reads_everything_without_a_deadline_and_stops_past_one() -> None:
    assert read_within(iter([b"a", b"b"]), None) == b"ab"
    assert read_within(iter([b"a", b"b"]), time.monotonic() + 60) == b"ab"
    pieces = iter([b"a", b"b"])
    with pytest.raises(Overdue):
        read_within(pieces, time.monotonic() - 1)
    assert next(pieces) == b"b"  # it stopped after the first piece


def test_call_within_gives_up_a_call_that_blocks_and_passes_on_what_ends_in_time() -> None:
    release = threading.Event()
    deadlines: list[float | None] = []

    def blocking(deadline: float | None) -> str:
        deadlines.append(deadline)
        release.wait(10)
        return "too late"

    assert call_within(0.01, blocking, lambda: "given up") == "given up"
    release.set()
    assert deadlines[0] is not None
    assert call_within(None, lambda deadline: f"now, {deadline}", lambda: "no") == "now, None"
    assert call_within(10, lambda deadline: "in time", lambda: "no") == "in time"

    def failing(deadline: float | None) -> str:
        raise KeyError("raised in the thread")

    with pytest.raises(KeyError, match="raised in the thread"):
        call_within(10, failing, lambda: "no")

    def past_its_deadline(deadline: float | None) -> str:
        return read_within(iter([b"late"]), time.monotonic() - 1).decode()

    assert call_within(10, past_its_deadline, lambda: "given up") == "given up"


def test_exchange_threads_are_reused_and_end_when_idle() -> None:
    """Starting a thread per batch costs more than handing it to a waiting one."""
    workers = _Workers()
    workers.IDLE = 0.2
    ran_in: list[threading.Thread] = []

    def run_once() -> None:
        done = threading.Event()

        def task() -> None:
            ran_in.append(threading.current_thread())
            done.set()

        workers.run(task)
        assert done.wait(10)
        for _ in range(1000):  # until the thread is idle again, ready for the next call
            if workers._idle:
                break
            time.sleep(0.001)

    for _ in range(3):
        run_once()
    assert len(set(ran_in)) == 1
    assert ran_in[0].daemon
    ran_in[0].join(10)  # idle for IDLE seconds, it ends
    assert not ran_in[0].is_alive()
    assert workers._idle == []
    run_once()
    assert len(set(ran_in)) == 2


def test_call_within_async_cancels_a_call_at_its_deadline() -> None:
    cancelled: list[bool] = []

    async def blocking(deadline: float | None) -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "too late"

    async def quick(deadline: float | None) -> str:
        return "in time"

    async def past_its_deadline(deadline: float | None) -> str:
        raise Overdue

    async def main() -> None:
        assert await call_within_async(0.01, blocking, lambda: "given up") == "given up"
        assert await call_within_async(10, past_its_deadline, lambda: "given up") == "given up"
        assert await call_within_async(10, quick, lambda: "no") == "in time"
        assert await call_within_async(None, quick, lambda: "no") == "in time"

    asyncio.run(main())
    assert cancelled == [True]
