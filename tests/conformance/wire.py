"""A raw HTTP/1.1 client for the conformance suite: exact bytes out, the parsed answer back.

The hostile cases need control no HTTP library gives (no framing at all, a body that stalls,
a client that leaves mid-answer), so requests are written to a socket as they are; answers
are read with :class:`http.client.HTTPResponse`, which handles chunked answers.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask_batch.wire.http1 import parse_response
from flask_batch.wire.json_answers import read_json_responses
from flask_batch.wire.media_type import boundary_of
from flask_batch.wire.model import UNLIMITED, SubRequest, SubResponse
from flask_batch.wire.multipart import MultipartReader
from flask_batch.wire.multipart_answers import read_responses
from flask_batch.wire.multipart_requests import encode_requests

BOUNDARY = "conformance-boundary"
MULTIPART = f"multipart/mixed; boundary={BOUNDARY}"
DELIMITER = f"--{BOUNDARY}".encode()
CLOSE = f"--{BOUNDARY}--\r\n".encode()
MIME = b"Content-Type: application/http\r\n"
#: The message of a part that runs: ``GET /ok``.
OK = b"GET /ok HTTP/1.1\r\n\r\n"
#: Seconds any exchange may take before the test fails (nothing may hang).
TIMEOUT = 20.0


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def problem(self) -> dict[str, Any]:
        """The problem document of a refused batch, checked to be one."""
        assert self.header("Content-Type") == "application/problem+json", self
        document: dict[str, Any] = json.loads(self.body)
        assert document["status"] == self.status
        return document

    def tree(self, status: int = 200) -> Tree:
        """The parts of a multipart batch answer, changesets nested (:func:`read_tree`),
        checked to be answered ``status``."""
        assert self.status == status, (self.status, self.body[:500])
        return read_tree(self.header("Content-Type") or "", self.body)

    def parts(self, status: int = 200) -> list[SubResponse]:
        """The sub-responses of a batch answer, checked to be one, answered ``status``."""
        assert self.status == status, (self.status, self.body[:500])
        content_type = self.header("Content-Type") or ""
        if content_type.startswith("application/json"):
            return [response for _, response in read_json_responses(self.body)]
        return [response for _, response in read_responses(content_type, self.body)]


#: A multipart answer read as a tree: an ``application/http`` part is (its Content-ID, the
#: response); a changeset is (None, the list of its members, each one such pair).
Tree = list[tuple[str | None, "SubResponse | Tree"]]


def read_tree(content_type: str, body: bytes | bytearray) -> Tree:
    """A multipart answer with its changesets nested, each part's MIME headers checked."""
    reader = MultipartReader(boundary_of(content_type), UNLIMITED)
    tree: Tree = []
    for index, part in enumerate(reader.feed(bytes(body)) + reader.close(), start=1):
        part_type = part.header("Content-Type") or ""
        if part_type.startswith("multipart/mixed"):
            assert part.header("Content-ID") is None, part.headers
            tree.append((None, read_tree(part_type, part.content)))
        else:
            assert part_type == "application/http", part.headers
            tree.append((part.header("Content-ID"), parse_response(part.content, index)))
    return tree


def connect(base: str) -> socket.socket:
    url = urlsplit(base)
    assert url.hostname is not None
    assert url.port is not None
    return socket.create_connection((url.hostname, url.port), timeout=TIMEOUT)


def head(
    base: str,
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A request head with ``Host`` (the server's address, unless ``headers`` has one) and
    ``Connection: close``, and ``headers`` as given."""
    lines = [f"{method} {path} HTTP/1.1", "Connection: close"]
    if not any(name.lower() == "host" for name, _ in headers):
        lines.insert(1, f"Host: {urlsplit(base).netloc}")
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_answer(sock: socket.socket, method: str = "POST") -> Answer:
    response = http.client.HTTPResponse(sock, method=method)
    try:
        response.begin()
        body = response.read()
    finally:
        response.close()
    return Answer(response.status, list(response.getheaders()), body)


def exchange(base: str, request: bytes, method: str = "POST") -> Answer:
    """Send ``request`` (a whole HTTP request, as bytes) and read the answer.

    The request is written from another thread while the answer is read: a refusal may come
    (and the server stop reading) long before a large body has been sent.
    """
    with connect(base) as sock:
        writer = threading.Thread(target=_send_all, args=(sock, request), daemon=True)
        writer.start()
        try:
            return read_answer(sock, method)
        finally:
            with contextlib.suppress(OSError):  # unblock a writer the server stopped reading
                sock.shutdown(socket.SHUT_RDWR)
            writer.join(TIMEOUT)


def _send_all(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the server answered and closed before reading it all
        sock.sendall(data)


def post(
    base: str,
    route: str,
    body: bytes,
    content_type: str | None = MULTIPART,
    headers: Sequence[tuple[str, str]] = (),
    *,
    method: str = "POST",
) -> Answer:
    """POST ``body`` to ``route`` with an exact Content-Length."""
    fields = [("Content-Length", str(len(body))), *headers]
    if content_type is not None:
        fields.insert(0, ("Content-Type", content_type))
    return exchange(base, head(base, method, route, fields) + body, method)


def multipart(*requests: SubRequest) -> bytes:
    """The body of a multipart batch of ``requests`` (adjacent members of a group in one
    changeset)."""
    return encode_requests(requests, BOUNDARY)


def batch(
    base: str,
    route: str,
    *requests: SubRequest,
    headers: Sequence[tuple[str, str]] = (),
) -> list[SubResponse]:
    """Send ``requests`` as one multipart batch; the answers in order."""
    answers = post(base, route, multipart(*requests), headers=headers).parts()
    assert len(answers) == len(requests)
    return answers


def part(message: bytes, mime: bytes = MIME) -> bytes:
    """One part of a hand-written batch: its MIME headers, a blank line and the message."""
    return DELIMITER + b"\r\n" + mime + b"\r\n" + message + b"\r\n"


def body(*messages: bytes) -> bytes:
    """A complete batch body of ``application/http`` parts holding ``messages``."""
    return b"".join(part(message) for message in messages) + CLOSE
