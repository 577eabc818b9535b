"""The httpx transports: ``BatchTransport`` (explicit batches) and ``AsyncBatchTransport``
(transparent auto-batching of concurrent requests).

Why: a caller using ``httpx.Client`` or ``httpx.AsyncClient`` should get, for a batched
request, the very ``httpx.Response`` it would have got without batching (status, reason,
headers, exact content, ``json()``, ``raise_for_status()``, ``request``), while the
requests themselves travel together. So these tests run against a real server on
127.0.0.1 (``tests/client_app.py``, which echoes what it received) and compare; the
failures a real server will not produce on cue (429 with ``Retry-After``, a 503 batch, a
lost connection, a 413 naming a limit) come from the scripted endpoint in
``tests/fake_batch.py`` behind ``httpx.MockTransport``. Waits go through a fake sleep.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests

import flask_batch.client
from flask_batch.client import Batching, BatchNotSent, Retry
from flask_batch.client.httpx import (
    ATTEMPTS,
    AsyncBatchTransport,
    BatchTransport,
    HttpxBatchFailed,
    HttpxBatchResponse,
    UnsentRequestsWarning,
)
from tests.client_app import (
    BINARY,
    GZIPPED_TEXT,
    NOT_A_BATCH_ENDPOINT,
    TEXT,
    State,
    create_app,
)
from tests.fake_batch import (
    BASE,
    BATCH_URL,
    LOSE,
    FakeEndpoint,
    RequestsAdapter,
    status,
    too_large,
)
from tests.servers import live_server


@dataclass(frozen=True)
class Servers:
    base: str
    state: State
    #: Another origin (the same app on another port), which must never be batched.
    other: str
    other_state: State

    @property
    def batch_url(self) -> str:
        return self.base + "/batch"

    def posts(self) -> int:
        return self.state.posts("/batch")


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    state, other_state = State(), State()
    with live_server(create_app(state)) as base, live_server(create_app(other_state)) as other:
        yield Servers(base, state, other, other_state)


def b64decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def header(echo: dict[str, Any], name: str) -> str | None:
    values = [value for key, value in echo["headers"] if key.lower() == name.lower()]
    return values[0] if values else None


# -- sync: the batch scope ------------------------------------------------------------------


def test_a_scope_sends_one_batch_and_fills_real_httpx_responses(servers: Servers) -> None:
    base = servers.base
    transport = BatchTransport(servers.batch_url)
    posts = servers.posts()
    with httpx.Client(transport=transport) as client:
        with transport.batch(client) as batch:
            binary = batch.get(f"{base}/binary")
            text = batch.get(f"{base}/text")
            gzipped = batch.get(f"{base}/gzip")
            missing = batch.get(f"{base}/status/404")
            echoed = batch.post(f"{base}/echo/json", json={"name": "Zoë"})
            assert batch.pending == 5
        plain = client.get(f"{base}/binary")  # outside a scope: not batched
    assert servers.posts() == posts + 1

    assert isinstance(binary, httpx.Response)
    assert isinstance(binary, HttpxBatchResponse)
    assert (binary.status_code, binary.reason_phrase) == (203, "Binary Is Fine")
    assert binary.content == BINARY == plain.content
    for name in ("Content-Type", "Content-Length", "X-Custom", "x-lower", "Link"):
        assert binary.headers[name] == plain.headers[name]
    assert binary.links == plain.links
    assert binary.request.method == "GET"
    assert binary.url == f"{base}/binary"
    assert binary.http_version == "HTTP/1.1"
    assert binary.extensions[ATTEMPTS] == 1
    binary.raise_for_status()
    # Filled, it prints as every httpx.Response does.
    assert repr(binary) == "<Response [203 Binary Is Fine]>" == repr(plain)

    assert text.text == TEXT
    assert text.encoding == "utf-8"
    assert gzipped.content == GZIPPED_TEXT
    assert gzipped.headers["Content-Encoding"] == "gzip"
    with pytest.raises(httpx.HTTPStatusError, match="404 NOT FOUND"):
        missing.raise_for_status()
    assert missing.is_client_error
    echo = echoed.json()
    assert (echo["method"], echo["path"], echo["json"]) == ("POST", "/echo/json", {"name": "Zoë"})
    assert header(echo, "Content-Type") == "application/json"


def test_a_scope_builds_requests_as_its_client_does(servers: Servers) -> None:
    transport = BatchTransport(servers.batch_url)
    seen: list[str] = []
    client = httpx.Client(
        transport=transport,
        base_url=servers.base,
        headers={"X-Client": "yes"},
        params={"always": "1"},
        cookies={"session": "s1"},
        auth=("aladdin", "open sesame"),
        event_hooks={
            "request": [lambda request: seen.append(f"request {request.url.path}")],
            "response": [lambda response: seen.append(f"response {response.status_code}")],
        },
    )
    with client, transport.batch(client) as batch:
        echoed = batch.get("/echo/client", params={"q": "café"}, headers={"X-Call": "1"})
        cookies = batch.get("/cookies/set")
        assert seen == ["request /echo/client", "request /cookies/set"]
    echo = echoed.json()
    assert echo["path"] == "/echo/client"
    assert echo["args"] == {"always": ["1"], "q": ["café"]}
    assert (header(echo, "X-Client"), header(echo, "X-Call")) == ("yes", "1")
    assert echo["auth"] == ["basic", "aladdin", "open sesame"]
    assert echo["cookies"] == {"session": "s1"}
    assert seen[2:] == ["response 200", "response 200"]  # after every answer is in
    # Set-Cookie answers land in the client's jar, all three of them.
    assert cookies.headers.get_list("Set-Cookie")[0].startswith("flavour=oatmeal")
    assert dict(client.cookies) == {
        "session": "s1",
        "flavour": "oatmeal",
        "colour": "blue",
        "token": "abc123",
    }


def test_a_scope_without_a_client_and_in_json(servers: Servers) -> None:
    transport = BatchTransport(servers.batch_url, format="json")
    with transport, transport.batch() as batch:
        echoed = batch.put(f"{servers.base}/echo/put", json=[1, 2])
        deleted = batch.delete(f"{servers.base}/people/nobody/")
    assert echoed.json()["json"] == [1, 2]
    assert deleted.status_code == 204


def test_depends_on_in_a_scope(servers: Servers) -> None:
    transport = BatchTransport(servers.batch_url)
    base = servers.base
    with transport, transport.batch() as batch:
        failed = batch.get(f"{base}/status/500")
        skipped = batch.get(f"{base}/echo/skipped", depends_on=[failed])
        created = batch.patch(f"{base}/people/dora/", json={"age": 7})
        read = batch.get(f"{base}/people/dora/", depends_on=[created])
        with pytest.raises(ValueError, match="earlier in this scope"):
            batch.get(f"{base}/echo/x", depends_on=[httpx.Response(200)])
    assert skipped.status_code == 424
    assert read.json() == {"name": "dora", "age": 7}


def test_reading_before_the_scope_ends_raises_and_a_raising_scope_sends_nothing(
    servers: Servers,
) -> None:
    transport = BatchTransport(servers.batch_url)
    posts = servers.posts()
    queued: list[httpx.Response] = []

    def queue_then_fail() -> None:
        with transport.batch() as batch:
            queued.append(batch.get(f"{servers.base}/echo/early"))
            assert repr(queued[0]) == "<BatchResponse [pending]>"
            for name in ("status_code", "content", "json", "headers", "raise_for_status"):
                with pytest.raises(BatchNotSent, match="not been sent"):
                    getattr(queued[0], name)
            assert queued[0].request.url == f"{servers.base}/echo/early"
            raise KeyError("the caller failed")

    with pytest.raises(KeyError):
        queue_then_fail()
    assert servers.posts() == posts
    with pytest.raises(BatchNotSent, match="raised"):
        _ = queued[0].status_code


def test_a_scope_dropped_unsent_warns_when_collected_or_when_its_transport_closes(
    servers: Servers,
) -> None:
    """Nothing queued vanishes silently: a warning says which requests were never sent."""
    transport = BatchTransport(servers.batch_url)
    posts = servers.posts()
    scopes = [transport.batch()]
    created = scopes[0].post(f"{servers.base}/echo/never", json={})
    with pytest.warns(UnsentRequestsWarning) as warned:
        scopes.clear()  # the last reference: collected now
    assert str(warned[0].message) == (
        "a batch scope was garbage-collected before it was sent: 1 queued request was never "
        f"sent (POST {servers.base}/echo/never)"
    )
    with pytest.raises(BatchNotSent, match="garbage-collected"):
        _ = created.status_code

    kept = transport.batch()
    fetched = [kept.get(f"{servers.base}/echo/{index}") for index in range(2)]
    sent = transport.batch()  # a scope that was sent, and an empty one, say nothing
    sent.get(f"{servers.base}/echo/sent")
    sent.send()
    transport.batch()
    with pytest.warns(UnsentRequestsWarning, match="closed before its batch scope was sent: 2"):
        transport.close()
    assert kept.pending == 0
    for r in fetched:
        with pytest.raises(BatchNotSent, match="BatchTransport was closed"):
            _ = r.status_code
    assert servers.posts() == posts + 1


@pytest.mark.parametrize(("route", "status", "message"), NOT_A_BATCH_ENDPOINT)
def test_a_url_that_is_not_a_batch_endpoint_is_said_in_one_line(
    servers: Servers, route: str, status: int, message: str
) -> None:
    transport = BatchTransport(servers.base + route, retries=0)
    with pytest.raises(HttpxBatchFailed) as info, transport.batch() as batch:
        queued = batch.get(f"{servers.base}/echo/a")
    assert str(info.value) == message
    assert info.value.response is not None
    assert info.value.response.status_code == status
    assert info.value.response.text.startswith(("<!doctype html>", "{"))
    with pytest.raises(BatchNotSent) as unsent:
        _ = queued.status_code
    assert str(unsent.value) == message

    async def main() -> None:
        transport = AsyncBatchTransport(servers.base + route, retries=0)
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(HttpxBatchFailed) as info:
                await client.get(f"{servers.base}/echo/a")
        assert str(info.value) == message

    asyncio.run(main())


def test_a_missing_answer_fails_its_request_and_is_told_as_with_batching(
    servers: Servers,
) -> None:
    transport = BatchTransport(f"{servers.base}/fake/drop-second")
    batch = transport.batch()
    first, second, third = (batch.get(f"{servers.base}/echo/{index}") for index in range(3))
    with pytest.raises(HttpxBatchFailed) as info:
        batch.send()
    assert str(info.value) == "the batch answer has no part for 1 of 3 requests"
    assert info.value.requests == [second.request]
    assert (first.json()["answer_to"], third.json()["answer_to"]) == ("/echo/0", "/echo/2")
    with pytest.raises(BatchNotSent, match="no part for this request"):
        _ = second.status_code


def test_a_content_id_answered_twice_fails_the_batch_in_both_transports(servers: Servers) -> None:
    transport = BatchTransport(f"{servers.base}/fake/duplicate-id")
    batch = transport.batch()
    queued = [batch.get(f"{servers.base}/echo/{index}") for index in range(3)]
    with pytest.raises(HttpxBatchFailed, match=r"answered Content-ID <\S+\+0> twice") as info:
        batch.send()
    assert info.value.requests == [r.request for r in queued]
    for r in queued:
        with pytest.raises(BatchNotSent, match="twice"):
            _ = r.status_code

    async def main() -> None:
        transport = AsyncBatchTransport(f"{servers.base}/fake/duplicate-id", format="json")
        async with httpx.AsyncClient(transport=transport) as client:
            answers = await asyncio.gather(
                *(client.get(f"{servers.base}/echo/{index}") for index in range(3)),
                return_exceptions=True,
            )
        for answer in answers:
            assert isinstance(answer, HttpxBatchFailed)
            assert str(answer) == "the server answered id 1 twice"

    asyncio.run(main())


def test_an_answer_whose_content_lengths_differ_fails_the_batch_in_both_transports(
    servers: Servers,
) -> None:
    # Its framing is unknown: httpx took the first length, a silent guess; refused instead.
    message = "the batch answer is malformed: part 3: conflicting Content-Length values"
    transport = BatchTransport(f"{servers.base}/fake/two-lengths")
    batch = transport.batch()
    queued = [batch.get(f"{servers.base}/echo/{index}") for index in range(3)]
    with pytest.raises(HttpxBatchFailed, match=message):
        batch.send()
    for r in queued:
        with pytest.raises(BatchNotSent, match="conflicting Content-Length"):
            _ = r.status_code

    async def main() -> None:
        transport = AsyncBatchTransport(f"{servers.base}/fake/two-lengths")
        async with httpx.AsyncClient(transport=transport) as client:
            answers = await asyncio.gather(
                *(client.get(f"{servers.base}/echo/{index}") for index in range(3)),
                return_exceptions=True,
            )
        for answer in answers:  # the first two were settled as they arrived
            if isinstance(answer, httpx.Response):
                assert answer.status_code == 200
            else:
                assert isinstance(answer, HttpxBatchFailed)
                assert str(answer).startswith(message)
        assert isinstance(answers[2], HttpxBatchFailed)

    asyncio.run(main())


def test_follow_redirects_and_connection_extensions_are_refused_in_a_batch(
    servers: Servers,
) -> None:
    """A batched request has no connection of its own: what only one could honour is
    refused when it is queued, never silently dropped."""
    base = servers.base
    transport = BatchTransport(servers.batch_url)

    def trace(event: str, info: dict[str, Any]) -> None:
        pass

    with httpx.Client(transport=transport) as client, transport.batch(client) as batch:
        with pytest.raises(ValueError, match="follow_redirects=True cannot be honoured"):
            batch.get(f"{base}/redirect", follow_redirects=True)
        with pytest.raises(ValueError, match="extension 'trace' cannot be honoured"):
            batch.get(f"{base}/echo", extensions={"trace": trace})
        with pytest.raises(ValueError, match="extension 'sni_hostname'"):
            transport.send_all(
                [httpx.Request("GET", f"{base}/echo", extensions={"sni_hostname": "x"})]
            )
        redirect = batch.get(f"{base}/redirect", follow_redirects=False)
        default = batch.get(f"{base}/redirect", follow_redirects=httpx.USE_CLIENT_DEFAULT)
        assert batch.pending == 2
    assert redirect.status_code == default.status_code == 302

    traced: list[str] = []

    async def async_trace(event: str, info: dict[str, Any]) -> None:
        traced.append(event)

    async def main() -> None:
        transport = AsyncBatchTransport(servers.batch_url)
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(ValueError, match="extension 'trace'"):
                await client.get(f"{base}/echo", extensions={"trace": async_trace})
            assert traced == []
            # Another origin is not batched: its extensions are the wrapped transport's.
            other = await client.get(f"{servers.other}/echo", extensions={"trace": async_trace})
            assert other.status_code == 200
            assert traced

    asyncio.run(main())


def test_other_origins_pass_straight_through_in_order(servers: Servers) -> None:
    transport = BatchTransport(servers.batch_url)
    posts, other_posts = servers.posts(), servers.other_state.posts("/batch")
    with transport, transport.batch() as batch:
        here = batch.get(f"{servers.base}/echo/here")
        there = batch.get(f"{servers.other}/echo/there")
        described = batch.get(servers.batch_url)  # the batch URL itself: not nested
    assert here.json()["path"] == "/echo/here"
    assert there.json()["path"] == "/echo/there"
    assert ATTEMPTS not in there.extensions
    assert described.json()["max_parts"] == 100
    assert servers.posts() == posts + 1
    assert servers.other_state.posts("/batch") == other_posts


def test_a_passed_through_answer_that_breaks_while_read_leaves_its_response_unfilled() -> None:
    """A filled response drops its guard (issue 14's fast path): one whose reading failed
    must keep it, and say why it has no answer."""

    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b"a first piece"
            raise httpx.ReadError("the connection was lost")

    endpoint = FakeEndpoint()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "elsewhere.test":
            return httpx.Response(200, stream=Broken())
        return endpoint.httpx_handler(request)

    transport = BatchTransport(BATCH_URL, transport=httpx.MockTransport(handler))
    batch = transport.batch()
    batched = batch.get(f"{BASE}/here")
    broken = batch.get("http://elsewhere.test/there")
    after = batch.get("http://elsewhere.test/after")
    with pytest.raises(httpx.ReadError):
        batch.send()
    assert batched.json() == {"method": "GET", "path": "/here"}
    for response in (broken, after):
        with pytest.raises(BatchNotSent, match="could not be sent: the connection was lost"):
            _ = response.status_code


def test_send_all_returns_the_responses_in_order(servers: Servers) -> None:
    transport = BatchTransport(servers.batch_url)
    posts = servers.posts()
    with httpx.Client(transport=transport) as client:
        requests = [client.build_request("GET", f"{servers.base}/echo/{n}") for n in range(5)] + [
            client.build_request("GET", f"{servers.other}/echo/elsewhere")
        ]
        responses = transport.send_all(requests)
    assert [r.json()["path"] for r in responses] == [
        *(f"/echo/{n}" for n in range(5)),
        "/echo/elsewhere",
    ]
    assert [r.request for r in responses] == requests
    assert servers.posts() == posts + 1


def test_a_streaming_request_body_is_read_once(servers: Servers) -> None:
    reads: list[int] = []

    def chunks() -> Iterator[bytes]:
        reads.append(1)
        yield b"first,"
        yield b"second"

    transport = BatchTransport(servers.batch_url)
    with transport, transport.batch() as batch:
        echoed = batch.post(f"{servers.base}/echo/stream", content=chunks())
    echo = echoed.json()
    assert b64decode(echo["body"]) == b"first,second"
    assert header(echo, "Content-Length") == "12"
    assert header(echo, "Transfer-Encoding") is None
    assert reads == [1]


# -- async: transparent auto-batching ---------------------------------------------------------


def test_100_concurrent_gets_make_exactly_one_batch_post(servers: Servers) -> None:
    async def main() -> list[httpx.Response]:
        transport = AsyncBatchTransport(servers.batch_url)
        async with httpx.AsyncClient(transport=transport) as client:
            return await asyncio.gather(
                *(client.get(f"{servers.base}/echo/{n}") for n in range(100))
            )

    posts = servers.posts()
    responses = asyncio.run(main())
    assert servers.posts() == posts + 1  # counted at the server
    assert [r.json()["path"] for r in responses] == [f"/echo/{n}" for n in range(100)]
    for n, response in enumerate(responses):
        assert isinstance(response, httpx.Response)
        assert response.request.url == f"{servers.base}/echo/{n}"
        assert response.extensions[ATTEMPTS] == 1
        response.raise_for_status()


def test_concurrent_requests_of_every_kind_come_back_as_they_would_alone(
    servers: Servers,
) -> None:
    base = servers.base

    async def main() -> tuple[tuple[httpx.Response, ...], tuple[httpx.Response, ...]]:
        transport = AsyncBatchTransport(servers.batch_url, sleep=Sleeps())
        async with httpx.AsyncClient(transport=transport) as client:
            batched = await asyncio.gather(
                client.get(f"{base}/binary"),
                client.head(f"{base}/binary"),
                client.post(f"{base}/mirror", content=BINARY),
                client.put(f"{base}/echo/put", json={"a": 1}),
                client.get(f"{base}/gzip"),
                client.get(f"{base}/status/503"),  # retried, and still 503
            )
        async with httpx.AsyncClient() as plain_client:
            plain = await asyncio.gather(
                plain_client.get(f"{base}/binary"), plain_client.head(f"{base}/binary")
            )
        return batched, plain

    (binary, head, mirrored, put, gzipped, unavailable), (plain, plain_head) = asyncio.run(main())
    assert (binary.status_code, binary.reason_phrase, binary.content) == (
        plain.status_code,
        plain.reason_phrase,
        plain.content,
    )
    assert (head.content, head.headers["Content-Length"]) == (
        plain_head.content,
        plain_head.headers["Content-Length"],
    )
    assert mirrored.content == BINARY
    assert put.json()["json"] == {"a": 1}
    assert gzipped.text == GZIPPED_TEXT.decode()
    assert (unavailable.status_code, unavailable.extensions[ATTEMPTS]) == (503, 3)


def test_other_origins_pass_through_while_the_rest_is_batched(servers: Servers) -> None:
    async def main() -> list[httpx.Response]:
        transport = AsyncBatchTransport(servers.batch_url)
        async with httpx.AsyncClient(transport=transport) as client:
            return await asyncio.gather(
                *(client.get(f"{servers.base}/echo/{n}") for n in range(3)),
                client.get(f"{servers.other}/echo/elsewhere"),
            )

    posts = servers.posts()
    responses = asyncio.run(main())
    assert servers.posts() == posts + 1
    assert responses[3].json()["path"] == "/echo/elsewhere"
    assert ATTEMPTS not in responses[3].extensions


def test_requests_made_one_after_another_go_in_separate_batches(servers: Servers) -> None:
    async def main() -> None:
        transport = AsyncBatchTransport(servers.batch_url)
        async with httpx.AsyncClient(transport=transport) as client:
            first = await client.get(f"{servers.base}/echo/1")
            second = await client.get(f"{servers.base}/echo/2")
            assert [first.json()["path"], second.json()["path"]] == ["/echo/1", "/echo/2"]

    posts = servers.posts()
    asyncio.run(main())
    assert servers.posts() == posts + 2


def test_a_size_cap_closes_the_window(servers: Servers) -> None:
    async def main() -> list[httpx.Response]:
        transport = AsyncBatchTransport(servers.batch_url, max_batch=10)
        async with httpx.AsyncClient(transport=transport) as client:
            return await asyncio.gather(
                *(client.get(f"{servers.base}/echo/{n}") for n in range(25))
            )

    posts = servers.posts()
    responses = asyncio.run(main())
    assert servers.posts() == posts + 3
    assert [r.json()["path"] for r in responses] == [f"/echo/{n}" for n in range(25)]


def test_async_streaming_bodies_cookies_redirects_and_json(servers: Servers) -> None:
    reads: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        reads.append(1)
        yield b"async,"
        yield b"body"

    async def main() -> None:
        transport = AsyncBatchTransport(servers.batch_url, format="json")
        async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
            streamed, cookies, redirected = await asyncio.gather(
                client.post(
                    f"{servers.base}/mirror",
                    content=chunks(),
                    headers={"Content-Type": "application/octet-stream"},
                ),
                client.get(f"{servers.base}/cookies/set"),
                client.get(f"{servers.base}/redirect"),
            )
            assert streamed.content == b"async,body"
            assert cookies.json() == {"set": True}
            assert dict(client.cookies) == {
                "flavour": "oatmeal",
                "colour": "blue",
                "token": "abc123",
            }
            assert redirected.json()["path"] == "/echo/target"
            assert [r.status_code for r in redirected.history] == [302]

    asyncio.run(main())
    assert reads == [1]


def test_async_send_all(servers: Servers) -> None:
    async def main() -> list[httpx.Response]:
        transport = AsyncBatchTransport(servers.batch_url)
        async with httpx.AsyncClient(transport=transport) as client:
            requests = [client.build_request("GET", f"{servers.base}/echo/{n}") for n in range(4)]
            requests.append(client.build_request("GET", f"{servers.other}/echo/x"))
            return await transport.send_all(requests)

    posts = servers.posts()
    responses = asyncio.run(main())
    assert [r.json()["path"] for r in responses] == [*(f"/echo/{n}" for n in range(4)), "/echo/x"]
    assert servers.posts() == posts + 1


# -- error injection: the scripted endpoint behind httpx.MockTransport ------------------------


class Sleeps:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def async_transport(endpoint: FakeEndpoint, sleep: Sleeps, **options: Any) -> AsyncBatchTransport:
    return AsyncBatchTransport(
        BATCH_URL, transport=httpx.MockTransport(endpoint.httpx_handler), sleep=sleep, **options
    )


def gather(transport: AsyncBatchTransport, *calls: tuple[str, str]) -> list[Any]:
    """Issue ``calls`` (method, path) concurrently; each result, or the exception raised."""

    async def main() -> list[Any]:
        async with httpx.AsyncClient(transport=transport) as client:
            return await asyncio.gather(
                *(client.request(method, BASE + path) for method, path in calls),
                return_exceptions=True,
            )

    return asyncio.run(main())


def test_async_a_part_answered_429_waits_for_its_retry_after() -> None:
    endpoint, sleep = FakeEndpoint(), Sleeps()
    endpoint.fail("/b", (429, (("Retry-After", "2"),)))
    a, b = gather(async_transport(endpoint, sleep), ("GET", "/a"), ("GET", "/b"))
    assert endpoint.batches == [["GET /a", "GET /b"], ["GET /b"]]
    assert sleep.slept == pytest.approx([2.0], abs=0.05)
    assert (a.extensions[ATTEMPTS], b.extensions[ATTEMPTS]) == (1, 2)
    assert b.json() == {"method": "GET", "path": "/b"}


def test_async_a_503_batch_is_sent_again() -> None:
    endpoint, sleep = FakeEndpoint(), Sleeps()
    endpoint.outcomes = [status(503, ("Retry-After", "1"))]
    (a,) = gather(async_transport(endpoint, sleep), ("GET", "/a"))
    assert (a.status_code, a.extensions[ATTEMPTS]) == (200, 2)
    assert len(endpoint.batches) == 2


def test_async_a_lost_connection_retries_the_get_and_fails_the_post() -> None:
    endpoint, sleep = FakeEndpoint(), Sleeps()
    endpoint.outcomes = [LOSE]
    got, posted = gather(async_transport(endpoint, sleep), ("GET", "/a"), ("POST", "/p"))
    assert endpoint.batches == [["GET /a", "POST /p"], ["GET /a"]]
    assert (got.status_code, got.extensions[ATTEMPTS]) == (200, 2)
    assert isinstance(posted, HttpxBatchFailed)
    assert isinstance(posted, httpx.TransportError)
    assert isinstance(posted.__cause__, httpx.ReadError)
    assert posted.request.url == BASE + "/p"
    assert "could not be sent" in str(posted)


def test_async_posts_are_retried_when_the_user_opts_in() -> None:
    endpoint, sleep = FakeEndpoint(), Sleeps()
    endpoint.outcomes = [LOSE]
    (posted,) = gather(
        async_transport(endpoint, sleep, retries=Retry(methods=None)), ("POST", "/p")
    )
    assert (posted.status_code, posted.extensions[ATTEMPTS]) == (200, 2)


def test_async_a_413_naming_max_parts_re_splits_the_batch() -> None:
    endpoint, sleep = FakeEndpoint(max_parts=2), Sleeps()
    transport = async_transport(endpoint, sleep)
    responses = gather(transport, *(("GET", f"/{n}") for n in range(5)))
    assert [len(batch) for batch in endpoint.batches] == [5, 2, 2, 1]
    assert [r.json()["path"] for r in responses] == [f"/{n}" for n in range(5)]
    assert transport.limits.max_parts == 2


def test_async_discovery_happens_once_and_sizes_the_batches() -> None:
    endpoint, sleep = FakeEndpoint(description={"max_parts": 1000}), Sleeps()
    transport = async_transport(endpoint, sleep, max_batch=500)
    gather(transport, *(("GET", f"/{n}") for n in range(150)))
    gather(transport, *(("GET", f"/{n}") for n in range(150)))
    assert endpoint.discoveries == 1
    # The first batches went beside the discovery, cut under the 100 parts assumed until then.
    assert [len(batch) for batch in endpoint.batches] == [100, 50, 150]


def test_async_windows_needing_discovery_at_once_ask_once() -> None:
    endpoint, sleep = FakeEndpoint(description={"max_parts": 1000}), Sleeps()
    transport = async_transport(endpoint, sleep, max_batch=150)
    responses = gather(transport, *(("GET", f"/{n}") for n in range(300)))
    assert endpoint.discoveries == 1
    # Each window's batches went beside the discovery (the second's waited on the first's).
    assert sorted(len(batch) for batch in endpoint.batches) == [50, 50, 100, 100]
    assert [r.json()["path"] for r in responses] == [f"/{n}" for n in range(300)]


def test_async_a_batch_refused_for_good_fails_each_caller() -> None:
    endpoint, sleep = FakeEndpoint(), Sleeps()
    endpoint.outcomes = [status(400, ("Content-Type", "text/plain"), body=b"bad")]
    a, b = gather(async_transport(endpoint, sleep), ("GET", "/a"), ("GET", "/b"))
    for failure, path in ((a, "/a"), (b, "/b")):
        assert isinstance(failure, HttpxBatchFailed)
        assert failure.response is not None
        assert failure.response.status_code == 400
        assert failure.requests == [failure.request]
        assert failure.request.url == BASE + path
    assert a is not b


def test_async_a_request_too_large_fails_alone() -> None:
    endpoint, sleep = FakeEndpoint(), Sleeps()
    endpoint.outcomes = [too_large("max_header_size", 16384, part=1)]
    big, fine = gather(async_transport(endpoint, sleep), ("GET", "/big"), ("GET", "/fine"))
    assert isinstance(big, HttpxBatchFailed)
    assert "max_header_size" in str(big)
    assert fine.json()["path"] == "/fine"


def test_async_split_batches_can_be_in_flight_at_once() -> None:
    endpoint = FakeEndpoint()
    arrived: list[int] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        arrived.append(1)
        for _ in range(200):  # wait (up to ~1 s) for the other batch to arrive
            if len(arrived) >= 2:
                break
            await asyncio.sleep(0.005)
        return endpoint.httpx_handler(request)

    transport = AsyncBatchTransport(
        BATCH_URL, transport=httpx.MockTransport(handler), max_parts=1, concurrency=2
    )
    first, second = gather(transport, ("GET", "/1"), ("GET", "/2"))
    assert len(arrived) == 2
    assert [first.json()["path"], second.json()["path"]] == ["/1", "/2"]


def test_async_a_cancelled_caller_is_left_out() -> None:
    endpoint = FakeEndpoint()

    async def main() -> tuple[httpx.Response, httpx.Response]:
        transport = AsyncBatchTransport(
            BATCH_URL, transport=httpx.MockTransport(endpoint.httpx_handler)
        )
        async with httpx.AsyncClient(transport=transport) as client:
            tasks = [asyncio.ensure_future(client.get(f"{BASE}/{n}")) for n in range(3)]
            await asyncio.sleep(0)  # every task is now waiting for the batch
            tasks[1].cancel()
            done = await asyncio.gather(tasks[0], tasks[2])
            assert tasks[1].cancelled()
            return done

    first, third = asyncio.run(main())
    assert endpoint.batches == [["GET /0", "GET /2"]]
    assert [first.json()["path"], third.json()["path"]] == ["/0", "/2"]


def test_the_batch_request_carries_the_headers_every_part_agrees_on() -> None:
    endpoint = FakeEndpoint()
    transport = async_transport(endpoint, Sleeps())

    async def main() -> None:
        async with httpx.AsyncClient(
            transport=transport, headers={"Authorization": "Bearer t0ken"}
        ) as client:
            await asyncio.gather(
                client.get(f"{BASE}/a", headers={"X-Only-A": "1"}), client.get(f"{BASE}/b")
            )

    asyncio.run(main())
    (outer,) = endpoint.batch_headers
    assert outer["authorization"] == "Bearer t0ken"
    assert outer["user-agent"].startswith("python-httpx/")
    assert "x-only-a" not in outer
    assert outer["content-type"].startswith("multipart/mixed; boundary=")


def test_sync_send_all_reports_what_failed_and_keeps_what_came() -> None:
    endpoint = FakeEndpoint()
    endpoint.outcomes = [LOSE]
    slept: list[float] = []
    transport = BatchTransport(
        BATCH_URL, transport=httpx.MockTransport(endpoint.httpx_handler), sleep=slept.append
    )
    requests = [httpx.Request("GET", f"{BASE}/a"), httpx.Request("POST", f"{BASE}/p")]
    with pytest.raises(HttpxBatchFailed, match="could not be sent") as info:
        transport.send_all(requests)
    assert info.value.requests == [requests[1]]
    got, lost = info.value.responses
    assert got is not None
    assert (got.json()["path"], got.extensions[ATTEMPTS]) == ("/a", 2)
    assert lost is None
    assert isinstance(info.value.__cause__, httpx.ReadError)
    assert len(slept) == 1


def test_sync_scope_retries_and_re_splits_too() -> None:
    endpoint = FakeEndpoint(max_parts=2)
    endpoint.fail("/1", (503, (("Retry-After", "1"),)))
    slept: list[float] = []
    transport = BatchTransport(
        BATCH_URL,
        transport=httpx.MockTransport(endpoint.httpx_handler),
        sleep=slept.append,
        concurrency=1,  # the batches in order, and the one wait recorded
    )
    with transport.batch() as batch:
        queued = [batch.get(f"{BASE}/{n}") for n in range(3)]
    assert [r.json()["path"] for r in queued] == ["/0", "/1", "/2"]
    assert [r.extensions[ATTEMPTS] for r in queued] == [1, 2, 1]
    assert [len(batch) for batch in endpoint.batches] == [3, 2, 1, 1]
    assert slept == pytest.approx([1.0], abs=0.05)


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        BatchTransport(BATCH_URL, format="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="concurrency"):
        AsyncBatchTransport(BATCH_URL, concurrency=0)
    with pytest.raises(ValueError, match="window"):
        AsyncBatchTransport(BATCH_URL, window=-1)
    with pytest.raises(ValueError, match="max_batch"):
        AsyncBatchTransport(BATCH_URL, max_batch=0)
    with pytest.raises(ValueError, match="max_parts"):
        AsyncBatchTransport(BATCH_URL, max_parts=0)


def test_one_except_clause_catches_the_batch_failures_of_every_client() -> None:
    endpoint = FakeEndpoint()
    endpoint.outcomes = [status(400, ("Content-Type", "text/plain"), body=b"bad")] * 2
    transport = BatchTransport(BATCH_URL, transport=httpx.MockTransport(endpoint.httpx_handler))
    with pytest.raises(flask_batch.client.BatchFailed) as from_httpx:
        transport.send_all([httpx.Request("GET", f"{BASE}/a")])
    assert isinstance(from_httpx.value, httpx.TransportError)
    session = Batching(BATCH_URL)
    session.mount(BASE, RequestsAdapter(endpoint))
    session.get(f"{BASE}/a")
    with pytest.raises(flask_batch.client.BatchFailed) as from_requests:
        session.send_batch()
    assert isinstance(from_requests.value, requests.HTTPError)
    for failure in (from_httpx.value, from_requests.value):
        assert str(failure).startswith("the batch failed with 400 ")
        assert str(failure).endswith(": bad")
        assert failure.response is not None
        assert failure.response.status_code == 400
