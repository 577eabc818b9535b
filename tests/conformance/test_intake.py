"""The batch request as a whole: framing, media type, deadline while it arrives, and a client
that leaves; one behaviour on every front end."""

from __future__ import annotations

import socket
import time

import pytest

from flask_batch.wire.multipart_requests import encode_requests

from ..batching import sub
from .conftest import Server
from .wire import BOUNDARY, MULTIPART, OK, body, connect, exchange, head, read_answer
from .wire import batch as send_batch

#: The header that tells the batch of the client that leaves from any other (Api.ended).
LEAVES = ("X-Test", "leaves-mid-answer")


def test_a_body_with_neither_length_nor_chunks_is_refused_with_411(server: Server) -> None:
    request = head(server.base, "POST", "/batch", [("Content-Type", MULTIPART)]) + body(OK)
    answer = exchange(server.base, request)
    assert answer.status == 411
    assert "Content-Length" in answer.problem()["detail"]
    server.check_healthy()


def test_a_chunked_batch_request_is_read(server: Server) -> None:
    data = body(OK, OK)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in (data[:10], data[10:]))
    request = head(
        server.base,
        "POST",
        "/batch",
        [("Content-Type", MULTIPART), ("Transfer-Encoding", "chunked")],
    )
    answer = exchange(server.base, request + chunked + b"0\r\n\r\n")
    assert [part.status for part in answer.parts()] == [200, 200]


@pytest.mark.parametrize(
    "content_type",
    [
        f"multipart/mixed; boundary={BOUNDARY}; boundary=other",
        f'multipart/mixed; boundary=other; boundary="{BOUNDARY}"',
        f"multipart/mixed; BOUNDARY={BOUNDARY}; boundary={BOUNDARY}",
    ],
)
def test_a_boundary_given_twice_is_refused(server: Server, content_type: str) -> None:
    assert "twice" in server.refused(body(OK), content_type=content_type)["detail"]


def test_a_stalled_upload_is_answered_408_once_the_deadline_passes(server: Server) -> None:
    whole = body(OK, OK)
    fields = [("Content-Type", MULTIPART), ("Content-Length", str(len(whole) + 100))]
    with connect(server.base) as sock:
        sock.sendall(head(server.base, "POST", "/batch/deadline", fields) + whole)
        started = time.monotonic()
        answer = read_answer(sock)  # the last 100 bytes never come
        waited = time.monotonic() - started
    assert answer.status == 408
    assert "deadline" in answer.problem()["detail"]
    assert waited < 10  # the route's deadline is 1 s; the socket's timeout 20 s
    server.check_healthy()


def test_a_slow_trickle_is_cut_off_at_the_deadline_too(server: Server) -> None:
    whole = body(OK)
    fields = [("Content-Type", MULTIPART), ("Content-Length", str(len(whole)))]
    with connect(server.base) as sock:
        sock.sendall(head(server.base, "POST", "/batch/deadline", fields))
        started = time.monotonic()
        answered = None
        for byte in whole:  # one byte every 0.1 s: the whole body would take several seconds
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            sock.settimeout(0.1)
            try:
                answered = sock.recv(1, socket.MSG_PEEK)
            except TimeoutError:
                continue
            if answered:
                break
        sock.settimeout(20)
        answer = read_answer(sock)
    assert answer.status == 408
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("coding", ["identity", "gzip"])  # a gzip answer stops alike
def test_a_client_that_leaves_mid_answer_stops_the_batch(server: Server, coding: str) -> None:
    parts = [sub("GET", "/slow?s=0.2") for _ in range(20)]
    data = encode_requests(parts, BOUNDARY)
    fields = [("Content-Type", MULTIPART), ("Content-Length", str(len(data))), LEAVES]
    fields.append(("Accept-Encoding", coding))
    with connect(server.base) as sock:
        sock.sendall(head(server.base, "POST", "/batch", fields) + data)
        sock.recv(1)  # the answer has started: the first part ran
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # All twenty parts would take 4 s: the server gave the batch up well before.
    assert server.api.ended(LEAVES[1]), "the server did not end the batch"
    assert len(server.ran) < 20, server.ran
    server.ran.clear()
    assert [r.status for r in send_batch(server.base, "/batch", sub("GET", "/ok"))] == [200]
