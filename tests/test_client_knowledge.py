"""What a client knows of its endpoint outlives it, against a real server on 127.0.0.1.

Why: the README's idiom is a new ``with Batching(url) as s:`` block per batch, and a block
that started ignorant sent its first large batch uncompressed (a round trip more under TCP
slow start) and asked for the limits again when its queue had to be split (one more round
trip). The clients of one batch URL share what was discovered or learned (limits, the
description, gzip taken or refused), never what a client was configured with; it is
forgotten on demand (``forget_endpoints()``), or when too old, and gathered again. The server
records every request to the batch URL: its method, its Content-Encoding and its status.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from flask import Flask, request

from flask_batch import add_batch_route
from flask_batch.client import Batching, forget_endpoints
from flask_batch.client._core.limits import DEFAULT_LIMITS, EndpointKnowledge, KnownLimits
from flask_batch.client._drivers import KNOWN_ENDPOINTS, SharedKnowledge
from flask_batch.client.httpx import AsyncBatchTransport, BatchTransport

from .child import run_in_child
from .servers import live_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: The server's max_parts at /batch: a queue of more is split.
MAX_PARTS = 60
#: A queue that would be split even under the limits a client assumes knowing nothing: it
#: asks for them, and its first batches go meanwhile, cut under the limits assumed (so in
#: two); sent to /wide, which takes it whole.
SPLIT = DEFAULT_LIMITS.max_parts + 1
WIDE_PARTS = 2 * DEFAULT_LIMITS.max_parts
#: A batch of these is well over COMPRESS_ABOVE, and fits MAX_PARTS.
LARGE = 5
DOCUMENT = {"name": "a name long enough to matter", "tags": ["one", "two", "three"]}


@dataclass(frozen=True)
class Seen:
    """One request to the batch URL, as the server saw it."""

    method: str
    coding: str | None
    status: int


@dataclass
class Endpoint:
    base: str
    seen: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.base}/batch"

    @property
    def wide(self) -> str:
        """A route that takes more parts than a client assumes knowing nothing."""
        return f"{self.base}/wide"

    def taken(self) -> list[Seen]:
        """What was seen so far, forgotten for the next look, in :func:`in_order`."""
        seen = in_order(self.seen)
        self.seen.clear()
        return seen


def in_order(seen: Iterable[Seen]) -> list[Seen]:
    """Requests seen, in an order of their own: the batches of a split queue go at once."""
    return sorted(seen, key=lambda one: (one.method, one.status, one.coding or ""))


def _recording(app: WSGIApplication, seen: list[Seen]) -> WSGIApplication:
    def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] not in ("/batch", "/wide"):
            return app(environ, start_response)

        def recorded(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            coding = environ.get("HTTP_CONTENT_ENCODING")
            seen.append(Seen(environ["REQUEST_METHOD"], coding, int(status[:3])))
            return start_response(status, headers, *rest)

        return app(environ, recorded)

    return application


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    app = Flask(__name__)

    @app.post("/items/<int:number>")
    def item(number: int) -> dict[str, object]:
        return {"number": number, "sent": request.get_json()}

    add_batch_route(app, "/batch", max_parts=MAX_PARTS)
    add_batch_route(app, "/wide", "wide", max_parts=WIDE_PARTS)
    seen: list[Seen] = []
    with live_server(_recording(app, seen)) as base:
        yield Endpoint(base, seen)


def _requests(base: str, count: int) -> list[httpx.Request]:
    return [httpx.Request("POST", f"{base}/items/{n}", json=DOCUMENT) for n in range(count)]


def _batching(url: str, base: str, count: int, options: dict[str, Any]) -> list[object]:
    with Batching(url, retries=0, **options) as s:
        responses = [s.post(f"{base}/items/{n}", json=DOCUMENT) for n in range(count)]
    return [response.json() for response in responses]


def _transport(url: str, base: str, count: int, options: dict[str, Any]) -> list[object]:
    transport = BatchTransport(url, retries=0, **options)
    return [response.json() for response in transport.send_all(_requests(base, count))]


def _async_transport(url: str, base: str, count: int, options: dict[str, Any]) -> list[object]:
    async def send() -> list[httpx.Response]:
        transport = AsyncBatchTransport(url, retries=0, **options)
        try:
            return await transport.send_all(_requests(base, count))
        finally:
            await transport.aclose()

    return [response.json() for response in asyncio.run(send())]


#: A block: a new client of the batch URL that sends ``count`` large requests, then is gone.
Block = Callable[[str, str, int, dict[str, Any]], list[object]]
CLIENTS: dict[str, Block] = {
    "batching": _batching,
    "httpx": _transport,
    "async-httpx": _async_transport,
}


def block(client: str, endpoint: Endpoint, count: int, **options: Any) -> None:
    """``count`` requests through a new client of ``client``'s kind: to /batch, or to /wide
    for a queue of SPLIT."""
    url = endpoint.wide if count == SPLIT else endpoint.url
    answers = CLIENTS[client](url, endpoint.base, count, options)
    assert answers == [{"number": n, "sent": DOCUMENT} for n in range(count)]


def posts(coding: str | None, *statuses: int) -> list[Seen]:
    return [Seen("POST", coding, status) for status in statuses]


def seen(*requests: Seen | list[Seen]) -> list[Seen]:
    """What the server should have seen (:func:`in_order`)."""
    return in_order(
        one for each in requests for one in (each if isinstance(each, list) else [each])
    )


DISCOVERY = Seen("GET", None, 200)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_second_block_compresses_its_first_large_batch(client: str, endpoint: Endpoint) -> None:
    block(client, endpoint, LARGE)  # nothing known: as it is; the answer says gzip is taken
    assert endpoint.taken() == posts(None, 200)
    block(client, endpoint, LARGE)  # a new client, knowing it
    assert endpoint.taken() == posts("gzip", 200)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_second_block_does_not_ask_for_the_limits_again(client: str, endpoint: Endpoint) -> None:
    block(client, endpoint, SPLIT)  # described, its first batches beside (100 parts, then 1)
    assert endpoint.taken() == seen(DISCOVERY, posts(None, 200, 200))
    block(client, endpoint, SPLIT)  # it takes 200 parts, and gzip
    assert endpoint.taken() == posts("gzip", 200)


def test_sync_and_async_clients_share_what_they_know(endpoint: Endpoint) -> None:
    block("async-httpx", endpoint, SPLIT)
    assert endpoint.taken() == seen(DISCOVERY, posts(None, 200, 200))
    block("batching", endpoint, SPLIT)
    block("httpx", endpoint, SPLIT)
    assert endpoint.taken() == posts("gzip", 200, 200)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_limit_learned_from_a_413_bounds_the_next_block(client: str, endpoint: Endpoint) -> None:
    # discover=False: a 413 teaches the limit, and a client that never asks reads it too.
    block(client, endpoint, MAX_PARTS + 1, discover=False)
    assert endpoint.taken() == seen(posts(None, 413), posts(None, 200), posts(None, 200))
    block(client, endpoint, MAX_PARTS + 1, discover=False)
    assert endpoint.taken() == seen(posts("gzip", 200), posts(None, 200))  # 60 parts, then 1


def test_a_clients_configured_limits_bound_only_it(endpoint: Endpoint) -> None:
    block("batching", endpoint, 2, max_parts=1)  # split under its own limit: described too
    assert endpoint.taken() == seen(DISCOVERY, posts(None, 200, 200))
    block("batching", endpoint, 2)
    assert endpoint.taken() == posts(None, 200)


def test_a_long_lived_client_sees_what_another_learned(endpoint: Endpoint) -> None:
    kept = Batching(endpoint.url, retries=0, discover=False)
    block("httpx", endpoint, MAX_PARTS + 1, discover=False)  # learns max_parts from a 413
    endpoint.taken()
    with kept:
        for n in range(MAX_PARTS + 1):
            kept.post(f"{endpoint.base}/items/{n}", json=DOCUMENT)
    assert endpoint.taken() == seen(posts("gzip", 200), posts(None, 200))


@pytest.mark.parametrize("client", CLIENTS)
def test_forgotten_the_next_block_starts_as_a_new_process(client: str, endpoint: Endpoint) -> None:
    block(client, endpoint, SPLIT)
    endpoint.taken()
    forget_endpoints()
    block(client, endpoint, LARGE)
    forget_endpoints()
    block(client, endpoint, SPLIT)
    assert endpoint.taken() == seen(posts(None, 200), DISCOVERY, posts(None, 200, 200))


def test_knowledge_too_old_is_gathered_again(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(KNOWN_ENDPOINTS, "clock", lambda: now[0])
    block("batching", endpoint, SPLIT)
    now[0] += KNOWN_ENDPOINTS.max_age  # just as old as may be: still known
    block("batching", endpoint, SPLIT)
    assert endpoint.taken() == seen(DISCOVERY, posts(None, 200, 200), posts("gzip", 200))
    now[0] += 1
    block("batching", endpoint, SPLIT)
    assert endpoint.taken() == seen(DISCOVERY, posts(None, 200, 200))


def test_a_gzip_refusal_is_shared_until_forgotten() -> None:
    known = SharedKnowledge()
    first = KnownLimits(shared=lambda: known.of("http://api.test/batch"))
    first.heard("gzip")
    first.refuse_gzip()
    first.heard("gzip")  # an answer says it again: something on the way still refuses it
    second = KnownLimits(shared=lambda: known.of("HTTP://API.test:80/batch"))  # the same URL
    assert (first.takes_gzip, second.takes_gzip) == (False, False)
    known.forget()
    second.renew()
    second.heard("gzip")
    assert second.takes_gzip


def test_the_knowledge_of_different_urls_is_apart() -> None:
    known = SharedKnowledge()
    urls = [
        "http://a.test/batch",
        "https://a.test/batch",
        "http://a.test/other",
        "http://b.test/batch",
    ]
    records = [known.of(url) for url in urls]
    assert len({id(record) for record in records}) == len(urls)
    assert [known.of(url) for url in urls] == records


def test_the_least_recently_used_endpoint_is_forgotten_beyond_the_bound() -> None:
    known = SharedKnowledge(most=2)
    a, b = known.of("http://a.test/batch"), known.of("http://b.test/batch")
    assert known.of("http://a.test/batch") is a
    known.of("http://c.test/batch")  # b was the least recently used
    assert known.of("http://a.test/batch") is a
    assert known.of("http://b.test/batch") is not b


def test_threads_asking_at_once_share_one_record() -> None:
    known = SharedKnowledge()
    together = threading.Barrier(8)
    got: list[EndpointKnowledge] = []

    def ask() -> None:
        together.wait(timeout=5)
        got.append(known.of("http://a.test/batch"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert len(got) == 8
    assert all(record is got[0] for record in got)


def test_a_forked_child_keeps_what_its_parent_knew() -> None:
    code = """
import os
from flask_batch.client._core.limits import KnownLimits
from flask_batch.client._drivers import KNOWN_ENDPOINTS

url = "http://api.test/batch"
KnownLimits(shared=lambda: KNOWN_ENDPOINTS.of(url)).learn("max_parts", 7)
pid = os.fork()
if pid == 0:
    known = KnownLimits(shared=lambda: KNOWN_ENDPOINTS.of(url))
    os._exit(0 if known.max_parts == 7 else 1)
_, status = os.waitpid(pid, 0)
assert status == 0, status
"""
    result = run_in_child(code)
    assert result.returncode == 0, result.stderr
