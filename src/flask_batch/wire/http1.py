"""HTTP/1.1 messages inside a part: parse requests, serialise responses, and the reverse.

The grammar follows RFC 9112 (and h11's ``_abnf.py``) where clients agree with it, and is
liberal where real batch clients are not: bare-LF line ends, no space after the colon, no
HTTP version, no ``Host``, and no ``Content-Length`` (the body then runs to the part's end).
"""

from __future__ import annotations

import re

from .errors import LimitExceeded, MalformedBatch, reason_phrase
from .model import Headers, Limits, SubResponse
from .multipart import CRLF, encode_field, encode_text

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+)(?: (HTTP/\d\.\d))?")
_STATUS_LINE = re.compile(rb"HTTP/\d\.\d ([0-9]{3})(?: (.*))?")
_FIELD = re.compile(rb"(" + _TOKEN + rb"):[ \t]*([^\x00\r\n]*?)[ \t]*")
_SUPPORTED_VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")
_WHITESPACE = b" \t\r\n"

#: Headers that describe one connection, not the message: never copied into a part's answer.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}
)


def _split_head(data: bytes, limit: int | None, part: int | None) -> tuple[list[bytes], int]:
    """The lines up to the first empty line (line ends dropped), and where the body begins."""
    lines: list[bytes] = []
    position = 0
    while True:
        newline = data.find(b"\n", position)
        if newline < 0:
            if limit is not None and len(data) > limit:
                _header_limit(limit, part)
            # Headers that run to the part's end: the message simply has no body.
            last = data[position:].rstrip(b"\r")
            if last:
                lines.append(last)
            return lines, len(data)
        if limit is not None and newline >= limit:
            _header_limit(limit, part)
        line = data[position:newline]
        if line.endswith(b"\r"):
            line = line[:-1]
        position = newline + 1
        if not line and lines:
            return lines, position
        if line:
            lines.append(line)


def _header_limit(limit: int, part: int | None) -> None:
    raise LimitExceeded(
        "max_header_size",
        limit,
        f"the HTTP request line and headers are longer than {limit} bytes",
        part=part,
    )


def _parse_fields(lines: list[bytes], part: int | None) -> Headers:
    headers = []
    for line in lines:
        if line[0] in b" \t":
            raise MalformedBatch(
                f"obsolete line folding in the HTTP headers: {line[:60]!r}", part=part
            )
        match = _FIELD.fullmatch(line)
        if match is None:
            raise MalformedBatch(f"invalid HTTP header line {line[:80]!r}", part=part)
        headers.append((match.group(1).decode("ascii"), match.group(2).decode("latin-1")))
    return tuple(headers)


def parse_request(
    data: bytes, limits: Limits, part: int | None = None
) -> tuple[str, str, Headers, bytes]:
    """Parse one embedded request into (method, target, headers, body)."""
    lines, body_start = _split_head(data, limits.max_header_size, part)
    if not lines:
        raise MalformedBatch("the part holds no HTTP request", part=part)
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        raise MalformedBatch(f"invalid HTTP request line {lines[0][:80]!r}", part=part)
    method, target, version = match.groups()
    if version is not None and version not in _SUPPORTED_VERSIONS:
        raise MalformedBatch(f"unsupported HTTP version {version.decode()}", part=part)
    headers = _parse_fields(lines[1:], part)
    body = _request_body(headers, data[body_start:], part)
    return method.decode("ascii"), target.decode("ascii"), headers, body


def _request_body(headers: Headers, rest: bytes, part: int | None) -> bytes:
    lengths = {value for name, value in headers if name.lower() == "content-length"}
    if any(name.lower() == "transfer-encoding" for name, _ in headers):
        raise MalformedBatch(
            "Transfer-Encoding is not supported inside a part: send Content-Length, "
            "or no length at all and let the body run to the part's end",
            part=part,
        )
    if not lengths:
        # Without a length the body runs to the part's end; blank lines alone are no body.
        return rest if rest.strip(b"\r\n") else b""
    if len(lengths) > 1:
        raise MalformedBatch(f"conflicting Content-Length values {sorted(lengths)}", part=part)
    (length_text,) = lengths
    if not length_text.isdigit() or not length_text.isascii():
        raise MalformedBatch(f"invalid Content-Length {length_text!r}", part=part)
    length = int(length_text)
    if length > len(rest):
        raise MalformedBatch(
            f"Content-Length {length} is larger than the body ({len(rest)} bytes)", part=part
        )
    if rest[length:].strip(_WHITESPACE):
        raise MalformedBatch(f"the body is longer than its Content-Length {length}", part=part)
    return rest[:length]


def serialise_response(response: SubResponse, *, head: bool = False) -> bytes:
    """A complete HTTP/1.1 response with an exact Content-Length.

    For a HEAD request and a 304 the body is empty and the Content-Length the application gave
    (the size of the representation) is kept; otherwise it is the body's length.
    """
    if not 100 <= response.status <= 999:
        raise ValueError(f"invalid status code {response.status}")
    reason = response.reason or reason_phrase(response.status)
    lines = [f"HTTP/1.1 {response.status} ".encode("ascii") + encode_text(reason, "reason phrase")]
    keep_length = head or response.status == 304
    length: str | None = None
    for name, value in response.headers:
        lowered = name.lower()
        if lowered in HOP_BY_HOP:
            continue
        if lowered == "content-length":
            length = value
            continue
        lines.append(encode_field(name, value))
    if not (keep_length and length is not None and length.isdigit()):
        length = str(len(response.body))
    lines.append(b"Content-Length: " + length.encode("ascii"))
    body = b"" if keep_length else response.body
    return CRLF.join(lines) + CRLF + CRLF + body


def serialise_request(method: str, target: str, headers: Headers, body: bytes) -> bytes:
    """A complete HTTP/1.1 request for a part; adds Content-Length when there is a body."""
    lines = [f"{method} {target} HTTP/1.1".encode("ascii")]
    lines.extend(
        encode_field(name, value) for name, value in headers if name.lower() != "content-length"
    )
    if body:
        lines.append(b"Content-Length: " + str(len(body)).encode("ascii"))
    return CRLF.join(lines) + CRLF + CRLF + body


def parse_response(data: bytes, part: int | None = None) -> SubResponse:
    """Parse one embedded response; the body is bounded by Content-Length when it has one."""
    lines, body_start = _split_head(data, None, part)
    if not lines:
        raise MalformedBatch("the part holds no HTTP response", part=part)
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise MalformedBatch(f"invalid HTTP status line {lines[0][:80]!r}", part=part)
    status = int(match.group(1))
    reason = (match.group(2) or b"").decode("latin-1")
    headers = _parse_fields(lines[1:], part)
    body = data[body_start:]
    length = next((v for k, v in headers if k.lower() == "content-length"), None)
    if length is not None and length.isdigit() and int(length) <= len(body):
        body = body[: int(length)]
    return SubResponse(status, reason, headers, body)
