"""What a batch route answers to a request it will not run as a batch: the method (``405``;
``GET``, ``HEAD`` and ``OPTIONS`` describe the route), the media type and content coding
(``415``), the size (``413``) and a body that cannot be read (``400``). Every front end answers
each case with the same status, headers and problem document, and nothing runs.
"""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass, field
from typing import Any

import pytest

from flask_batch.wire.model import Limits
from flask_batch.wire.multipart_requests import encode_requests

from ..batching import sub
from .conftest import Server, differs_on
from .wire import BOUNDARY, MULTIPART, OK, body, connect, exchange, head, post, read_answer

#: max_parts=3, max_body_size=4000, max_part_size=600, max_header_size=300, max_headers=8.
SMALL = "/batch/small"
ALLOW = "GET, HEAD, OPTIONS, POST"
GOOD = encode_requests([sub("GET", "/ok"), sub("GET", "/ok")], BOUNDARY)
#: 5000 bytes (past SMALL's max_body_size): one part, and an epilogue of spaces.
LARGE = body(OK).ljust(5000)
#: The type and title of the problem document of each status.
KINDS = {
    400: ("malformed-batch", "Malformed batch"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("limit-exceeded", "Batch too large"),
    415: ("unsupported-media-type", "Unsupported batch media type"),
}


@dataclass(frozen=True)
class Refusal:
    """A request to :data:`SMALL` and the answer every front end must give it."""

    status: int
    detail: str
    #: The problem document's other members (``part``, ``limit``, ``value``).
    more: dict[str, Any] = field(default_factory=dict)
    method: str = "POST"
    content_type: str | None = MULTIPART
    body: bytes = GOOD
    headers: tuple[tuple[str, str], ...] = ()

    def document(self) -> dict[str, Any]:
        kind, title = KINDS[self.status]
        return {
            "type": f"tag:flask-batch,2026:{kind}",
            "title": title,
            "status": self.status,
            "detail": self.detail,
            **self.more,
        }


POST_ONLY = "a batch is sent with POST (GET describes the endpoint)"
#: What a cross-site HTML form (or anything but a batch) can send: Content-Type, media type.
NOT_A_BATCH = [
    (None, "untyped"),
    ("text/plain", "text/plain"),
    (f"text/plain; boundary={BOUNDARY}", "text/plain"),
    ("multipart/form-data; boundary=x", "multipart/form-data"),
    (f"multipart/form-data; boundary={BOUNDARY}", "multipart/form-data"),
    ("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"),
    (f"multipart/related; boundary={BOUNDARY}", "multipart/related"),
    (f"multipart/mixedx; boundary={BOUNDARY}", "multipart/mixedx"),
    ("application/http", "application/http"),
    ("application/xml", "application/xml"),
]
REFUSALS = {
    "PUT": Refusal(405, POST_ONLY, method="PUT"),
    "PATCH": Refusal(405, POST_ONLY, method="PATCH"),
    "DELETE": Refusal(405, POST_ONLY, method="DELETE", content_type=None, body=b""),
    **{
        content_type or "no Content-Type": Refusal(
            415,
            f"a batch must be multipart/mixed or application/json, not {media_type!r}",
            content_type=content_type,
        )
        for content_type, media_type in NOT_A_BATCH
    },
    "brotli": Refusal(
        415,
        "Content-Encoding 'br' is not supported: send gzip, deflate or identity",
        headers=(("Content-Encoding", "br"),),
    ),
    "corrupt gzip": Refusal(
        400,
        "the gzip body is corrupt: Error -3 while decompressing data: incorrect header check",
        headers=(("Content-Encoding", "gzip"),),
    ),
    "no boundary in body": Refusal(
        400,
        "the boundary delimiter '--zz' never occurs in the body",
        content_type="multipart/mixed; boundary=zz",
    ),
    "bad request line": Refusal(
        400,
        "part 2: unsupported HTTP version HTTP/9.9",
        {"part": 2},
        body=body(OK, b"GET /ok HTTP/9.9\r\n\r\n"),
    ),
    "too many parts": Refusal(
        413,
        "part 4: the batch has more than 3 parts",
        {"part": 4, "limit": "max_parts", "value": 3},
        body=body(OK, OK, OK, OK),
    ),
    "part too large": Refusal(
        413,
        "part 1: the part is larger than 600 bytes",
        {"part": 1, "limit": "max_part_size", "value": 600},
        body=encode_requests([sub("POST", "/echo", b"x" * 700)], BOUNDARY),
    ),
    "body too large": Refusal(
        413,
        "the batch body (5000 bytes) is larger than 4000 bytes",
        {"limit": "max_body_size", "value": 4000},
        body=LARGE,
    ),
    "bad json": Refusal(
        400,
        "part 1: a request must be a JSON object",
        {"part": 1},
        content_type="application/json",
        body=b'{"requests": [1]}',
    ),
    "unknown dependency": Refusal(
        400,
        "part 1: depends on an unknown request '9'",
        {"part": 1},
        content_type="application/json",
        body=b'{"requests": [{"id": "1", "method": "GET", "url": "/ok", "dependsOn": ["9"]}]}',
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_refusal_is_answered_alike(server: Server, case: str) -> None:
    refusal = REFUSALS[case]
    answer = post(
        server.base,
        SMALL,
        refusal.body,
        refusal.content_type,
        refusal.headers,
        method=refusal.method,
    )
    assert answer.status == refusal.status
    assert answer.header("Content-Type") == "application/problem+json"
    assert answer.header("Allow") == (ALLOW if refusal.status == 405 else None)
    assert json.loads(answer.body) == refusal.document()
    server.check_healthy()


def test_the_media_type_is_case_insensitive(server: Server) -> None:
    answer = post(server.base, "/batch", body(OK), f"Multipart/MIXED; boundary={BOUNDARY}")
    assert [r.status for r in answer.parts()] == [200]


# What GET, HEAD and OPTIONS say about a route

DEFAULTS: dict[str, Any] = {
    "formats": ["multipart/mixed", "application/json"],
    "max_parts": Limits().max_parts,
    "max_group_size": Limits().max_group_size,
    "max_body_size": Limits().max_body_size,
    "max_part_size": Limits().max_part_size,
    "max_header_size": Limits().max_header_size,
    "max_headers": Limits().max_headers,
    "deadline": None,
    "max_answer_part_size": Limits().max_answer_part_size,
    "max_answer_size": Limits().max_answer_size,
    "max_workers": 1,
    "max_workers_per_request": 1,
    "dependencies": True,
    "references": True,
    "preferences": ["continue-on-error", "odata.continue-on-error"],
    "groups": "refused",
    "multipart_dialect": "auto",
    "flat_changesets": False,
    "answer_status": "auto",
    "content_codings": ["gzip", "deflate"],
    "compress_answers": True,
}
DESCRIBED = {
    "/batch": DEFAULTS,
    SMALL: {
        **DEFAULTS,
        "max_parts": 3,
        "max_body_size": 4000,
        "max_part_size": 600,
        "max_header_size": 300,
        "max_headers": 8,
    },
    "/batch/deadline": {**DEFAULTS, "deadline": 1.0},
    "/batch/parallel": {**DEFAULTS, "max_workers": 4, "max_workers_per_request": 4},
    "/batch/parallel-capped": {**DEFAULTS, "max_workers": 4, "max_workers_per_request": 2},
}


@pytest.mark.parametrize("route", list(DESCRIBED))
def test_get_and_options_describe_the_route_and_head_sends_no_body(
    server: Server, route: str
) -> None:
    answers = {
        method: exchange(server.base, head(server.base, method, route), method)
        for method in ("GET", "OPTIONS", "HEAD")
    }
    for method, answer in answers.items():
        assert answer.status == 200, method
        assert answer.header("Content-Type") == "application/json", method
        assert answer.header("Allow") == ALLOW, method
    assert json.loads(answers["GET"].body) == DESCRIBED[route]
    assert answers["OPTIONS"].body == answers["GET"].body
    assert answers["HEAD"].body == b""
    assert server.ran == []


def test_a_refusal_and_the_description_carry_their_content_length(server: Server) -> None:
    described = exchange(server.base, head(server.base, "GET", "/batch"), "GET")
    headed = exchange(server.base, head(server.base, "HEAD", "/batch"), "HEAD")
    refused = post(server.base, "/batch", GOOD, "text/plain")
    assert refused.status == 415
    assert described.header("Content-Length") == str(len(described.body))
    assert headed.header("Content-Length") == str(len(described.body))
    assert refused.header("Content-Length") == str(len(refused.body))


# Size, and a body that cannot be read


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(
    server: Server,
) -> None:
    fields = [("Content-Type", MULTIPART), ("Content-Length", "1000000")]
    with connect(server.base) as sock:
        sock.sendall(head(server.base, "POST", SMALL, fields))  # and not a byte of the body
        answer = read_answer(sock)
    assert answer.status == 413
    document = answer.problem()
    assert (document["limit"], document["value"]) == ("max_body_size", 4000)
    assert document["detail"] == "the batch body (1000000 bytes) is larger than 4000 bytes"
    server.check_healthy()


def test_a_chunked_body_over_the_limit_is_refused(server: Server) -> None:
    chunked = b"".join(b"%x\r\n%s\r\n" % (1000, LARGE[i : i + 1000]) for i in range(0, 5000, 1000))
    fields = [("Content-Type", MULTIPART), ("Transfer-Encoding", "chunked")]
    answer = exchange(
        server.base, head(server.base, "POST", SMALL, fields) + chunked + b"0\r\n\r\n"
    )
    assert answer.status == 413
    assert (answer.problem()["limit"], answer.problem()["value"]) == ("max_body_size", 4000)
    server.check_healthy()


@differs_on(
    "asgi",
    "uvicorn reports the client's half-close (EOF before Content-Length bytes came) as "
    "http.disconnect, and the ASGI middleware answers nothing to a client that left (the "
    "connection closes without an answer); Werkzeug's server ends wsgi.input instead, and "
    "the WSGI front ends answer 400",
    http.client.RemoteDisconnected,
)
def test_a_body_shorter_than_its_content_length_is_a_400(server: Server) -> None:
    data = body(OK)
    fields = [("Content-Type", MULTIPART), ("Content-Length", str(len(data) + 10))]
    with connect(server.base) as sock:
        sock.sendall(head(server.base, "POST", "/batch", fields) + data)
        sock.shutdown(socket.SHUT_WR)  # the body ends 10 bytes early
        answer = read_answer(sock)
    assert answer.status == 400
    detail = f"the body ended after {len(data)} of {len(data) + 10} bytes"
    assert answer.problem()["detail"] == detail
    server.check_healthy()
