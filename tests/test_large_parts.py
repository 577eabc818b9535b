"""Large parts are handed over, not copied: the reader's buffer becomes the part's body.

A part of 64 KiB or more is not sliced out of the multipart reader's buffer: the buffer
itself, trimmed in place, becomes the content, then the request body, then the application's
input stream (WSGI) or its ``http.request`` messages (ASGI). So a 50 MB upload costs about
50 MB beyond the body read from the socket, not 100 (docs/benchmarks.md, Memory).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import tracemalloc
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask, jsonify, request
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_batch import Limits, add_batch_route
from flask_batch.asgi import BatchMiddleware
from flask_batch.options import Settings
from flask_batch.wire.errors import BatchError
from flask_batch.wire.http1 import parse_request
from flask_batch.wire.model import MIB, Part, SubRequest
from flask_batch.wire.multipart import MultipartReader, encode_close, encode_part
from flask_batch.wire.multipart_requests import encode_requests, read_requests
from flask_batch.wsgi import BatchEndpoint

from .batching import batch as flask_batch
from .frameworks.driving import BOUNDARY, MULTIPART, part_json
from .frameworks.driving import request as asgi_request
from .properties import PROPERTY

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

# Binary content that holds CR, LF and text that looks like a delimiter, without being one.
LARGE = (bytes(range(256)) + b"\r\n--xyz-\r\n--xyzz\r\n") * 1000  # 274 KB
HEADERS = (("Content-Type", "application/http"),)


def multipart_body(*contents: bytes) -> bytes:
    return b"".join(encode_part("xyz", HEADERS, content) for content in contents) + encode_close(
        "xyz"
    )


def read_in(chunks: Iterable[bytes]) -> list[Part]:
    reader = MultipartReader("xyz", Limits(max_part_size=MIB))
    parts = []
    for chunk in chunks:
        parts += reader.feed(chunk)
    return parts + reader.close()


@pytest.mark.parametrize("size", [None, 1000, 65_536, 65_537, 300_000])
@pytest.mark.parametrize(
    "contents",
    [[b"small", LARGE, b"after"], [LARGE], [LARGE, LARGE[:70_000], b""], [b"", LARGE]],
    ids=["middle", "alone", "two-large", "last"],
)
def test_a_large_part_reads_the_same_in_any_chunks(contents: list[bytes], size: int | None) -> None:
    body = multipart_body(*contents)
    chunks = [body] if size is None else [body[i : i + size] for i in range(0, len(body), size)]
    read = read_in(chunks)
    assert [part.headers for part in read] == [HEADERS] * len(contents)
    assert [part.content for part in read] == contents
    kinds = [bytearray if len(c) >= 65_536 else bytes for c in contents]
    assert [type(part.content) for part in read] == kinds


def test_parse_request_takes_a_bytearray_over_instead_of_copying_it() -> None:
    data = bytearray(b"PUT /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\r\n")
    method, target, _, body = parse_request(data, Limits())
    assert (method, target, body) == ("PUT", "/x", b"hello")
    assert body is data  # trimmed in place
    # Without a length, the body runs to the part's end; blank lines alone are still no body.
    data = bytearray(b"POST /y\r\n\r\nabc")
    assert parse_request(data, Limits())[3] is data
    assert data == b"abc"
    assert parse_request(bytearray(b"GET /z\r\n\r\n\r\n\n"), Limits())[3] == b""


def hashing_app() -> Flask:
    app = Flask(__name__)

    @app.put("/stream")
    def stream() -> Any:
        digest, size = hashlib.sha256(), 0
        while chunk := request.stream.read(64 * 1024):
            digest.update(chunk)
            size += len(chunk)
        return jsonify(size=size, sha256=digest.hexdigest())

    @app.put("/whole")
    def whole() -> Any:
        data = request.get_data()
        return jsonify(size=len(data), sha256=hashlib.sha256(data).hexdigest())

    @app.put("/lines")
    def lines() -> Any:
        return jsonify(lines=len(request.stream.readlines()))

    @app.get("/small")
    def small() -> Any:
        return jsonify(ok=True)

    add_batch_route(app, max_part_size=16 * MIB, max_body_size=64 * MIB)
    return app


def test_a_large_body_reaches_a_flask_view_whole_by_any_way_of_reading() -> None:
    data = LARGE * 12  # 3.3 MB
    expected = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    headers = (("Content-Type", "application/octet-stream"),)
    answers = flask_batch(
        hashing_app().test_client(),
        SubRequest("PUT", "/stream", headers, data),
        SubRequest("PUT", "/whole", headers, data),
        SubRequest("PUT", "/lines", headers, data),
        SubRequest("GET", "/small", (), b""),
    )
    assert [a.status for a in answers] == [200, 200, 200, 200]
    assert [part_json(a) for a in answers[:2]] == [expected, expected]
    assert part_json(answers[2]) == {"lines": data.count(b"\n") + (not data.endswith(b"\n"))}
    assert part_json(answers[3]) == {"ok": True}


def test_a_large_body_reaches_an_asgi_app_in_bounded_messages() -> None:
    received: list[int] = []
    digest = hashlib.sha256()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            received.append(len(message["body"]))
            digest.update(message["body"])
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % sum(received)})

    data = LARGE * 12
    body = encode_requests([SubRequest("PUT", "/blob", (), data)], BOUNDARY)
    answer = asyncio.run(
        asgi_request(
            BatchMiddleware(app, max_part_size=16 * MIB, max_body_size=64 * MIB),
            "POST",
            "/batch",
            headers=[("content-type", MULTIPART)],
            body=body,
        )
    )
    (part,) = answer.parts()
    assert part.body == b"%d" % len(data)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert len(received) == 4  # 3.3 MB in pieces of at most 1 MiB
    assert max(received) == MIB


def test_a_large_part_costs_about_its_size_not_twice() -> None:
    data = bytes(range(256)) * (8 * MIB // 256)
    body = encode_requests([SubRequest("PUT", "/blob", (), data)], "b")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        stream, size = environ["wsgi.input"], 0
        while chunk := stream.read(64 * 1024):
            size += len(chunk)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d" % size]

    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/batch",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "CONTENT_TYPE": "multipart/mixed; boundary=b",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
    }
    endpoint = BatchEndpoint(app, Settings(Limits(max_part_size=16 * MIB, max_body_size=16 * MIB)))
    tracemalloc.start()
    try:
        answer = b"".join(endpoint.answer(environ).body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert b"\r\n\r\n%d\r\n" % len(data) in answer
    assert peak < 1.25 * len(data)  # one copy of the body (the reader's buffer), not two


def test_large_requests_still_read_alike_when_the_whole_batch_is_one_chunk() -> None:
    requests = [SubRequest("PUT", f"/{i}", (), LARGE[: 70_000 + i]) for i in range(3)]
    body = encode_requests(requests, "xyz")
    chunked = [body[i : i + 4096] for i in range(0, len(body), 4096)]
    for chunks in ([body], chunked):
        read = read_requests("multipart/mixed; boundary=xyz", chunks, Limits(max_part_size=MIB))
        assert [(r.target, bytes(r.body)) for r in read] == [(r.target, r.body) for r in requests]


@settings(PROPERTY, max_examples=60)
@given(
    sizes=st.lists(st.sampled_from([0, 10, 65_535, 65_536, 90_000]), min_size=1, max_size=4),
    max_part_size=st.sampled_from([65_600, 80_000, 200_000]),
    max_parts=st.integers(1, 4),
    cuts=st.lists(st.integers(min_value=0), max_size=6),
)
def test_large_parts_and_their_limits_do_not_depend_on_the_chunks(
    sizes: list[int], max_part_size: int, max_parts: int, cuts: list[int]
) -> None:
    # The hand-over (64 KiB and more) and the limits around it: the outcome, parts or
    # refusal, is the same however the body arrives.
    body = multipart_body(*[LARGE[:size] for size in sizes])
    limits = Limits(max_parts=max_parts, max_part_size=max_part_size)
    points = sorted({0, len(body), *(cut % (len(body) + 1) for cut in cuts)})
    chunks = [body[start:end] for start, end in itertools.pairwise(points)]

    def outcome(pieces: list[bytes]) -> object:
        reader = MultipartReader("xyz", limits)
        try:
            parts = [part for piece in pieces for part in reader.feed(piece)] + reader.close()
        except BatchError as error:
            return type(error).__name__, str(error), error.part
        return [(part.headers, bytes(part.content)) for part in parts]

    whole = outcome([body])
    assert outcome(chunks) == whole
    if isinstance(whole, list):
        assert whole == [(HEADERS, LARGE[:size]) for size in sizes]
