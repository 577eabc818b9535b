"""The httpx transports send, for each batched request, exactly what httpx itself would send.

Why: the transports' fast path (issue 14) converts an ``httpx.Request`` into a part with
shortcuts of its own, and a shortcut that dropped a header, reordered a query or re-encoded a
body would change what the server runs, silently. So each call of a wide set (client and
request settings: base URL, headers, cookies, params, auth flows, event hooks; bodies as
``json``, ``data``, ``content``, ``files``, streamed) is made twice: once through a plain
``httpx.Client`` (or ``AsyncClient``) whose transport records the request it is given (what
httpx would put on the wire), once batched; the batch's parts are read back with the
server's own readers, and each part must be that request: its method, its target (path and
query, byte for byte), its headers in order with their values (less those of the
connection, which the batch request carries: ``Host``, ``Content-Length`` and the hop-by-hop
ones), and its body, byte for byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from flask_batch.client._core.formats import FormatName
from flask_batch.client.httpx import AsyncBatchTransport, BatchTransport
from flask_batch.wire.http1 import HOP_BY_HOP
from flask_batch.wire.model import SubRequest
from tests.fake_batch import BASE, BATCH_URL, FakeEndpoint

#: What a part does not carry: the headers of the connection (docs/design.md section 3).
_CONNECTION = {name.encode("latin-1") for name in HOP_BY_HOP} | {b"host", b"content-length"}
_BOUNDARY = "equivalence-boundary-3f2a"


class TokenAuth(httpx.Auth):
    """An auth flow of the caller's own: one header, and a second it derives from the
    request (so it must see the request as built)."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = "Token s3cret"
        request.headers["X-Signed-Path"] = request.url.raw_path.decode("ascii")
        yield request


def callable_auth(request: httpx.Request) -> httpx.Request:
    request.headers["X-Callable-Auth"] = "yes"
    return request


def stamp(request: httpx.Request) -> None:
    """A request event hook that changes the request."""
    request.headers["X-Hooked"] = request.method.lower()


async def async_stamp(request: httpx.Request) -> None:
    stamp(request)


@dataclass(frozen=True)
class Setup:
    """How a client is made: its keyword arguments (``event_hooks`` apart, sync or async)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    hooked: bool = False

    def client_options(self, *, asynchronous: bool) -> dict[str, Any]:
        options = dict(self.options)
        if self.hooked:
            options["event_hooks"] = {"request": [async_stamp if asynchronous else stamp]}
        return options


SETUPS = [
    Setup("plain"),
    Setup(
        "configured",
        {
            "base_url": f"{BASE}/api/v2/",
            "headers": {"X-Client": "configured", "Accept": "application/json"},
            "cookies": {"session": "abc123", "theme": "dark"},
            "params": {"tenant": "t1", "lang": "fr"},
            "auth": ("ada", "lovelace"),
        },
    ),
    Setup("token auth and hooks", {"auth": TokenAuth()}, hooked=True),
    Setup("callable auth", {"auth": callable_auth, "headers": {"User-Agent": "custom/1.0"}}),
]


@dataclass(frozen=True)
class Call:
    """One call: ``method``, ``url`` and keyword arguments; ``stream``: a body made on each
    use by this function (an iterator, which can be read once)."""

    method: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    stream: Callable[[], Iterator[bytes]] | None = None

    def kwargs(self) -> dict[str, Any]:
        options = dict(self.options)
        if self.stream is not None:
            options["content"] = self.stream()
        return options

    def async_kwargs(self) -> dict[str, Any]:
        options = dict(self.options)
        if self.stream is not None:
            chunks = list(self.stream())

            async def stream() -> AsyncIterator[bytes]:
                for chunk in chunks:
                    yield chunk

            options["content"] = stream()
        return options


def _chunks() -> Iterator[bytes]:
    yield b"first chunk, "
    yield "second: caf\u00e9".encode()


CALLS = [
    Call("GET", f"{BASE}/items/1"),
    Call("GET", f"{BASE}/items?sort=name&sort=-id"),
    Call("GET", f"{BASE}/search", {"params": {"q": "caf\u00e9 & cr\u00e8me", "page": 2}}),
    Call("GET", f"{BASE}/search?fixed=1", {"params": [("tag", "a"), ("tag", "b"), ("e", "")]}),
    Call("GET", f"{BASE}/odd%20path/%E2%9C%93/x;y=1?a=%2F&b=c+d"),
    Call("GET", f"{BASE}/fragment?x=1#not-sent"),
    Call(
        "GET",
        f"{BASE}/headers",
        {"headers": [("X-Twice", "one"), ("x-twice", "two"), ("X-Empty", ""), ("ETag", '"v"')]},
    ),
    Call("GET", f"{BASE}/latin", {"headers": {"X-Latin": "caf\u00e9".encode("latin-1")}}),
    Call("HEAD", f"{BASE}/items/2"),
    Call("OPTIONS", f"{BASE}/items"),
    Call("DELETE", f"{BASE}/items/3", {"headers": {"If-Match": '"etag-3"'}}),
    Call("POST", f"{BASE}/items", {"json": {"name": "caf\u00e9", "tags": [1, 2.5, None, True]}}),
    Call("PUT", f"{BASE}/items/4", {"json": [1, "two", {"three": 3}]}),
    Call("PATCH", f"{BASE}/items/5", {"data": {"name": "x y", "multi": ["1", "2"]}}),
    Call("POST", f"{BASE}/raw", {"content": b"\x00\x01binary\r\n--not-a-boundary\r\n\xff"}),
    Call("POST", f"{BASE}/text", {"content": "unicode text \u2713"}),
    Call(
        "POST",
        f"{BASE}/typed",
        {"content": b"<a/>", "headers": {"Content-Type": "application/xml; charset=utf-8"}},
    ),
    Call(
        "POST",
        f"{BASE}/upload",
        {
            "data": {"field": "value"},
            "files": {"file": ("report.csv", b"a,b\r\n1,2\r\n", "text/csv")},
            "headers": {"Content-Type": f"multipart/form-data; boundary={_BOUNDARY}"},
        },
    ),
    Call("POST", f"{BASE}/streamed", stream=_chunks),
    Call("PUT", f"{BASE}/empty", {"content": b""}),
    Call("GET", f"{BASE}/auth", {"auth": httpx.BasicAuth("grace", "hopper")}),
    Call("GET", f"{BASE}/bearer", {"headers": {"Authorization": "Bearer t0k"}}),
]

#: Calls whose URL a client with a ``base_url`` writes relative to it.
RELATIVE = [
    Call("GET", "items/7", {"params": {"extra": "1"}}),
    Call("POST", "items", {"json": {"relative": True}}),
]


def _calls(setup: Setup, format: FormatName = "multipart") -> list[Call]:
    """The calls made with ``setup``; in JSON, those it can carry (a body needs a type)."""
    calls = CALLS + (RELATIVE if "base_url" in setup.options else [])
    if format == "json":
        sent = _recorded(setup, calls)
        calls = [
            call
            for call, request in zip(calls, sent, strict=True)
            if not request.read() or "content-type" in request.headers
        ]
    return calls


def _recorded(setup: Setup, calls: list[Call]) -> list[httpx.Request]:
    """What httpx itself sends for ``calls``: the requests its transport is given."""
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        request.read()
        sent.append(request)
        return httpx.Response(204)

    options = setup.client_options(asynchronous=False)
    with httpx.Client(transport=httpx.MockTransport(record), **options) as client:
        for call in calls:
            client.request(call.method, call.url, **call.kwargs())
    return sent


def _assert_sends(parts: list[SubRequest], expected: list[httpx.Request]) -> None:
    assert len(parts) == len(expected)
    for part, request in zip(parts, expected, strict=True):
        where = f"{request.method} {request.url}"
        assert part.method == request.method, where
        assert part.target == request.url.raw_path.decode("ascii"), where
        carried = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.lower() not in _CONNECTION
        ]
        # The encoder frames a body with its own Content-Length: the body's length.
        headers = [(n, v) for n, v in part.headers if n.lower() != "content-length"]
        framing = [value for name, value in part.headers if name.lower() == "content-length"]
        assert framing in ([], [str(len(part.body))]), where
        assert headers == carried, where
        assert part.body == request.read(), where


@pytest.mark.parametrize("format", ["multipart", "json"])
@pytest.mark.parametrize("setup", SETUPS, ids=[setup.name for setup in SETUPS])
def test_a_batch_scope_sends_what_httpx_would_send(setup: Setup, format: FormatName) -> None:
    calls = _calls(setup, format)
    endpoint = FakeEndpoint()
    transport = BatchTransport(
        BATCH_URL, transport=httpx.MockTransport(endpoint.httpx_handler), format=format
    )
    options = setup.client_options(asynchronous=False)
    with httpx.Client(transport=transport, **options) as client, transport.batch(client) as batch:
        for call in calls:
            batch.request(call.method, call.url, **call.kwargs())
    (parts,) = endpoint.parts
    _assert_sends(parts, _recorded(setup, calls))


@pytest.mark.parametrize("format", ["multipart", "json"])
@pytest.mark.parametrize("setup", SETUPS, ids=[setup.name for setup in SETUPS])
def test_the_async_transport_sends_what_httpx_would_send(setup: Setup, format: FormatName) -> None:
    calls = _calls(setup, format)
    endpoint = FakeEndpoint()
    transport = AsyncBatchTransport(
        BATCH_URL, transport=httpx.MockTransport(endpoint.httpx_handler), format=format
    )

    async def main() -> None:
        options = setup.client_options(asynchronous=True)
        async with httpx.AsyncClient(transport=transport, **options) as client:
            await asyncio.gather(
                *(client.request(call.method, call.url, **call.async_kwargs()) for call in calls)
            )

    asyncio.run(main())
    (parts,) = endpoint.parts  # issued together: one batch, in the order issued
    _assert_sends(parts, _recorded(setup, calls))


def test_send_all_sends_what_httpx_would_send() -> None:
    setup = SETUPS[1]
    calls = [call for call in _calls(setup) if "auth" not in call.options]  # a client's own
    endpoint = FakeEndpoint()
    transport = BatchTransport(BATCH_URL, transport=httpx.MockTransport(endpoint.httpx_handler))
    with httpx.Client(transport=transport, **setup.client_options(asynchronous=False)) as client:
        requests = [client.build_request(c.method, c.url, **c.kwargs()) for c in calls]
        transport.send_all(requests)
    (parts,) = endpoint.parts
    _assert_sends(parts, requests)
