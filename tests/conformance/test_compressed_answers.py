"""Batch answers in gzip when the batch request's ``Accept-Encoding`` prefers it: streamed
part by part all the same, ``Vary: Accept-Encoding``, no ``Content-Length``; a route with
``compress_answers=False`` never compresses. The endpoint advertises the codings it decodes
in batch bodies (``Accept-Encoding`` in its answers, RFC 9110 section 12.5.3, and
``content_codings`` in its description). On every front end alike."""

from __future__ import annotations

import http.client
import json
import zlib

import pytest

from flask_batch.wire.multipart_requests import encode_requests

from ..batching import sub
from .conftest import Server
from .wire import BOUNDARY, MULTIPART, OK, Answer, body, connect, head, post

GZIP = [("Accept-Encoding", "gzip")]


def _batch(*targets: str) -> bytes:
    return encode_requests([sub("GET", target) for target in targets], BOUNDARY)


def _inflated(answer: Answer) -> Answer:
    """``answer`` with its gzip body decompressed, checked to be one whole gzip stream."""
    assert answer.header("Content-Encoding") == "gzip", answer.headers
    decompressor = zlib.decompressobj(31)
    plain = decompressor.decompress(answer.body)
    assert decompressor.eof
    assert not decompressor.unused_data
    return Answer(answer.status, answer.headers, plain)


def test_an_answer_goes_in_gzip_when_the_client_takes_it(server: Server) -> None:
    data = _batch("/ok", "/stream?size=200000&chunk=65536", "/status?code=404")
    plain = post(server.base, "/batch", data)
    compressed = post(server.base, "/batch", data, headers=GZIP)
    assert plain.header("Content-Encoding") is None
    assert compressed.header("Content-Length") is None  # streamed: no length to get wrong
    assert compressed.header("Vary") == "Accept-Encoding"
    assert plain.header("Vary") == "Accept-Encoding"  # the answer depends on it, either way
    assert len(compressed.body) < len(plain.body) // 20
    answers = _inflated(compressed).parts()
    assert [(r.status, r.body) for r in answers] == [(r.status, r.body) for r in plain.parts()]
    assert answers[1].body == b"x" * 200000


def test_a_json_answer_goes_in_gzip_too(server: Server) -> None:
    data = json.dumps({"requests": [{"id": "1", "method": "GET", "url": "/ok"}]}).encode()
    answer = post(server.base, "/batch", data, "application/json", GZIP)
    assert [(r.status, r.body) for r in _inflated(answer).parts()] == [(200, b"ok")]


@pytest.mark.parametrize(
    ("accept_encoding", "compressed"),
    [
        ("gzip, deflate, br", True),
        ("x-gzip", True),
        ("*", True),
        ("identity;q=0.5, gzip", True),
        ("br, gzip;q=0", False),
        ("identity, gzip;q=0.5", False),
        ("*;q=0", False),
        ("br", False),
        ("", False),
        (None, False),
    ],
)
def test_the_client_s_weights_decide(
    server: Server, accept_encoding: str | None, compressed: bool
) -> None:
    headers = [] if accept_encoding is None else [("Accept-Encoding", accept_encoding)]
    answer = post(server.base, "/batch", body(OK), headers=headers)
    if compressed:
        answer = _inflated(answer)
    else:
        assert answer.header("Content-Encoding") is None
    assert [r.body for r in answer.parts()] == [b"ok"]


def test_repeated_accept_encoding_fields_count_as_one_list(server: Server) -> None:
    # RFC 9110, 5.3: a field sent twice is its values joined by commas, on every front end.
    headers = [("Accept-Encoding", "identity;q=0.5"), ("Accept-Encoding", "gzip")]
    answer = post(server.base, "/batch", body(OK), headers=headers)
    assert [r.body for r in _inflated(answer).parts()] == [b"ok"]


def test_a_route_can_turn_compression_off(server: Server) -> None:
    answer = post(server.base, "/batch/uncompressed", body(OK), headers=GZIP)
    assert answer.header("Content-Encoding") is None
    assert answer.header("Vary") is None
    assert [r.body for r in answer.parts()] == [b"ok"]


def test_a_compressed_answer_is_streamed_part_by_part(server: Server) -> None:
    # The second part waits until another request comes to its meeting: the test sends it
    # once the first part's answer could be decompressed, which it can only if the server
    # sent it before the second part was done (a compressor that buffers would hang here
    # until the meeting gives up, 10 s later, past the socket's timeout).
    meeting = f"gzip-{server.name}"
    data = _batch("/sized?size=70000", f"/meet?name={meeting}&n=2")
    fields = [("Content-Type", MULTIPART), ("Content-Length", str(len(data))), *GZIP]
    with connect(server.base) as sock:
        sock.settimeout(5)
        sock.sendall(head(server.base, "POST", "/batch", fields) + data)
        response = http.client.HTTPResponse(sock, method="POST")
        response.begin()
        assert response.getheader("Content-Encoding") == "gzip"
        decompressor = zlib.decompressobj(31)
        plain = b""
        while b"x" * 70000 not in plain:
            piece = response.read1(65536)
            assert piece, "the answer ended before its first part"
            plain += decompressor.decompress(piece)
        assert b"met" not in plain
        # The meeting's other member, sent directly (not in a batch).
        assert post(server.base, f"/meet?name={meeting}&n=2", b"", None, method="GET").status
        plain += decompressor.decompress(response.read())
        assert decompressor.eof
        content_type = response.getheader("Content-Type") or ""
    answers = Answer(200, [("Content-Type", content_type)], plain).parts()
    assert [(r.status, r.body) for r in answers] == [(200, b"x" * 70000), (200, b"met")]


def test_the_endpoint_advertises_the_codings_it_decodes(server: Server) -> None:
    answer = post(server.base, "/batch", body(OK))
    assert answer.header("Accept-Encoding") == "gzip, deflate"
    described = post(server.base, "/batch", b"", None, method="GET")
    assert described.header("Accept-Encoding") == "gzip, deflate"
    document = json.loads(described.body)
    assert document["content_codings"] == ["gzip", "deflate"]
    assert document["compress_answers"] is True
    off = json.loads(post(server.base, "/batch/uncompressed", b"", None, method="GET").body)
    assert off["compress_answers"] is False


def test_a_415_for_the_coding_says_which_codings_are_taken(server: Server) -> None:
    # RFC 9110, 12.5.3: a 415 about the coding carries Accept-Encoding; one about the media
    # type must not (so a client can tell which it was).
    coding = post(server.base, "/batch", body(OK), headers=[("Content-Encoding", "br")])
    assert coding.status == 415
    assert coding.header("Accept-Encoding") == "gzip, deflate"
    media = post(server.base, "/batch", body(OK), "text/plain")
    assert media.status == 415
    assert media.header("Accept-Encoding") is None
