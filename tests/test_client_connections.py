"""Connections and concurrency of the clients, against a real server on 127.0.0.1.

Why: the README's idiom is a new ``with Batching(url) as s:`` block per batch, and a block
that opened its own connection paid a handshake per batch; the connections to a batch
endpoint are kept warm across sessions instead, shared only by sessions whose TLS settings
and proxies agree, never by a forked child. And a queue split into several batches sends
them concurrently, a bounded number at once, answers in order and retries as they were.
The server counts the connections it accepts and the requests it runs at once (barriers and
events, never time).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from flask import Flask, Response, jsonify, request
from requests.adapters import HTTPAdapter

from flask_batch import add_batch_route
from flask_batch.client import (
    Batching,
    BatchNotSent,
    Retry,
    close_shared_connections,
    forget_endpoints,
)
from flask_batch.client._core.limits import KnownLimits
from flask_batch.client._core.model import PreparedBatch, Reply
from flask_batch.client._core.options import DEFAULT_CONCURRENCY
from flask_batch.client._core.run import Run
from flask_batch.client._drivers import KEPT_CONNECTIONS, SharedPools
from flask_batch.client.httpx import ATTEMPTS, AsyncBatchTransport, BatchTransport
from flask_batch.wire.model import SubRequest
from tests.child import run_in_child
from tests.fake_batch import BASE, BATCH_URL, FakeEndpoint, RequestsAdapter
from tests.servers import Served, keep_alive_server, live_server
from tests.test_client_retry import attempts

#: Seconds a server-side wait may take: only a client that never sends what it waits for
#: runs out of it (the test then fails on what the view answered, not on time).
STUCK = 5


class Gate:
    """Counts the requests a view runs at once, and holds each at a barrier of ``width``:
    exactly ``width`` in flight at a time lets them all through; fewer time out."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current = 0
        self.peak = 0
        self.barrier = threading.Barrier(1)

    def reset(self, width: int) -> None:
        self.current = self.peak = 0
        self.barrier = threading.Barrier(width)

    def enter(self) -> bool:
        with self.lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
        try:
            self.barrier.wait(timeout=STUCK)
        except threading.BrokenBarrierError:
            return False
        finally:
            with self.lock:
                self.current -= 1
        return True


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Served, Gate, dict[str, threading.Event]]]:
    app = Flask(__name__)
    add_batch_route(app, "/batch", "batch", max_parts=100)
    gate = Gate()
    events: dict[str, threading.Event] = {}
    tries: dict[str, int] = {}

    @app.route("/echo/<int:n>", methods=["GET", "PUT"])
    def echo(n: int) -> Response:
        return jsonify(n=n)

    @app.route("/gate/<int:n>")
    def gated(n: int) -> Response:
        return jsonify(n=n, through=gate.enter())

    @app.route("/set/<name>")
    def set_event(name: str) -> Response:
        events.setdefault(name, threading.Event()).set()
        return jsonify(set=name)

    @app.route("/wait/<name>")
    def wait_for(name: str) -> Response:
        return jsonify(seen=events.setdefault(name, threading.Event()).wait(STUCK))

    @app.route("/flaky/<name>")
    def flaky(name: str) -> Response:
        """503 the first time, then 200 and set the event ``name``."""
        tries[name] = tries.get(name, 0) + 1
        if tries[name] == 1:
            return Response("busy", 503, {"Retry-After": "0"})
        events.setdefault(name, threading.Event()).set()
        return jsonify(tries=tries[name])

    values: dict[str, str] = {}

    @app.route("/value/<name>", methods=["GET", "PUT"])
    def value(name: str) -> Response:
        if request.method == "PUT":
            values[name] = request.get_data(as_text=True)
        return jsonify(value=values.get(name))

    with keep_alive_server(app) as served:
        yield served, gate, events


Server = tuple[Served, Gate, dict[str, threading.Event]]


# -- warm connections -----------------------------------------------------------------------


def test_a_second_batching_block_reuses_the_connection_of_the_first(server: Server) -> None:
    served, _, _ = server
    before = served.connections
    for n in range(3):
        with Batching(f"{served.base}/batch", timeout=10) as s:
            answer = s.get(f"{served.base}/echo/{n}")
        assert answer.json() == {"n": n}
    assert served.connections - before <= 1  # the first block may find one open already


def test_a_second_httpx_transport_reuses_the_connection_of_the_first(server: Server) -> None:
    served, _, _ = server
    before = served.connections
    for n in range(3):
        transport = BatchTransport(f"{served.base}/batch")
        with httpx.Client(transport=transport) as client, transport.batch(client) as batch:
            answer = batch.get(f"{served.base}/echo/{n}")
        assert answer.json() == {"n": n}
    assert served.connections - before <= 1


def test_closing_the_shared_connections_makes_the_next_block_open_one(server: Server) -> None:
    served, _, _ = server
    with Batching(f"{served.base}/batch", timeout=10) as s:
        s.get(f"{served.base}/echo/1")
    transport = BatchTransport(f"{served.base}/batch")
    with httpx.Client(transport=transport) as client, transport.batch(client) as batch:
        batch.get(f"{served.base}/echo/2")
    close_shared_connections()
    before = served.connections
    with Batching(f"{served.base}/batch", timeout=10) as s:
        s.get(f"{served.base}/echo/3")
    transport = BatchTransport(f"{served.base}/batch")
    with httpx.Client(transport=transport) as client, transport.batch(client) as batch:
        batch.get(f"{served.base}/echo/4")
    assert served.connections - before == 2


def test_a_transport_given_is_the_callers_and_is_closed_with_it(server: Server) -> None:
    served, _, _ = server
    before = served.connections
    for n in range(2):
        transport = BatchTransport(f"{served.base}/batch", transport=httpx.HTTPTransport())
        with httpx.Client(transport=transport) as client, transport.batch(client) as batch:
            batch.get(f"{served.base}/echo/{n}")
    assert served.connections - before == 2


def test_sessions_with_other_tls_settings_or_proxies_do_not_share(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    served, _, _ = server
    certificate = tmp_path / "client.pem"
    certificate.touch()  # only checked to exist: the URL is http
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # they would replace verify
        monkeypatch.delenv(name, raising=False)
    settings: list[dict[str, object]] = [
        {"verify": False},
        {"verify": "/nonexistent/ca.pem"},
        {"cert": str(certificate)},
        {"proxies": {"https": "http://proxy.invalid:3128"}},  # not this URL's: unused
    ]
    with Batching(f"{served.base}/batch", timeout=10) as s:
        s.get(f"{served.base}/echo/0")
    for setting in settings:
        before = served.connections
        for _ in range(2):  # the second block shares with the first of its own settings
            with Batching(f"{served.base}/batch", timeout=10) as s:
                for name, value in setting.items():
                    setattr(s, name, value)
                answer = s.get(f"{served.base}/echo/1")
            assert answer.json() == {"n": 1}
        assert served.connections - before == 1, setting


def test_the_environment_is_read_once_per_send_and_each_send_reads_it(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests reads proxies and the CA bundle from the environment once per request (about
    0.1 ms): a queue split into batches, with its discovery, is one send and reads it once,
    not twice per batch; the next send reads it again."""
    served, _, _ = server
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    calls = {"merge_environment_settings": 0, "send": 0}
    for owner, name in ((requests.Session, "merge_environment_settings"), (HTTPAdapter, "send")):
        monkeypatch.setattr(owner, name, _counted(getattr(owner, name), name, calls))
    with Batching(f"{served.base}/batch", timeout=10, max_parts=2, discover=True) as s:
        answers = [s.get(f"{served.base}/echo/{n}") for n in range(5)]
    assert [answer.json() for answer in answers] == [{"n": n} for n in range(5)]
    assert calls == {"merge_environment_settings": 1, "send": 4}  # discovery and 3 batches
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # a proxy nobody listens on
    with (
        pytest.raises(requests.RequestException, match="proxy"),
        Batching(f"{served.base}/batch", timeout=10, retries=0) as s,
    ):
        s.get(f"{served.base}/echo/0")


def test_a_send_whose_environment_cannot_be_read_says_so_on_each_response(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    served, _, _ = server

    def unreadable(session: requests.Session, *arguments: Any) -> dict[str, Any]:
        raise OSError("the CA bundle cannot be read")

    monkeypatch.setattr(requests.Session, "merge_environment_settings", unreadable)
    with pytest.raises(OSError, match="CA bundle"), Batching(f"{served.base}/batch") as s:
        answer = s.get(f"{served.base}/echo/0")
    with pytest.raises(BatchNotSent, match="could not be sent: the CA bundle cannot be read"):
        answer.json()


def _counted(method: Any, name: str, calls: dict[str, int]) -> Any:
    def counted(*arguments: Any, **keywords: Any) -> Any:
        calls[name] += 1
        return method(*arguments, **keywords)

    return counted


def test_an_adapter_the_user_mounted_is_used_as_it_is_never_shared(server: Server) -> None:
    served, _, _ = server
    before = served.connections
    for _ in range(2):
        with Batching(f"{served.base}/batch", timeout=10) as s:
            s.mount(served.base, HTTPAdapter())
            s.get(f"{served.base}/echo/1")
    assert served.connections - before == 2  # each its own, closed with its session
    with Batching(f"{served.base}/batch", timeout=10) as s:
        s.adapters["http://"].max_retries = 3  # type: ignore[attr-defined]  # changed: the user's
        s.get(f"{served.base}/echo/1")
    assert served.connections - before == 3


def test_a_forked_child_opens_its_own_connection(server: Server) -> None:
    served, _, _ = server
    code = f"""
import os
from flask_batch.client import Batching

def batch(n):
    with Batching("{served.base}/batch", timeout=10) as s:
        answer = s.get("{served.base}/echo/%d" % n)
    assert answer.json() == {{"n": n}}, answer.text

batch(1)
pid = os.fork()
if pid == 0:
    try:
        batch(2)
    finally:
        os._exit(0)
_, status = os.waitpid(pid, 0)
assert status == 0, status
batch(3)
"""
    before = served.connections
    result = run_in_child(code)
    assert result.returncode == 0, result.stderr
    # The parent's connection, and the child's own; the parent's third block reuses its own.
    assert served.connections - before == 2


def test_the_pool_keeps_a_bounded_number_of_connections(server: Server) -> None:
    served, gate, _ = server
    width = KEPT_CONNECTIONS + 2
    opened = []
    for _ in range(2):  # all at once, twice
        before = served.connections
        gate.reset(width)
        with Batching(f"{served.base}/batch", timeout=30, max_parts=1, concurrency=width) as s:
            answers = [s.get(f"{served.base}/gate/{n}") for n in range(width)]
        assert all(answer.json()["through"] for answer in answers)
        opened.append(served.connections - before)
    assert opened[1] == width - KEPT_CONNECTIONS  # the kept ones, and two new ones


class Opener:
    """Stands for the pools of :class:`SharedPools`: each a new number, recorded as opened
    and closed."""

    def __init__(self) -> None:
        self.opened: list[int] = []
        self.closed: list[int] = []

    def open(self) -> int:
        self.opened.append(len(self.opened))
        return self.opened[-1]


def test_shared_pools_close_the_least_recently_used_beyond_their_bound() -> None:
    pools = SharedPools((opener := Opener()).open, opener.closed.append, 2)
    keys: list[Hashable] = ["a", "b", "a", "c"]
    assert [pools.get(key) for key in keys] == [0, 1, 0, 2]
    assert opener.closed == [1]  # "b" was the least recently used
    pools.close_all()
    assert sorted(opener.closed) == [0, 1, 2]
    assert pools.get("a") == 3  # opened again


def test_threads_asking_at_once_share_one_pool() -> None:
    pools = SharedPools((opener := Opener()).open, opener.closed.append)
    together = threading.Barrier(8)
    got: list[int] = []

    def ask() -> None:
        together.wait(timeout=STUCK)
        got.append(pools.get("origin"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=STUCK)
    assert (opener.opened, got) == ([0], [0] * 8)


# -- concurrent splits ----------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [None, 2])
def test_split_batches_are_in_flight_at_most_concurrency_at_once(
    server: Server, concurrency: int | None
) -> None:
    served, gate, _ = server
    width = DEFAULT_CONCURRENCY if concurrency is None else concurrency
    gate.reset(width)
    s = Batching(f"{served.base}/batch", timeout=30, max_parts=1)
    if concurrency is not None:
        s.concurrency = concurrency
    with s:
        answers = [s.get(f"{served.base}/gate/{n}") for n in range(2 * width)]
    assert [answer.json() for answer in answers] == [
        {"n": n, "through": True} for n in range(2 * width)
    ]
    assert gate.peak == width


def test_answers_keep_their_order_when_batches_come_back_out_of_order(server: Server) -> None:
    served, _, _ = server
    with Batching(f"{served.base}/batch", timeout=30, max_parts=2) as s:
        first = s.get(f"{served.base}/wait/order-last-batch")  # answered last
        queued = [s.get(f"{served.base}/echo/{n}") for n in range(9)]
        last = s.get(f"{served.base}/set/order-last-batch")
    assert first.json() == {"seen": True}
    assert [answer.json() for answer in queued] == [{"n": n} for n in range(9)]
    assert last.json() == {"set": "order-last-batch"}


def test_a_retry_goes_while_another_batch_is_still_in_flight(server: Server) -> None:
    served, _, _ = server
    policy = Retry(backoff=0.01, jitter=0.0)
    with Batching(f"{served.base}/batch", timeout=30, max_parts=1, retries=policy) as s:
        flaky = s.get(f"{served.base}/flaky/retried-meanwhile")
        waiting = s.get(f"{served.base}/wait/retried-meanwhile")  # for flaky's retry
    assert (flaky.status_code, attempts(flaky), flaky.json()) == (200, 2, {"tries": 2})
    assert waiting.json() == {"seen": True}


def test_the_async_transport_retries_while_another_batch_is_in_flight(server: Server) -> None:
    served, _, _ = server
    policy = Retry(backoff=0.01, jitter=0.0)

    async def send() -> list[httpx.Response]:
        transport = AsyncBatchTransport(f"{served.base}/batch", max_parts=1, retries=policy)
        async with httpx.AsyncClient(transport=transport, timeout=30) as client:
            return await transport.send_all(
                [
                    client.build_request("GET", f"{served.base}/flaky/async-meanwhile"),
                    client.build_request("GET", f"{served.base}/wait/async-meanwhile"),
                ]
            )

    flaky, waiting = asyncio.run(send())
    assert (flaky.json(), flaky.extensions[ATTEMPTS]) == ({"tries": 2}, 2)
    assert waiting.json() == {"seen": True}


def test_a_lone_batch_goes_from_the_calling_thread() -> None:
    """No pool thread for a queue that fits one batch: what every small batch would pay."""
    threads: list[str] = []

    class Recording(RequestsAdapter):
        def send(  # type: ignore[override]
            self, request: requests.PreparedRequest, **kwargs: Any
        ) -> requests.Response:
            threads.append(threading.current_thread().name)
            return super().send(request, **kwargs)

    endpoint = FakeEndpoint()
    with Batching(BATCH_URL) as s:
        s.mount(BASE, Recording(endpoint))
        s.get(f"{BASE}/one")
    with Batching(BATCH_URL, max_parts=1, discover=False) as s:
        s.mount(BASE, Recording(endpoint))
        s.get(f"{BASE}/one")
        s.get(f"{BASE}/two")
    assert threads[0] == threading.current_thread().name
    assert all(name.startswith("flask-batch") for name in threads[1:]), threads


def test_a_dependency_chain_stays_in_one_batch_among_concurrent_ones(server: Server) -> None:
    served, _, _ = server
    with Batching(f"{served.base}/batch", timeout=30, max_parts=3) as s:
        before = [s.get(f"{served.base}/echo/{n}") for n in range(4)]
        written = s.put(f"{served.base}/value/chain", data="written")
        read = s.get(f"{served.base}/value/chain", depends_on=[written])
        after = [s.get(f"{served.base}/echo/{n}") for n in range(4, 8)]
    assert read.json() == {"value": "written"}
    assert [r.json()["n"] for r in before + after] == list(range(8))


# -- the run decides what is in flight -------------------------------------------------------


def parts(count: int) -> list[SubRequest]:
    return [SubRequest("GET", f"/items/{n}", (), b"") for n in range(count)]


def sent(run: Run[None]) -> list[PreparedBatch]:
    """What the run gives out now."""
    batches = []
    while (batch := run.next_batch()) is not None:
        batches.append(batch)
    return batches


def test_the_run_gives_out_at_most_concurrency_batches_and_keeps_chains_whole() -> None:
    limits = KnownLimits(max_parts=2, discover=False)
    depends_on = [(), (0,), (), (), (3,), (), ()]
    run: Run[None] = Run(parts(7), depends_on, limits=limits, concurrency=3)
    first = sent(run)
    assert [batch.items for batch in first] == [(0, 1), (2,), (3, 4)]
    run.feed(first[1], Reply(503, "", None, "60", b"", None))  # retried in a minute
    assert [batch.items for batch in sent(run)] == [(5, 6)]


def test_a_retry_is_due_while_another_batch_is_in_flight() -> None:
    now = [0.0]
    limits = KnownLimits(max_parts=1, discover=False)
    run: Run[None] = Run(parts(2), limits=limits, concurrency=2, clock=lambda: now[0])
    first, second = sent(run)
    assert run.wake_in() is None  # both slots taken: nothing could go
    run.feed(first, Reply(503, "", None, "2", b"", None))
    assert (sent(run), run.wake_in()) == ([], 2.0)
    now[0] = 2.0
    assert run.wake_in() == 0.0
    assert [batch.items for batch in sent(run)] == [(0,)]  # with the second still out
    assert second.items == (1,)


# -- the discovery beside the first batches --------------------------------------------------


class HeldDescription:
    """Holds the batch endpoint's description (its ``GET``) until a batch (a ``POST``) came
    in: a client that waits for the description before sending anything waits ``STUCK``
    seconds, and ``seen`` says so."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.posted = threading.Event()
        self.seen: list[bool] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/batch":
            if environ["REQUEST_METHOD"] == "POST":
                self.posted.set()
            elif environ["REQUEST_METHOD"] == "GET":
                self.seen.append(self.posted.wait(STUCK))
        return self.app(environ, start_response)

    def reset(self) -> None:
        forget_endpoints()
        self.posted.clear()
        self.seen.clear()


@pytest.fixture(scope="module")
def held() -> Iterator[tuple[str, HeldDescription]]:
    app = Flask(__name__)
    add_batch_route(app, "/batch", "batch", max_parts=100)

    @app.route("/echo/<int:n>")
    def echo(n: int) -> Response:
        return jsonify(n=n)

    wrapped = HeldDescription(app)
    with live_server(wrapped) as base:
        yield base, wrapped


def test_a_new_process_sends_its_first_batches_beside_the_discovery(
    held: tuple[str, HeldDescription],
) -> None:
    base, endpoint = held
    endpoint.reset()
    with Batching(f"{base}/batch", timeout=30) as s:
        answers = [s.get(f"{base}/echo/{n}") for n in range(250)]
    assert [answer.json() for answer in answers] == [{"n": n} for n in range(250)]
    assert endpoint.seen == [True]
    assert s.limits.document is not None  # what it said is known for the next run


def test_the_httpx_transports_send_their_first_batches_beside_the_discovery(
    held: tuple[str, HeldDescription],
) -> None:
    base, endpoint = held
    endpoint.reset()
    transport = BatchTransport(f"{base}/batch")
    with httpx.Client(transport=transport, timeout=30) as client, transport.batch(client) as batch:
        answers = [batch.get(f"{base}/echo/{n}") for n in range(250)]
    assert [answer.json() for answer in answers] == [{"n": n} for n in range(250)]
    assert endpoint.seen == [True]

    async def send() -> list[httpx.Response]:
        transport = AsyncBatchTransport(f"{base}/batch")
        async with httpx.AsyncClient(transport=transport, timeout=30) as client:
            return await transport.send_all(
                [client.build_request("GET", f"{base}/echo/{n}") for n in range(250)]
            )

    endpoint.reset()
    answered = asyncio.run(send())
    assert [answer.json() for answer in answered] == [{"n": n} for n in range(250)]
    assert endpoint.seen == [True]


def test_the_run_keeps_a_slot_for_the_discovery_beside_its_batches() -> None:
    run: Run[None] = Run(parts(1000), concurrency=3)
    assert run.needs_discovery()  # 10 batches under the assumed 100 parts
    assert run.discover_beside()
    first = sent(run)
    assert [len(batch.items) for batch in first] == [100, 100]  # the third slot: discovery
    run.discovered({"max_parts": 300})
    assert [len(batch.items) for batch in sent(run)] == [300]
    assert not Run(parts(1000), concurrency=1).discover_beside()
