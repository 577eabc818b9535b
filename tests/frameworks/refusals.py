"""Batches every adapter must refuse, and the Flask extension's answers as the reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask

from flask_batch import add_batch_route
from flask_batch.wire.batch import encode_requests
from flask_batch.wire.model import SubRequest

BOUNDARY = "test-boundary"
MULTIPART = f"multipart/mixed; boundary={BOUNDARY}"
#: The options of the endpoints the refusals are sent to.
OPTIONS: dict[str, Any] = {"max_parts": 2, "max_part_size": 200}


def _body(*targets: str, body: bytes = b"") -> bytes:
    method = "POST" if body else "GET"
    return encode_requests([SubRequest(method, t, (), body) for t in targets], BOUNDARY)


GOOD = _body("/x", "/y")
#: name: (method, headers, body)
REFUSED: dict[str, tuple[str, list[tuple[str, str]], bytes]] = {
    "put": ("PUT", [("content-type", MULTIPART)], GOOD),
    "delete": ("DELETE", [], b""),
    "text/plain": ("POST", [("content-type", "text/plain")], GOOD),
    "form-data": ("POST", [("content-type", "multipart/form-data; boundary=x")], GOOD),
    "urlencoded": ("POST", [("content-type", "application/x-www-form-urlencoded")], b"a=b"),
    "untyped": ("POST", [], GOOD),
    "brotli": ("POST", [("content-type", MULTIPART), ("content-encoding", "br")], GOOD),
    "corrupt gzip": ("POST", [("content-type", MULTIPART), ("content-encoding", "gzip")], GOOD),
    "no boundary in body": ("POST", [("content-type", "multipart/mixed; boundary=zz")], GOOD),
    "bad request line": (
        "POST",
        [("content-type", MULTIPART)],
        GOOD.replace(b"GET /y HTTP/1.1", b"GET /y HTTP/9.9"),
    ),
    "too many parts": ("POST", [("content-type", MULTIPART)], _body("/", "/", "/")),
    "part too large": ("POST", [("content-type", MULTIPART)], _body("/", body=b"x" * 300)),
    "bad json": ("POST", [("content-type", "application/json")], b'{"requests": [1]}'),
    "unknown dependency": (
        "POST",
        [("content-type", "application/json")],
        b'{"requests": [{"id": "1", "method": "GET", "url": "/", "dependsOn": ["9"]}]}',
    ),
}


@dataclass(frozen=True)
class Reference:
    """What the Flask extension answers."""

    status: int
    content_type: str | None
    allow: str | None
    document: Any


def flask_reference(case: str) -> Reference:
    """The Flask extension's answer to the refusal ``case``, with :data:`OPTIONS`."""
    method, headers, body = REFUSED[case]
    app = Flask(__name__)
    add_batch_route(app, **OPTIONS)
    answer = app.test_client().open("/batch", method=method, data=body, headers=headers)
    return Reference(
        answer.status_code,
        answer.headers.get("Content-Type"),
        answer.headers.get("Allow"),
        answer.json,
    )
