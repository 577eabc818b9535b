"""A batch answer read as it arrives (docs/performance.md, "Answers read as they arrive").

The client core reads each answer of a multipart batch answer as its bytes come in
(:meth:`Run.arrival`). The ``requests`` front end works out, meanwhile, how it will fill each
response; the async httpx transport hands a caller its answer as soon as that answer is final
on its own (:meth:`Run.settle_early`). What the run decides must not change for it: read in
pieces and settled early, a batch gets what it gets read whole, but for a request settled
before the rest of its batch's answer went wrong (which keeps the answer it got).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest
import requests
from flask import Flask, jsonify
from hypothesis import given
from hypothesis import strategies as st

from flask_batch import add_batch_route
from flask_batch.client import Batching
from flask_batch.client._core.limits import KnownLimits
from flask_batch.client._core.model import Answered, Arrival, Failed, Lost, Reply, Result
from flask_batch.client._core.policy import Retry
from flask_batch.client._core.run import Run
from flask_batch.client.httpx import AsyncBatchTransport
from flask_batch.wire.model import Group, SubRequest, SubResponse
from flask_batch.wire.multipart_answers import ResponseWriter
from tests.servers import live_server, trickling_server

from .properties import PROPERTY

OUTER = "the batch response"
JSON = (("Content-Type", "application/json"),)


def _requests(count: int, group: tuple[int, int] | None = None) -> list[SubRequest]:
    """``count`` requests, ids ``<r0>``...; ``group``: (first, size) of an atomic group."""
    made = Group("g", group[1], group[0]) if group is not None else None
    return [
        SubRequest(
            "PUT" if made is not None else "GET",
            f"/items/{index}",
            (),
            b"",
            f"<r{index}>",
            group=made if group is not None and group[0] <= index < sum(group) else None,
        )
        for index in range(count)
    ]


def _run(requests_: list[SubRequest]) -> Run[str]:
    return Run(requests_, retry=Retry(retries=0), limits=KnownLimits(discover=False))


def _answer(pairs: list[tuple[SubRequest, int]]) -> tuple[str, bytes]:
    """A batch answer as the server writes it: each request answered with its status."""
    writer = ResponseWriter()
    body = b"".join(
        writer.part(SubResponse(status, "", JSON, b'{"n": %d}' % n), request)
        for n, (request, status) in enumerate(pairs)
    )
    return writer.content_type, body + writer.close()


def _in_pieces(body: bytes, size: int) -> list[bytes]:
    return [body[at : at + size] for at in range(0, len(body), size)] or [b""]


def _described(result: Result[Any]) -> tuple[object, ...]:
    if isinstance(result, Answered):
        answer = result.response
        return ("answered", answer.status, answer.body, result.attempts, result.outer)
    assert isinstance(result, Failed)
    return ("failed", result.reason, result.attempts, result.outer)


def _whole(requests_: list[SubRequest], content_type: str, body: bytes) -> list[Result[str]]:
    """The results of one batch whose answer was read whole."""
    run = _run(requests_)
    batch = run.next_batch()
    assert batch is not None
    assert len(batch.items) == len(requests_)
    run.feed(batch, Reply(200, "OK", content_type, None, body, OUTER))
    assert run.done
    return run.results()


def _arriving(
    requests_: list[SubRequest], content_type: str, body: bytes, size: int, *, lost: bool = False
) -> tuple[list[Result[str]], list[int]]:
    """The results of the same batch, its answer read in pieces of ``size`` and settled as
    it arrives (``lost``: the connection then breaks instead of the answer ending); which
    requests were settled early."""
    run = _run(requests_)
    batch = run.next_batch()
    assert batch is not None
    arrival = run.arrival(batch, 200, content_type)
    assert isinstance(arrival, Arrival)
    settled: list[int] = []
    for piece in _in_pieces(body, size):
        early = run.settle_early(arrival, arrival.feed(piece), OUTER)
        assert all(result.outer == OUTER for _, result in early)
        settled += [index for index, _ in early]
        assert not run.done  # its batch is still arriving
    if lost:
        run.feed(batch, Lost(ConnectionError("the connection broke")))
    else:
        run.feed(batch, Reply(200, "OK", content_type, None, body, OUTER, None, arrival))
    assert run.done
    return run.results(), settled


def test_an_answer_final_on_its_own_is_settled_as_it_arrives() -> None:
    """Answered 200 or 404: settled at once. 503 (a status the policy retries), 424, and the
    members of an atomic group: left for the whole answer, which decides them as before."""
    requests_ = _requests(7, group=(5, 2))
    statuses = [200, 503, 404, 424, 201, 201, 201]
    content_type, body = _answer(list(zip(requests_, statuses, strict=True)))
    run = _run(requests_)
    batch = run.next_batch()
    assert batch is not None
    arrival = run.arrival(batch, 200, content_type)
    assert arrival is not None
    early = run.settle_early(arrival, arrival.feed(body), OUTER)
    assert [(index, result.response.status, result.attempts) for index, result in early] == [
        (0, 200, 1),
        (2, 404, 1),
        (4, 201, 1),
    ]
    assert not run.done
    run.feed(batch, Reply(200, "OK", content_type, None, body, OUTER, None, arrival))
    assert run.done
    results = [_described(result) for result in run.results()]
    assert results == [_described(result) for result in _whole(requests_, content_type, body)]


def test_no_answer_is_settled_early_from_a_reply_that_is_no_batch_answer() -> None:
    run = _run(_requests(2))
    batch = run.next_batch()
    assert batch is not None
    assert run.arrival(batch, 500, "multipart/mixed; boundary=b") is None
    assert run.arrival(batch, 200, "application/json") is None
    assert run.arrival(batch, 200, "multipart/mixed") is None  # no boundary: read it whole


def test_a_request_settled_early_keeps_its_answer_when_the_connection_breaks() -> None:
    requests_ = _requests(3)
    content_type, body = _answer(list(zip(requests_, [200, 200, 200], strict=True)))
    cut = body[: body.index(b"<response-r2>")]  # the third answer never arrives
    results, settled = _arriving(requests_, content_type, cut, 50, lost=True)
    assert settled == [0, 1]
    assert [type(result) for result in results] == [Answered, Answered, Failed]
    assert isinstance(results[2], Failed)
    assert results[2].reason.startswith("the batch could not be sent")


def test_settling_stops_at_an_id_answered_twice_and_the_rest_fails() -> None:
    """Which of two answers naming one id is whose cannot be told: nothing is settled early
    from there on, and the whole answer fails what is left, as read whole."""
    requests_ = _requests(3)
    pairs = list(zip(requests_, [200, 200, 200], strict=True))
    content_type, body = _answer([pairs[0], pairs[0], pairs[1], pairs[2]])
    results, settled = _arriving(requests_, content_type, body, 1)
    assert settled == [0]
    assert _described(results[0])[:2] == ("answered", 200)
    for result in results[1:]:
        assert isinstance(result, Failed)
        assert "twice" in result.reason
    whole = _whole(requests_, content_type, body)
    assert [_described(r) for r in results[1:]] == [_described(r) for r in whole[1:]]


def test_an_answer_to_a_request_answered_before_in_its_batch_is_not_settled() -> None:
    """A second answer naming a request (the first one retried, or not) is the same doubt as
    any id answered twice: settling stops there, and the whole answer fails the request."""
    requests_ = _requests(2)
    content_type, body = _answer([(requests_[0], 503), (requests_[0], 200), (requests_[1], 200)])
    results, settled = _arriving(requests_, content_type, body, 1)
    assert settled == []
    assert all(isinstance(result, Failed) and "twice" in result.reason for result in results)


def test_a_batch_stopped_at_a_failure_settled_early_says_so() -> None:
    """An OData batch stops at its first failure: the requests after it are told they never
    ran, at that failure, though it was settled as it arrived."""
    requests_ = _requests(3)
    content_type, body = _answer(list(zip(requests_[:2], [200, 404], strict=True)))
    results, settled = _arriving(requests_, content_type, body, 7)
    assert settled == [0, 1]
    whole = _whole(requests_, content_type, body)
    assert [_described(r) for r in results] == [_described(r) for r in whole]
    assert isinstance(results[2], Failed)
    assert "GET /items/1 (404" in results[2].reason


_KINDS = st.sampled_from([200, 201, 404, 500, 503, 424, "missing", "twice"])


@PROPERTY
@given(
    kinds=st.lists(_KINDS, min_size=1, max_size=8),
    group=st.none() | st.tuples(st.integers(0, 6), st.integers(2, 3)),
    ending=st.sampled_from(["whole", "cut", "garbage", "lost"]),
    at=st.floats(0, 1),
    size=st.integers(1, 300),
)
def test_what_arrives_is_decided_as_if_it_had_been_read_whole(
    *,
    kinds: list[int | str],
    group: tuple[int, int] | None,
    ending: str,
    at: float,
    size: int,
) -> None:
    """Each request's result, its answer read in pieces and settled as it arrived, is the one
    it gets read whole; but for a request settled before the batch failed as a whole (an
    answer cut short or malformed, an id answered twice, the connection lost after it),
    which keeps the answer it got."""
    if group is not None and sum(group) > len(kinds):
        group = None
    requests_ = _requests(len(kinds), group)
    pairs: list[tuple[SubRequest, int]] = []
    for request, kind in zip(requests_, kinds, strict=True):
        if kind != "missing":
            pairs.append((request, 200 if kind == "twice" else int(kind)))
        if kind == "twice":
            pairs.append((request, 201))
    if group is not None:  # a changeset is answered as a whole, its members together
        first, size_ = group
        members = [pair for pair in pairs if pair[0].group is not None]
        others = [pair for pair in pairs if pair[0].group is None]
        place = sum(1 for pair in others if int(pair[0].target.rsplit("/", 1)[1]) < first)
        if len(members) != size_ or len({id(pair[0]) for pair in members}) != size_:
            members = []  # answered only in part: leave the group unanswered
        pairs = others[:place] + members + others[place:]
    content_type, body = _answer(pairs)
    if ending == "cut":
        body = body[: int(at * len(body))]
    elif ending == "garbage":
        place = int(at * len(body))
        body = body[:place] + b"\r\n--" + body[place:]
    lost = ending == "lost"
    arrived, settled = _arriving(requests_, content_type, body, size, lost=lost)
    whole = (
        _whole(requests_, content_type, body)
        if not lost
        else _lost_whole(requests_, ConnectionError("the connection broke"))
    )
    for index, (got, expected) in enumerate(zip(arrived, whole, strict=True)):
        if index in settled and _described(got) != _described(expected):
            assert isinstance(got, Answered)
            assert isinstance(expected, Failed)  # the batch failed as a whole, after it
        else:
            assert _described(got) == _described(expected)


def _lost_whole(requests_: list[SubRequest], error: BaseException) -> list[Result[str]]:
    run = _run(requests_)
    batch = run.next_batch()
    assert batch is not None
    run.feed(batch, Lost(error))
    return run.results()


# -- the front ends, against a real server ----------------------------------------------------


@pytest.fixture
def slow_second() -> Any:
    """A server whose ``/second`` answers only once the test says so (or after 5 s), and
    whose ``/first`` takes a few milliseconds (so the server sends its answer at once, not
    held back with the next one's)."""
    app = Flask(__name__)
    released = threading.Event()

    @app.get("/first")
    def first() -> Any:
        time.sleep(0.005)
        return jsonify(first=True)

    @app.get("/second")
    def second() -> Any:
        return jsonify(released=released.wait(5))

    add_batch_route(app)
    with live_server(app) as base:
        yield base, released


def test_the_async_transport_hands_over_an_answer_before_its_batch_ends(
    slow_second: tuple[str, threading.Event],
) -> None:
    """The caller of ``/first`` has its answer while ``/second`` is still running in the
    same batch: it releases ``/second``, which then answers (read whole, ``/second`` would
    wait its 5 s out and say it was not released)."""
    base, released = slow_second

    async def main() -> list[Any]:
        transport = AsyncBatchTransport(base + "/batch")
        async with httpx.AsyncClient(transport=transport, timeout=30) as client:

            async def first() -> Any:
                answer = await client.get(base + "/first")
                released.set()
                return answer.json()

            async def second() -> Any:
                return (await client.get(base + "/second")).json()

            return list(await asyncio.gather(first(), second()))

    started = time.monotonic()
    assert asyncio.run(main()) == [{"first": True}, {"released": True}]
    assert time.monotonic() - started < 4


def test_batching_fills_each_response_with_what_it_worked_out_as_the_answer_arrived(
    slow_second: tuple[str, threading.Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``requests`` front end fills every response from the filling worked out while the
    answer arrived, and works none out again once it is in."""
    from flask_batch.client import _requests_messages as messages  # noqa: PLC0415
    from flask_batch.client import requests as front_end  # noqa: PLC0415

    base, released = slow_second
    released.set()
    worked_out: list[str] = []
    filling = messages.filling

    def counted(queued: Any, answer: SubResponse, elapsed: Any) -> messages.Filling:
        worked_out.append(threading.current_thread().name)
        return filling(queued, answer, elapsed)

    monkeypatch.setattr(front_end, "filling", counted)
    monkeypatch.setattr(messages, "filling", counted)
    with Batching(base + "/batch", timeout=30) as session:
        answers = [session.get(base + path) for path in ("/first", "/second", "/nowhere")]
    assert [answer.status_code for answer in answers] == [200, 200, 404]
    assert answers[1].json() == {"released": True}
    assert len(worked_out) == 3  # once each, as the answer arrived
    assert isinstance(answers[0], requests.Response)


#: A batch answer whose first part comes whole, then nothing but a byte every 30 ms.
_FIRST_THEN_STALL = (
    b"HTTP/1.1 200 OK\r\nContent-Type: multipart/mixed; boundary=b\r\n"
    b"Content-Length: 100000\r\n\r\n"
    b"--b\r\nContent-Type: application/http\r\nContent-ID: first\r\n\r\n"
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"first": true}\r\n'
    b"--b\r\n",
    b" " * 100,
)


def test_an_answer_settled_stands_when_its_batch_then_times_out() -> None:
    """The first request has its answer as soon as it arrived; the batch's deadline then
    fails the second, whose answer never comes (read whole, both would fail)."""
    from flask_batch.client.httpx import HttpxBatchFailed  # noqa: PLC0415

    async def main(base: str) -> HttpxBatchFailed:
        transport = AsyncBatchTransport(f"{base}/batch", retries=0, discover=False)
        timeout = dict.fromkeys(("connect", "read", "write", "pool"), 0.5)
        requests_ = [
            httpx.Request(
                "GET",
                f"{base}/{name}",
                extensions={"flask_batch.content_id": name, "timeout": timeout},
            )
            for name in ("first", "second")
        ]
        with pytest.raises(HttpxBatchFailed) as raised:
            await transport.send_all(requests_)
        await transport.aclose()
        return raised.value

    with trickling_server(*_FIRST_THEN_STALL, 0.03) as server:
        failed = asyncio.run(main(server.base))
    assert "took longer than its timeout" in str(failed)
    first, second = failed.responses
    assert first is not None
    assert (first.status_code, first.json()) == (200, {"first": True})
    assert second is None
