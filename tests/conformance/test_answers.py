"""Answers are bounded: one part's (``max_answer_part_size``) and the whole batch's
(``max_answer_size``). A part over its bound is a 502 problem part without its partial body;
the rest of the batch goes on; a streaming answer is not read past the bound."""

from __future__ import annotations

import http.client
import json
import time
import tracemalloc
import uuid

import pytest

from flask_batch.wire.json_requests import encode_json_requests
from flask_batch.wire.model import MIB, SubResponse
from flask_batch.wire.multipart_answers import AnswerStream
from flask_batch.wire.multipart_requests import encode_requests

from ..batching import sub
from .conftest import Server
from .wire import BOUNDARY, MULTIPART, batch, connect, exchange, head, post

ROUTE = "/batch/answers"  # max_answer_part_size=1000, max_answer_size=2500


def too_large(answer: SubResponse, limit: str) -> None:
    assert answer.status == 502, answer
    document = json.loads(answer.body)
    assert document["title"] == "Answer too large"
    assert limit in document["detail"]
    assert "ran" in document["detail"]  # the client learns the part's effects stand


@pytest.mark.parametrize("target", ["/sized?size=1001", "/stream?size=1001&chunk=100"])
def test_a_part_over_its_answer_limit_is_a_502_and_the_batch_goes_on(
    server: Server, target: str
) -> None:
    big, after = batch(server.base, ROUTE, sub("GET", target), sub("GET", "/ok"))
    too_large(big, "max_answer_part_size")
    assert (after.status, after.body) == (200, b"ok")


def test_an_answer_at_the_limit_is_sent_whole(server: Server) -> None:
    # 900 bytes of body and the headers of the answer stay within 1000 bytes.
    (answer,) = batch(server.base, ROUTE, sub("GET", "/stream?size=900&chunk=7"))
    assert (answer.status, answer.body) == (200, b"x" * 900)


def test_a_streaming_answer_is_not_read_past_the_limit(server: Server) -> None:
    server.api.produced[0] = 0
    big, after = batch(
        server.base, ROUTE, sub("GET", "/stream?size=100000000&chunk=1000"), sub("GET", "/ok")
    )
    too_large(big, "max_answer_part_size")
    assert after.status == 200
    assert server.api.produced[0] <= 3000  # of 100 MB: the application was stopped


def test_the_whole_answer_is_bounded(server: Server) -> None:
    answers = batch(
        server.base,
        ROUTE,
        *(sub("GET", "/sized?size=900") for _ in range(3)),
        sub("GET", "/ok"),
    )
    assert [a.status for a in answers[:2]] == [200, 200]
    too_large(answers[2], "max_answer_size")  # 2700 bytes of bodies would pass 2500
    assert (answers[3].status, answers[3].body) == (200, b"ok")  # 1802 bytes: it fits


def test_json_answers_are_bounded_alike(server: Server) -> None:
    document = encode_json_requests(
        [sub("GET", "/sized?size=2000", content_id="1"), sub("GET", "/ok", content_id="2")]
    )
    big, after = post(server.base, ROUTE, document, "application/json").parts()
    too_large(big, "max_answer_part_size")
    assert after.status == 200


def test_the_default_limits_let_a_large_answer_through_unchanged(server: Server) -> None:
    size = 5 * 1024 * 1024  # sent in slices, never copied whole into the part
    (answer,) = batch(server.base, "/batch", sub("GET", f"/stream?size={size}&chunk=65536"))
    assert answer.status == 200
    assert answer.body == b"x" * size


def test_a_batch_answer_is_streamed_and_never_stored(server: Server) -> None:
    answer = post(server.base, "/batch", encode_requests([sub("GET", "/ok")] * 2, BOUNDARY))
    assert (answer.header("Content-Type") or "").startswith("multipart/mixed; boundary=")
    assert answer.header("Cache-Control") == "no-store"
    assert answer.header("Content-Length") is None  # sent as the parts run
    assert [(r.status, r.body) for r in answer.parts()] == [(200, b"ok"), (200, b"ok")]


def _drained(base: str, route: str, data: bytes) -> tuple[int, int]:
    """POST ``data`` and read the answer as it comes, keeping none of it: its status and
    size, so that what the batch holds is all the memory measured."""
    fields = [("Content-Type", MULTIPART), ("Content-Length", str(len(data)))]
    with connect(base) as sock:
        sock.sendall(head(base, "POST", route, fields) + data)
        response = http.client.HTTPResponse(sock, method="POST")
        response.begin()
        size = 0
        while piece := response.read(64 * 1024):
            size += len(piece)
        response.close()
    return response.status, size


def test_a_written_answer_is_let_go_as_the_batch_goes_on(server: Server) -> None:
    # Once written, a part's answer is kept for its status only (its dependents read it):
    # 32 answers of 1 MiB never take 32 MiB together (what else the servers hold at once
    # comes and goes: 2 to 10 MiB, whatever the number of parts).
    parts = 32
    data = encode_requests([sub("GET", f"/sized?size={MIB}&chunk={MIB}")] * parts, BOUNDARY)
    tracemalloc.start()  # the server runs in this process: its allocations are traced too
    try:
        status, size = _drained(server.base, "/batch", data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (status, size > parts * MIB) == (200, True)
    assert peak < 16 * MIB, f"{peak / MIB:.1f} MiB held at once"


def test_an_answer_sent_is_readable_before_the_next_part_ends(server: Server) -> None:
    # A client knows a part has ended only once it has the delimiter after it: the server
    # sends that delimiter with the parts it flushes. Here the second part waits for a
    # meeting the test joins only once it has read the first answer off the wire: were the
    # delimiter held back with the second part, the first answer could not be read, and the
    # second part would give up waiting only after 10 s.
    meeting = uuid.uuid4().hex
    data = encode_requests(
        [sub("GET", "/slow?s=0.01"), sub("GET", f"/meet?name={meeting}&n=2")], BOUNDARY
    )
    fields = [("Content-Type", MULTIPART), ("Content-Length", str(len(data)))]
    started = time.monotonic()
    with connect(server.base) as sock:
        sock.sendall(head(server.base, "POST", "/batch", fields) + data)
        response = http.client.HTTPResponse(sock, method="POST")
        response.begin()
        stream = AnswerStream(response.getheader("Content-Type"))
        while not stream.answers and (piece := response.read1(65536)):
            stream.feed(piece)
        assert [(a.response.status, a.response.body) for a in stream.answers] == [(200, b"slow")]
        joined = exchange(server.base, head(server.base, "GET", f"/meet?name={meeting}&n=2"), "GET")
        assert joined.status == 200
        while piece := response.read1(65536):
            stream.feed(piece)
        answers = stream.close()
        response.close()
    assert [(a.response.status, a.response.body) for a in answers] == [
        (200, b"slow"),
        (200, b"met"),
    ]
    assert time.monotonic() - started < 5  # the second part did not wait its 10 s out
