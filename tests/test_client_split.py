"""Auto-splitting: a queue larger than the endpoint's limits goes as several batches.

Why: the caller should not have to know that the server takes at most 100 parts or 16 MiB.
The limits come from the client's configuration, from the endpoint itself (``GET`` on the
batch URL, once per client), or from a ``413`` that names the limit (then the refused batch
is re-split and sent again); answers still reach their callers, and requests that depend on
each other stay in one batch. The packing and the limit bookkeeping are tested alone, then
through the ``requests`` client against the scripted endpoint and a real server.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
from flask import Flask, Response, jsonify, request

from flask_batch import add_batch_route
from flask_batch.client import BatchFailed, Batching, BatchResponse, forget_endpoints
from flask_batch.client._core.formats import Format, JsonFormat, MultipartFormat
from flask_batch.client._core.limits import KnownLimits, groups_of, pack, read_too_large
from flask_batch.client._core.run import Run
from flask_batch.client.httpx import AsyncBatchTransport
from flask_batch.wire.model import SubRequest
from tests.fake_batch import BASE, BATCH_URL, FakeEndpoint, RequestsAdapter, status, too_large
from tests.servers import live_server

# -- packing --------------------------------------------------------------------------------


def test_dependency_groups_are_connected_components_in_order() -> None:
    depends_on = {2: (0,), 4: (2,), 5: (3, 1), 6: (9,)}
    assert groups_of(list(range(7)), depends_on) == [[0, 2, 4], [1, 3, 5], [6]]
    # Only dependencies among the indices count (0 was answered already).
    assert groups_of([2, 4, 5], depends_on) == [[2, 4], [5]]


def test_pack_keeps_to_max_parts_and_max_body_size_and_never_splits_a_group() -> None:
    sizes = dict.fromkeys(range(6), 10)
    groups = [[0], [1, 2], [3], [4], [5]]
    assert pack(groups, sizes, max_parts=2, max_body_size=10**6, overhead=0) == [
        [0],
        [1, 2],
        [3, 4],
        [5],
    ]
    # Body: overhead 5 + parts + 2-byte separators between parts.
    assert pack(groups, sizes, max_parts=99, max_body_size=27, overhead=5, separator=2) == [
        [0],
        [1, 2],
        [3, 4],
        [5],
    ]
    assert pack(groups, sizes, max_parts=99, max_body_size=39, overhead=5, separator=2) == [
        [0, 1, 2],
        [3, 4, 5],
    ]
    # A group too large alone still gets a batch of its own.
    assert pack([[0, 1, 2]], sizes, max_parts=2, max_body_size=10, overhead=0) == [[0, 1, 2]]


def test_known_limits_take_the_smallest_known_value_and_assume_the_defaults_softly() -> None:
    limits = KnownLimits()
    assert limits.bound("max_parts") == (100, False)
    assert limits.bound("max_body_size") == (16 * 1024 * 1024, False)
    assert limits.discoverable

    limits.discovered({"max_parts": 500, "max_body_size": "lots", "max_workers": 4})
    assert limits.bound("max_parts") == (500, True)
    assert limits.bound("max_body_size") == (16 * 1024 * 1024, False)  # garbled: ignored
    assert not limits.discoverable
    assert limits.document == {"max_parts": 500, "max_body_size": "lots", "max_workers": 4}
    limits.learn("max_parts", 50)
    assert limits.max_parts == 50

    configured = KnownLimits(max_parts=20, max_body_size=1000, discover=False)
    assert not configured.discoverable
    configured.discovered({"max_parts": 100, "max_body_size": 500})
    assert (configured.max_parts, configured.max_body_size) == (20, 500)

    failed = KnownLimits()
    failed.discovered(None)
    assert (failed.discoverable, failed.document, failed.max_parts) == (False, None, 100)


@pytest.mark.parametrize("value", [0, -1, 1.5, "10", True])
def test_an_invalid_configured_limit_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="max_parts"):
        KnownLimits(max_parts=value)  # type: ignore[arg-type]


def test_a_413_problem_is_read_leniently() -> None:
    refusal = read_too_large({"limit": "max_parts", "value": 100, "part": 101})
    assert (refusal.limit, refusal.value, refusal.part) == ("max_parts", 100, 101)
    garbled = read_too_large({"limit": 7, "value": "100", "part": -1})
    assert (garbled.limit, garbled.value, garbled.part) == (None, None, None)
    assert read_too_large(["not", "a", "problem"]).limit is None


@pytest.mark.parametrize("format", [MultipartFormat, JsonFormat])
def test_batches_are_cut_by_their_exact_body_size(format: type[Format]) -> None:
    requests_ = [
        SubRequest(
            "PUT",
            f"/items/{i}",
            (("Content-Type", "application/json"),),
            b"[%s]" % b",".join([b"1"] * i),
        )
        for i in range(30)
    ]
    whole = Run(requests_, format=format, limits=KnownLimits(discover=False)).next_batch()
    assert whole is not None
    limit = len(whole.body) // 3
    limits = KnownLimits(max_body_size=limit, discover=False)
    run: Run[None] = Run(requests_, format=format, limits=limits)
    sends = []
    while (send := run.next_batch()) is not None:
        sends.append(send)
    assert sorted(i for send in sends for i in send.items) == list(range(30))
    assert all(len(send.body) <= limit for send in sends)
    # Tight: the next request would not have fitted.
    for send, following in itertools.pairwise(sends):
        grown = Run(
            [requests_[i] for i in (*send.items, following.items[0])],
            format=format,
            limits=KnownLimits(discover=False),
        ).next_batch()
        assert grown is not None
        assert len(grown.body) > limit


# -- the requests client against a scripted endpoint -----------------------------------------


def session(endpoint: FakeEndpoint, **options: object) -> Batching:
    """A session of the fake endpoint, sending one batch at a time unless told otherwise:
    the order of the batches is what these tests check."""
    options.setdefault("concurrency", 1)
    s = Batching(BATCH_URL, sleep=lambda seconds: None, **options)  # type: ignore[arg-type]
    s.mount(BASE, RequestsAdapter(endpoint))
    return s


def paths(responses: list[requests.Response]) -> list[str]:
    return [r.json()["path"] for r in responses]


def test_a_configured_max_parts_splits_the_queue_in_order() -> None:
    endpoint = FakeEndpoint()
    with session(endpoint, max_parts=2) as s:
        queued = [s.get(f"{BASE}/{i}") for i in range(5)]
    assert endpoint.batches == [["GET /0", "GET /1"], ["GET /2", "GET /3"], ["GET /4"]]
    assert paths(queued) == ["/0", "/1", "/2", "/3", "/4"]
    # The queue had to be split: the endpoint was asked once (it has no description here).
    assert endpoint.discoveries == 1


class _CountedItems(list):  # type: ignore[type-arg]
    """A run's requests, counting each time the run looks one up or walks past one."""

    looked = 0

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        _CountedItems.looked += 1
        return super().__getitem__(index)

    def __iter__(self):  # type: ignore[no-untyped-def]
        for item in super().__iter__():
            _CountedItems.looked += 1
            yield item


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_long_queue_is_planned_in_work_linear_in_its_length(
    monkeypatch: pytest.MonkeyPatch, concurrency: int
) -> None:
    # Planning each batch used to look at every request of the queue: a queue of 20,000
    # cut into batches of 100 took 9.6 s of the client's CPU to send. Counted, not timed: the
    # requests the run looks at per request queued must not grow with the queue.
    class CountedRun(Run):  # type: ignore[type-arg]
        def __init__(self, *arguments: object, **options: object) -> None:
            super().__init__(*arguments, **options)  # type: ignore[arg-type]
            self._items = _CountedItems(self._items)

    monkeypatch.setattr("flask_batch.client._core.options.Run", CountedRun)
    per_request = []
    for n in (250, 1000, 4000):
        endpoint = FakeEndpoint()
        endpoint.fail("/7", 503)  # one retry, after a wait: the run looks back for it
        _CountedItems.looked = 0
        with session(endpoint, max_parts=10, concurrency=concurrency) as s:
            queued = [s.get(f"{BASE}/{i}") for i in range(n)]
        assert paths(queued) == [f"/{i}" for i in range(n)]
        assert len(endpoint.batches) == n // 10 + 1
        per_request.append(_CountedItems.looked / n)
    assert max(per_request) < 16, per_request
    assert per_request[-1] < 1.5 * per_request[0], per_request


def test_a_configured_max_body_size_is_never_exceeded() -> None:
    endpoint = FakeEndpoint(max_body_size=1500)
    with session(endpoint, max_body_size=1500) as s:
        queued = [s.put(f"{BASE}/{i}", data=b"x" * 300) for i in range(10)]
    assert len(endpoint.batches) > 1
    assert max(endpoint.sizes) <= 1500
    assert paths(queued) == [f"/{i}" for i in range(10)]


def test_a_413_naming_max_parts_is_learned_and_the_batch_re_split() -> None:
    endpoint = FakeEndpoint(max_parts=2)
    s = session(endpoint)
    with s:
        queued = [s.get(f"{BASE}/{i}") for i in range(5)]
    assert endpoint.batches == [
        ["GET /0", "GET /1", "GET /2", "GET /3", "GET /4"],  # refused: 413 max_parts 2
        ["GET /0", "GET /1"],
        ["GET /2", "GET /3"],
        ["GET /4"],
    ]
    assert paths(queued) == ["/0", "/1", "/2", "/3", "/4"]
    assert all(isinstance(r, BatchResponse) and r.attempts == 1 for r in queued)
    assert s.limits.max_parts == 2
    # The session remembers: its next batches are cut to size at once.
    with s:
        [s.get(f"{BASE}/again/{i}") for i in range(3)]
    assert [len(batch) for batch in endpoint.batches[4:]] == [2, 1]


def test_a_413_naming_max_body_size_is_learned() -> None:
    endpoint = FakeEndpoint(max_body_size=2000)
    with session(endpoint) as s:
        queued = [s.put(f"{BASE}/{i}", data=b"y" * 500) for i in range(6)]
    assert endpoint.sizes[0] > 2000
    assert max(endpoint.sizes[1:]) <= 2000
    assert paths(queued) == [f"/{i}" for i in range(6)]
    assert s.limits.max_body_size == 2000


def test_a_request_too_large_for_a_part_fails_alone_with_its_dependents() -> None:
    endpoint = FakeEndpoint()
    endpoint.outcomes = [too_large("max_part_size", 1024, part=2)]
    queued: list[requests.Response] = []

    def send() -> None:
        with session(endpoint) as s:
            queued.append(s.get(f"{BASE}/a"))
            queued.append(s.put(f"{BASE}/big", data=b"z" * 2000))
            queued.append(s.request("GET", f"{BASE}/after-big", depends_on=[queued[1]]))
            queued.append(s.get(f"{BASE}/d"))

    with pytest.raises(BatchFailed, match="max_part_size") as info:
        send()
    a, big, after, d = queued
    assert endpoint.batches[1] == ["GET /a", "GET /d"]
    assert info.value.requests == [big.request, after.request]
    assert info.value.response is not None
    assert info.value.response.status_code == 413
    assert paths([a, d]) == ["/a", "/d"]


def test_an_unexplained_413_halves_the_batch() -> None:
    endpoint = FakeEndpoint()
    endpoint.outcomes = [status(413, ("Content-Type", "text/html"), body=b"<h1>Too big</h1>")]
    with session(endpoint) as s:
        queued = [s.get(f"{BASE}/{i}") for i in range(4)]
    assert [len(batch) for batch in endpoint.batches] == [4, 2, 2]
    assert paths(queued) == ["/0", "/1", "/2", "/3"]


def test_a_413_for_a_batch_that_cannot_be_split_raises_batch_failed() -> None:
    endpoint = FakeEndpoint()
    endpoint.outcomes = [status(413, body=b"Request Entity Too Large")]
    queued: list[requests.Response] = []

    def send() -> None:
        with session(endpoint) as s:
            queued.append(s.get(f"{BASE}/only"))

    with pytest.raises(BatchFailed, match="cannot be split further: Request Entity Too Large"):
        send()
    assert len(endpoint.batches) == 1


def test_requests_that_depend_on_each_other_stay_in_one_batch() -> None:
    endpoint = FakeEndpoint()
    with session(endpoint, max_parts=2) as s:
        x = s.get(f"{BASE}/x")
        a = s.post(f"{BASE}/a", json={})
        y = s.get(f"{BASE}/y")
        b = s.request("POST", f"{BASE}/b", json={}, depends_on=[a])
        z = s.get(f"{BASE}/z")
    assert endpoint.batches == [["GET /x"], ["POST /a", "POST /b"], ["GET /y", "GET /z"]]
    assert paths([x, a, y, b, z]) == ["/x", "/a", "/y", "/b", "/z"]


def test_a_dependency_chain_longer_than_a_known_limit_cannot_be_sent() -> None:
    endpoint = FakeEndpoint()
    queued: list[requests.Response] = []

    def send() -> None:
        with session(endpoint, max_parts=2) as s:
            queued.append(s.get(f"{BASE}/a"))
            queued.append(s.request("GET", f"{BASE}/b", depends_on=[queued[0]]))
            queued.append(s.request("GET", f"{BASE}/c", depends_on=[queued[1]]))
            queued.append(s.get(f"{BASE}/free"))

    with pytest.raises(BatchFailed, match="3 requests that depend on each other") as info:
        send()
    assert info.value.response is None  # refused before sending anything
    assert info.value.requests == [r.request for r in queued[:3]]
    assert endpoint.batches == [["GET /free"]]
    assert paths(queued[3:]) == ["/free"]


# -- discovery ---------------------------------------------------------------------------------


def test_limits_are_discovered_once_when_a_queue_would_be_split() -> None:
    endpoint = FakeEndpoint(description={"max_parts": 200, "max_body_size": 10**8})
    s = session(endpoint)
    with s:
        first = [s.get(f"{BASE}/{i}") for i in range(150)]
    with s:
        second = [s.get(f"{BASE}/{i}") for i in range(150)]
    assert endpoint.discoveries == 1  # cached for the session
    assert [len(batch) for batch in endpoint.batches] == [150, 150]
    assert paths(first + second) == [f"/{i}" for i in range(150)] * 2
    assert s.limits.document == {"max_parts": 200, "max_body_size": 10**8}


def test_discovered_limits_lower_a_configured_one() -> None:
    endpoint = FakeEndpoint(description={"max_parts": 3}, max_parts=3)
    with session(endpoint, max_parts=5) as s:
        [s.get(f"{BASE}/{i}") for i in range(7)]
    assert endpoint.discoveries == 1
    assert [len(batch) for batch in endpoint.batches] == [3, 3, 1]  # no 413 on the way


def test_a_queue_that_fits_what_is_known_is_sent_without_asking() -> None:
    endpoint = FakeEndpoint(description={"max_parts": 1000})
    with session(endpoint) as s:
        [s.get(f"{BASE}/{i}") for i in range(100)]
    assert endpoint.discoveries == 0
    assert len(endpoint.batches) == 1


def test_a_failed_discovery_falls_back_to_the_configured_limits_and_is_not_repeated() -> None:
    endpoint = FakeEndpoint(description=None)  # GET answers 404
    s = session(endpoint, max_parts=2)
    with s:
        first = [s.get(f"{BASE}/{i}") for i in range(5)]
    with s:
        [s.get(f"{BASE}/{i}") for i in range(5)]
    assert endpoint.discoveries == 1
    assert [len(batch) for batch in endpoint.batches] == [2, 2, 1, 2, 2, 1]
    assert paths(first) == [f"/{i}" for i in range(5)]


def test_discovery_can_be_turned_off() -> None:
    endpoint = FakeEndpoint(description={"max_parts": 200})
    with session(endpoint, discover=False) as s:
        [s.get(f"{BASE}/{i}") for i in range(150)]
    assert endpoint.discoveries == 0
    assert [len(batch) for batch in endpoint.batches] == [100, 50]


def test_split_false_sends_one_batch_whatever_its_size() -> None:
    endpoint = FakeEndpoint()
    with session(endpoint, split=False, max_parts=2) as s:
        [s.get(f"{BASE}/{i}") for i in range(5)]
    assert [len(batch) for batch in endpoint.batches] == [5]


class LateDescription(RequestsAdapter):
    """The fake endpoint, its description answered only once ``batches`` batches were, and
    a while after: the discovery beside them comes back last."""

    def __init__(self, endpoint: FakeEndpoint, batches: int) -> None:
        super().__init__(endpoint)
        self.batches = batches
        self.answered = threading.Semaphore(0)

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        if request.method == "GET":
            for _ in range(self.batches):
                assert self.answered.acquire(timeout=5)
            time.sleep(0.2)  # the run has fed them all by then
            return super().send(request, **kwargs)
        response = super().send(request, **kwargs)
        self.answered.release()
        return response


def test_a_description_that_comes_back_after_the_batches_serves_the_next_run() -> None:
    forget_endpoints()
    endpoint = FakeEndpoint(description={"max_parts": 300})
    s = Batching(BATCH_URL, concurrency=6)
    s.mount(BASE, LateDescription(endpoint, batches=3))
    with s:
        responses = [s.get(f"{BASE}/{i}") for i in range(250)]
    assert paths(responses) == [f"/{i}" for i in range(250)]
    # The three went at once, from the pool's threads: in any order.
    assert sorted(len(batch) for batch in endpoint.batches) == [50, 100, 100]
    assert s.limits.document == {"max_parts": 300}
    s = Batching(BATCH_URL, concurrency=6)
    s.mount(BASE, RequestsAdapter(endpoint))
    with s:
        [s.get(f"{BASE}/{i}") for i in range(250)]
    assert [len(batch) for batch in endpoint.batches][3:] == [250]
    assert endpoint.discoveries == 1


def test_the_async_transport_takes_a_description_that_comes_back_after_the_batches() -> None:
    forget_endpoints()
    endpoint = FakeEndpoint(description={"max_parts": 300})
    answered = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal answered
        if request.method == "GET":
            while answered < 3:
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.2)  # the run has fed them all by then
            return endpoint.httpx_handler(request)
        response = endpoint.httpx_handler(request)
        answered += 1
        return response

    async def send(count: int) -> list[httpx.Response]:
        transport = AsyncBatchTransport(BATCH_URL, transport=httpx.MockTransport(handler))
        async with httpx.AsyncClient(transport=transport) as client:
            return await transport.send_all(
                [client.build_request("GET", f"{BASE}/{i}") for i in range(count)]
            )

    responses = asyncio.run(send(250))
    assert [r.json()["path"] for r in responses] == [f"/{i}" for i in range(250)]
    asyncio.run(send(250))
    assert [len(batch) for batch in endpoint.batches] == [100, 100, 50, 250]
    assert endpoint.discoveries == 1


# -- against a real server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> Iterator[tuple[str, dict[str, int]]]:
    app = Flask(__name__)
    add_batch_route(app, "/batch", "batch", max_parts=2)
    add_batch_route(app, "/batch/large", "large", max_parts=300)
    add_batch_route(app, "/batch/one", "one", max_parts=1)
    counts: dict[str, int] = {}
    barrier = threading.Barrier(2)

    @app.before_request
    def count() -> None:
        if request.path.startswith("/batch"):
            key = f"{request.method} {request.path}"
            counts[key] = counts.get(key, 0) + 1

    @app.route("/echo/<int:n>", methods=["GET", "PUT"])
    def echo(n: int) -> Response:
        return jsonify(n=n, body=request.get_data(as_text=True))

    @app.route("/together")
    def together() -> Response:
        barrier.wait(timeout=5)  # both batches must be in flight at once
        return jsonify(together=True)

    with live_server(app) as base:
        yield base, counts


def test_answers_reach_their_callers_across_batches_of_a_real_server(
    real: tuple[str, dict[str, int]],
) -> None:
    base, counts = real
    before = counts.get("POST /batch", 0)
    with Batching(f"{base}/batch", timeout=10) as s:
        queued = [s.put(f"{base}/echo/{n}", data=f"body {n}") for n in range(7)]
    assert [r.json() for r in queued] == [{"n": n, "body": f"body {n}"} for n in range(7)]
    # 413 (max_parts 2), then 4 batches of at most 2.
    assert counts["POST /batch"] - before == 5


def test_discovery_against_a_real_server(real: tuple[str, dict[str, int]]) -> None:
    base, counts = real
    forget_endpoints()
    with Batching(f"{base}/batch/large", timeout=10) as s:
        queued = [s.get(f"{base}/echo/{n}") for n in range(250)]
    assert [r.json()["n"] for r in queued] == list(range(250))
    assert counts["GET /batch/large"] == 1
    # The batches went beside the discovery, packed under the limits assumed until it
    # answers (the server's defaults: 100 parts); the next run knows the endpoint's 300.
    assert counts["POST /batch/large"] == 3
    assert s.limits.document is not None
    assert s.limits.document["max_parts"] == 300
    with Batching(f"{base}/batch/large", timeout=10) as s:
        queued = [s.get(f"{base}/echo/{n}") for n in range(250)]
    assert [r.json()["n"] for r in queued] == list(range(250))
    assert (counts["GET /batch/large"], counts["POST /batch/large"]) == (1, 4)


def test_with_one_batch_at_a_time_the_discovery_goes_first(
    real: tuple[str, dict[str, int]],
) -> None:
    base, counts = real
    forget_endpoints()
    before = counts.get("POST /batch/large", 0)
    with Batching(f"{base}/batch/large", timeout=10) as s:
        s.concurrency = 1
        queued = [s.get(f"{base}/echo/{n}") for n in range(250)]
    assert [r.json()["n"] for r in queued] == list(range(250))
    assert counts["POST /batch/large"] - before == 1  # all 250 in one, as discovered


def test_split_batches_can_be_in_flight_at_once(real: tuple[str, dict[str, int]]) -> None:
    base, _ = real
    with Batching(f"{base}/batch/one", timeout=10, max_parts=1, concurrency=2) as s:
        queued = [s.get(f"{base}/together") for _ in range(2)]
    assert [r.status_code for r in queued] == [200, 200]
