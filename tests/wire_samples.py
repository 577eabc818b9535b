"""Captured batch requests (tests/data/wire-samples/<client>/*.request.raw): read them, and
read the answers they get, with the standard library's ``email`` package as the oracle.

Why: the captures are what real clients send, byte for byte; the test modules that replay
them (test_wire_samples.py for Google's clients, test_odata_wire_samples.py for the OData
family's) read them and judge the answers alike.
"""

from __future__ import annotations

import email
import email.message
import re
from dataclasses import dataclass
from pathlib import Path

SAMPLES_DIR = Path(__file__).parent / "data" / "wire-samples"


@dataclass(frozen=True)
class RawRequest:
    """A captured HTTP/1.1 request split into its pieces."""

    method: str
    target: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


def split_raw_request(raw: bytes) -> RawRequest:
    """Split request line, headers, CRLF CRLF, body; check the capture is complete."""
    head, separator, body = raw.partition(b"\r\n\r\n")
    assert separator, "no end of headers in sample"
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, version = request_line.split(" ")
    assert version == "HTTP/1.1"
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    assert int(headers["content-length"]) == len(body), "truncated capture"
    return RawRequest(method, target, headers, body)


def parse_multipart(content_type: str, body: bytes) -> list[email.message.Message]:
    """The parts of a multipart/mixed body, read by the stdlib ``email`` package."""
    message = email.message_from_bytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    assert message.is_multipart(), content_type
    return parts_of(message)


def parts_of(message: email.message.Message) -> list[email.message.Message]:
    """The parts of a multipart message (a batch, or a changeset inside one)."""
    payload = message.get_payload()
    assert isinstance(payload, list)
    parts = [part for part in payload if isinstance(part, email.message.Message)]
    assert len(parts) == len(payload)
    return parts


def part_bytes(part: email.message.Message) -> bytes:
    """A part's body as the original bytes."""
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


@dataclass(frozen=True)
class HttpAnswer:
    """An HTTP/1.1 response read from inside one answer part."""

    status: int
    reason: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


def parse_http_response(data: bytes) -> HttpAnswer:
    """Parse strictly: the server promises CRLF line ends, a reason phrase, Content-Length."""
    head, separator, body = data.partition(b"\r\n\r\n")
    assert separator, f"no CRLF CRLF in answer part: {data!r}"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    match = re.fullmatch(r"HTTP/1\.1 (\d{3}) (.+)", status_line)
    assert match, f"bad status line {status_line!r}"
    headers = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        assert colon, f"bad header line {line!r}"
        headers[name.strip().lower()] = value.strip()
    return HttpAnswer(int(match[1]), match[2], headers, body)
