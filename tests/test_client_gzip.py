"""The clients and gzip, both ways, against a real endpoint: each asks for a compressed
answer and decodes it; each compresses a batch body larger than ``COMPRESS_ABOVE`` once the
endpoint has said it takes gzip (its answers' ``Accept-Encoding``, or its description), and
only then; a ``415`` to a compressed batch sends it again as it is, and compression stays
off for that client. ``Batching``, ``BatchTransport`` and ``AsyncBatchTransport`` alike (the
decisions are the sans-IO run's: client/_core/run.py)."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from flask import Flask, request

from flask_batch import add_batch_route
from flask_batch.client import Batching, forget_endpoints
from flask_batch.client._core.limits import KnownLimits
from flask_batch.client._core.run import COMPRESS_ABOVE, Run
from flask_batch.client.httpx import AsyncBatchTransport, BatchTransport
from flask_batch.wire.model import SubRequest

from .servers import live_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


@dataclass
class Exchanges:
    """The batch POSTs that reached the server: their Content-Encoding, and the answer's."""

    sent: list[str | None] = field(default_factory=list)
    answered: list[str | None] = field(default_factory=list)
    #: Refuse a compressed body with 415, as a proxy that takes none would.
    refuse_compressed: bool = False


def _recording(app: WSGIApplication, exchanges: Exchanges) -> WSGIApplication:
    def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] != "POST" or environ["PATH_INFO"] != "/batch":
            return app(environ, start_response)
        coding = environ.get("HTTP_CONTENT_ENCODING")
        exchanges.sent.append(coding)
        if coding is not None and exchanges.refuse_compressed:
            environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
            exchanges.answered.append(None)
            start_response("415 Unsupported Media Type", [("Content-Length", "0")])
            return [b""]

        def recorded(status: str, headers: list[tuple[str, str]], *rest: object) -> object:
            exchanges.answered.append(dict(headers).get("Content-Encoding"))
            return start_response(status, headers, *rest)  # type: ignore[arg-type]

        return app(environ, recorded)  # type: ignore[arg-type]

    return application


@pytest.fixture
def served() -> Iterator[tuple[str, Exchanges]]:
    app = Flask(__name__)

    @app.post("/items/<int:number>")
    def item(number: int) -> dict[str, object]:
        return {"number": number, "sent": request.get_json()}

    add_batch_route(app, "/batch")
    exchanges = Exchanges()
    with live_server(_recording(app, exchanges)) as base:
        yield base, exchanges


#: A batch of these is well over COMPRESS_ABOVE; one alone is under it.
LARGE = 40
DOCUMENT = {"name": "a name long enough to matter", "tags": ["one", "two", "three"]}


def _with_batching(base: str, **options: Any) -> Callable[[int], list[dict[str, object]]]:
    session = Batching(f"{base}/batch", retries=0, **options)

    def send(count: int) -> list[dict[str, object]]:
        responses = [session.post(f"{base}/items/{n}", json=DOCUMENT) for n in range(count)]
        session.send_batch()
        return [response.json() for response in responses]

    return send


def _requests(base: str, count: int) -> list[httpx.Request]:
    return [httpx.Request("POST", f"{base}/items/{n}", json=DOCUMENT) for n in range(count)]


def _with_transport(base: str, **options: Any) -> Callable[[int], list[dict[str, object]]]:
    transport = BatchTransport(f"{base}/batch", retries=0, **options)

    def send(count: int) -> list[dict[str, object]]:
        return [response.json() for response in transport.send_all(_requests(base, count))]

    return send


def _with_async_transport(base: str, **options: Any) -> Callable[[int], list[dict[str, object]]]:
    transport = AsyncBatchTransport(f"{base}/batch", retries=0, **options)

    def send(count: int) -> list[dict[str, object]]:
        async def all_of_them() -> list[httpx.Response]:
            return await transport.send_all(_requests(base, count))

        return [response.json() for response in asyncio.run(all_of_them())]

    return send


CLIENTS: dict[str, Callable[..., Callable[[int], list[dict[str, object]]]]] = {
    "batching": _with_batching,
    "httpx": _with_transport,
    "async-httpx": _with_async_transport,
}


def _expected(count: int) -> list[dict[str, object]]:
    return [{"number": n, "sent": DOCUMENT} for n in range(count)]


@pytest.mark.parametrize(
    ("document", "coding"),
    [
        ({"content_codings": ["gzip", "deflate"]}, "gzip"),
        ({"content_codings": ["deflate"]}, None),
        ({"max_parts": 100}, None),  # a server that predates content_codings
    ],
)
def test_a_description_that_lists_gzip_compresses_the_first_batch(
    document: dict[str, object], coding: str | None
) -> None:
    limits = KnownLimits()
    limits.discovered(document)
    body = json.dumps(DOCUMENT).encode() * LARGE
    run: Run[None] = Run([SubRequest("POST", "/items/1", (), body)], limits=limits)
    batch = run.next_batch()
    assert batch is not None
    assert len(body) > COMPRESS_ABOVE
    assert batch.content_encoding == coding
    if coding is None:
        assert body in batch.body  # as it is
    else:
        assert ("Content-Encoding", "gzip") in batch.headers
        assert body in gzip.decompress(batch.body)


@pytest.mark.parametrize("client", CLIENTS)
def test_answers_come_in_gzip_and_large_bodies_go_in_it(
    client: str, served: tuple[str, Exchanges]
) -> None:
    base, exchanges = served
    send = CLIENTS[client](base)
    assert send(LARGE) == _expected(LARGE)  # nothing known yet: sent as it is
    assert send(LARGE) == _expected(LARGE)  # the first answer said gzip is taken
    assert send(1) == _expected(1)  # too small to be worth it
    assert exchanges.sent == [None, "gzip", None]
    assert exchanges.answered == ["gzip", "gzip", "gzip"]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("compress_bodies", "sent"),
    [
        (None, [None, "gzip", None, None]),  # the first answer says gzip is taken
        (True, ["gzip", None, None, None]),  # compressed from the first batch
    ],
)
def test_a_415_to_a_compressed_batch_sends_it_again_as_it_is(
    client: str, compress_bodies: bool | None, sent: list[str | None], served: tuple[str, Exchanges]
) -> None:
    base, exchanges = served
    exchanges.refuse_compressed = True
    send = CLIENTS[client](base, compress_bodies=compress_bodies)
    for _ in range(3):  # refused compressed, then sent as it is, and never compressed again
        assert send(LARGE) == _expected(LARGE)
    assert exchanges.sent == sent


@pytest.mark.parametrize("client", CLIENTS)
def test_compress_bodies_true_compresses_the_first_large_batch(
    client: str, served: tuple[str, Exchanges]
) -> None:
    base, exchanges = served
    send = CLIENTS[client](base, compress_bodies=True)
    assert send(LARGE) == _expected(LARGE)  # nothing known, compressed all the same
    assert send(1) == _expected(1)  # too small to be worth it
    assert exchanges.sent == ["gzip", None]


@pytest.mark.parametrize("client", CLIENTS)
def test_a_415_is_the_endpoints_until_forgotten(client: str, served: tuple[str, Exchanges]) -> None:
    base, exchanges = served
    exchanges.refuse_compressed = True

    def new_client_sends() -> None:
        assert CLIENTS[client](base, compress_bodies=True)(LARGE) == _expected(LARGE)

    new_client_sends()  # refused compressed, then sent as it is
    new_client_sends()  # the next client knows the endpoint refuses it
    forget_endpoints()
    new_client_sends()  # tried again
    assert exchanges.sent == ["gzip", None, None, "gzip", None]


@pytest.mark.parametrize("client", CLIENTS)
def test_compress_bodies_false_never_compresses(client: str, served: tuple[str, Exchanges]) -> None:
    base, exchanges = served
    send = CLIENTS[client](base, compress_bodies=False)
    assert send(LARGE) == _expected(LARGE)
    assert send(LARGE) == _expected(LARGE)  # the endpoint said it takes gzip: not for this one
    assert exchanges.sent == [None, None]
    assert exchanges.answered == ["gzip", "gzip"]  # answers still come compressed


@pytest.mark.parametrize("value", [1, 0, "yes", "gzip"])
def test_compress_bodies_takes_only_true_false_or_none(value: object) -> None:
    for client in (Batching, BatchTransport, AsyncBatchTransport):
        with pytest.raises(ValueError, match="compress_bodies must be True, False or None"):
            client("http://api.test/batch", compress_bodies=value)  # type: ignore[arg-type]
