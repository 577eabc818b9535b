"""HTTP/1.1 messages inside a part: parse requests, serialise responses, and the reverse.

The grammar follows RFC 9112 (and h11's ``_abnf.py``) where clients agree with it, and is
liberal where real batch clients are not: bare-LF line ends, no space after the colon, no
HTTP version, no ``Host``, and no ``Content-Length`` (the body then runs to the part's end).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import LimitExceeded, MalformedBatch, reason_phrase
from .fields import CRLF, TOKEN, encode_fields, encode_text, head_end, number, parse_fields
from .model import UNLIMITED, Headers, Limits, SubResponse

__all__ = [
    "HOP_BY_HOP",
    "MAX_CHUNKS",
    "REQUEST_LINE",
    "SUPPORTED_VERSIONS",
    "EncodedBlocks",
    "ResponseHead",
    "check_status",
    "encoded_block",
    "kept_fields",
    "parse_request",
    "parse_response",
    "parse_response_head",
    "response_head",
    "serialise_request",
    "serialise_response",
]

#: A request line without its line end: groups method, target, and version (optional).
REQUEST_LINE = rb"(" + TOKEN + rb") ([\x21-\x7e]+)(?: (HTTP/\d\.\d))?"
_REQUEST_LINE = re.compile(REQUEST_LINE)
_REQUEST_LINE_AT_START = re.compile(_REQUEST_LINE.pattern + rb"\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/\d\.\d ([0-9]{3})(?: (.*))?")
_LEADING_LINE_ENDS = re.compile(rb"[\r\n]*")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n")
#: The HTTP versions a part's request line may name (or none).
SUPPORTED_VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")
_WHITESPACE = b" \t\r\n"

#: Headers that describe one connection, not the message: never copied into a part's answer.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}
)


def _split_head(
    data: bytes | bytearray, limits: Limits | None, part: int | None
) -> tuple[bytes | bytearray, Headers, int]:
    """The start line, the header fields, and where the body begins.

    Empty lines before the start line are skipped (RFC 9112 section 2.2); headers that run to
    the part's end without a blank line mean the message has no body.
    """
    start = 0
    if data.startswith((b"\r", b"\n")):
        start = _LEADING_LINE_ENDS.match(data).end()  # type: ignore[union-attr]
    newline = data.find(b"\n", start)
    if newline < 0:
        _check_head_size(len(data) - start, limits, part)
        return data[start:].rstrip(b"\r"), (), len(data)
    headers, body_start = _fields(data, start, newline + 1, limits, part)
    return data[start:newline].rstrip(b"\r"), headers, body_start


def _fields(
    data: bytes | bytearray,
    start: int,
    fields_start: int,
    limits: Limits | None,
    part: int | None,
    *,
    seen: dict[bytes, Headers] | None = None,
) -> tuple[Headers, int]:
    """The fields from ``fields_start`` to the blank line, and where the body begins.

    ``start`` is where the start line begins: the head's size counts from there.
    """
    found = head_end(data, fields_start)
    block_end, body_start = (len(data), len(data)) if found is None else found
    _check_head_size(body_start - start, limits, part)
    block = data[fields_start:block_end]
    if block and not block.endswith(b"\n"):
        block += b"\n"
    return parse_fields(block, limits or UNLIMITED, part, seen=seen), body_start


def _check_head_size(size: int, limits: Limits | None, part: int | None) -> None:
    if limits is not None and size > limits.max_header_size:
        raise LimitExceeded.of(
            limits,
            "max_header_size",
            "the HTTP request line and headers are longer than {value} bytes",
            part=part,
        )


def parse_request(
    data: bytes | bytearray,
    limits: Limits,
    part: int | None = None,
    *,
    seen: dict[bytes, Headers] | None = None,
) -> tuple[str, str, Headers, bytes | bytearray]:
    """Parse one embedded request into (method, target, headers, body).

    A bytearray (a large part the reader handed over) is taken over too: it is trimmed in
    place to become the body, instead of the body being copied out of it. ``seen``: header
    blocks already read (see :func:`~.fields.parse_fields`).
    """
    line = _REQUEST_LINE_AT_START.match(data)
    if line is not None:  # the common case: the request line first, whole
        method, target, version = line.groups()
        headers, body_start = _fields(data, 0, line.end(), limits, part, seen=seen)
    else:
        start_line, headers, body_start = _split_head(data, limits, part)
        if not start_line:
            raise MalformedBatch("the part holds no HTTP request", part=part)
        match = _REQUEST_LINE.fullmatch(start_line)
        if match is None:
            raise MalformedBatch(f"invalid HTTP request line {start_line[:80]!r}", part=part)
        method, target, version = match.groups()
    if version is not None and version not in SUPPORTED_VERSIONS:
        raise MalformedBatch(f"unsupported HTTP version {version.decode()}", part=part)
    length: str | None = None
    for name, value in headers:
        # Only the framing headers matter here; most names start with neither letter.
        if name[0] in "CcTt":
            lowered = name.lower()
            if lowered == "content-length":
                if length is not None and value != length:
                    raise MalformedBatch(
                        f"conflicting Content-Length values {sorted({length, value})}", part=part
                    )
                length = value
            elif lowered == "transfer-encoding":
                chunked = _chunked_body(headers, data, body_start, part)
                # Decoded: the framing header goes, so that nothing downstream sees a body
                # framed twice (the adapter sets the Content-Length of what was decoded).
                unframed = tuple(f for f in headers if f[0].lower() != "transfer-encoding")
                return method.decode("ascii"), target.decode("ascii"), unframed, chunked
    if length is None:
        # Without a length the body runs to the part's end; blank lines alone are no body.
        line_ends = data.count(b"\n", body_start) + data.count(b"\r", body_start)
        blank = line_ends == len(data) - body_start
        body = b"" if blank else _take(data, body_start, len(data))
    else:
        body = _sized_body(length, data, body_start, part)
    return method.decode("ascii"), target.decode("ascii"), headers, body


def _chunked_body(headers: Headers, data: bytes | bytearray, start: int, part: int | None) -> bytes:
    """The body of a request with Transfer-Encoding: chunked alone, and no Content-Length."""
    codings: list[str] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == "content-length":
            # Both framings at once is how requests are smuggled (RFC 9112 section 6.3).
            raise MalformedBatch("a part has both Transfer-Encoding and Content-Length", part=part)
        if lowered == "transfer-encoding":
            codings.extend(c.strip().lower() for c in value.split(","))
    if codings != ["chunked"]:
        raise MalformedBatch(
            f"Transfer-Encoding {', '.join(codings)!r} is not supported: only chunked", part=part
        )
    return _dechunk(data, start, part)


def _sized_body(
    length_text: str, data: bytes | bytearray, start: int, part: int | None
) -> bytes | bytearray:
    """The body a Content-Length frames; nothing but line ends may follow it."""
    length = number(length_text)
    if length is None:
        raise MalformedBatch(f"invalid Content-Length {length_text[:40]!r}", part=part)
    available = len(data) - start
    if length > available:
        raise MalformedBatch(
            f"Content-Length {length} is larger than the body ({available} bytes)", part=part
        )
    end = start + length
    if end < len(data) and data[end:].strip(_WHITESPACE):
        raise MalformedBatch(f"the body is longer than its Content-Length {length}", part=part)
    return _take(data, start, end)


def _take(data: bytes | bytearray, start: int, end: int) -> bytes | bytearray:
    """``data[start:end]``; a bytearray is trimmed in place to it instead (no copy)."""
    if isinstance(data, bytes):
        return data[start:end]
    del data[end:]
    del data[:start]  # at the front: a bytearray only moves its start
    return data


#: Chunks one part's body may come in. Each costs a step in Python (about 0.7 µs), so a body
#: of one-byte chunks would cost 100 times its plain reading; a client that knows its body
#: sends it with a Content-Length, and one that streams it uses chunks far larger than
#: ``max_part_size / MAX_CHUNKS`` (8 KiB at the default).
MAX_CHUNKS = 1024


def _dechunk(data: bytes | bytearray, position: int, part: int | None) -> bytes:
    """The body of a chunked message (RFC 9112 section 7.1); extensions and trailers ignored."""
    chunks: list[bytes | bytearray] = []
    while True:
        match = _CHUNK_SIZE.match(data, position)
        if match is None:
            raise MalformedBatch(
                f"invalid chunk size line {data[position : position + 40]!r}", part=part
            )
        size = int(match.group(1), 16)
        position = match.end()
        if size == 0:
            break
        if len(chunks) == MAX_CHUNKS:
            raise MalformedBatch(
                f"the part's chunked body has more than {MAX_CHUNKS} chunks: send it with a "
                "Content-Length, or in larger chunks",
                part=part,
            )
        end = position + size
        if end > len(data):
            raise MalformedBatch("a chunk runs past the end of the part", part=part)
        chunks.append(data[position:end])
        if data.startswith(b"\r\n", end):
            position = end + 2
        elif data.startswith(b"\n", end):
            position = end + 1
        else:
            raise MalformedBatch("a chunk is not followed by a line end", part=part)
    _check_trailers(data, position, part)
    return b"".join(chunks)


def _check_trailers(data: bytes | bytearray, position: int, part: int | None) -> None:
    """After the last chunk: trailer fields (read and dropped), then nothing but line ends."""
    if not data[position:].strip(_WHITESPACE):
        return
    found = head_end(data, position)
    block_end, rest = (len(data), len(data)) if found is None else found
    block = data[position:block_end]
    if block and not block.endswith(b"\n"):
        block += b"\n"
    try:
        parse_fields(block, UNLIMITED, part)
    except MalformedBatch:
        raise MalformedBatch(
            f"bytes after the last chunk are not trailer fields: {block[:40]!r}", part=part
        ) from None
    if data[rest:].strip(_WHITESPACE):
        raise MalformedBatch("bytes after the end of the chunked body", part=part)


def serialise_response(response: SubResponse, *, head: bool = False) -> bytes:
    """A complete HTTP/1.1 response with an exact Content-Length (see :func:`response_head`)."""
    status_line, field_lines, body = response_head(response, head=head)
    return b"".join((status_line, field_lines, CRLF, body))


#: Header blocks checked and encoded (the lines, the Content-Length given), by block.
EncodedBlocks = dict[Headers, tuple[bytes, str | None]]


def response_head(
    response: SubResponse, *, head: bool = False, seen: EncodedBlocks | None = None
) -> tuple[bytes, bytes, bytes | bytearray]:
    """The status line, the header lines, and the body to send after a blank line.

    In pieces, so that a writer copies them once, into its part. Raises ValueError for what
    cannot be framed safely: a status that is not three digits, a field that could inject
    (:func:`encoded_block`); hop-by-hop fields are dropped and the Content-Length is exact
    but for a HEAD request and a 304, whose body is empty and whose Content-Length is the
    one the application gave (the size of the representation). ``seen``: the header blocks
    a writer encoded so far, filled in (:func:`encoded_block`).
    """
    check_status(response.status)
    keep_length = head or response.status == 304
    lines, given = encoded_block(response.headers, seen)
    if keep_length and given is not None and given.isascii() and given.isdigit():
        lines += b"Content-Length: " + given.encode("ascii") + CRLF
    else:
        lines += b"Content-Length: %d\r\n" % len(response.body)
    key = (response.status, response.reason)
    status_line = _STATUS_LINES.get(key)
    if status_line is None:
        reason = encode_text(response.reason or reason_phrase(response.status), "reason phrase")
        status_line = b"HTTP/1.1 %d %s\r\n" % (response.status, reason)
        if len(_STATUS_LINES) < 1024:
            _STATUS_LINES[key] = status_line  # a few statuses recur in every answer
    return status_line, lines, b"" if keep_length else response.body


#: Status lines already checked and encoded, by (status, reason phrase); bounded.
_STATUS_LINES: dict[tuple[int, str], bytes] = {}


def encoded_block(headers: Headers, seen: EncodedBlocks | None) -> tuple[bytes, str | None]:
    """The lines of ``headers`` but Content-Length and the hop-by-hop ones, and the
    Content-Length they give; ValueError for a field that could inject. A batch's parts
    answer alike (their headers differ in the length, if at all): each distinct block is
    checked and encoded once per writer, in ``seen`` (bounded). Per batch, as the parser's
    table: no answer's header values (a ``Set-Cookie``) outlive their batch in the process."""
    try:
        known = None if seen is None else seen.get(headers)
    except TypeError:  # a list of fields: not a key, encoded each time
        known = seen = None
    if known is None:
        fields, given = kept_fields(headers)
        known = (encode_fields(tuple(fields)), given)
        if seen is not None and len(seen) < _SEEN_BLOCKS:
            seen[headers] = known
    return known


#: Distinct header blocks a writer remembers (a block past them is encoded each time).
_SEEN_BLOCKS = 64


def check_status(status: int) -> None:
    """ValueError for a status that cannot be sent (not three digits)."""
    if not 100 <= status <= 999:
        raise ValueError(f"invalid status code {status}")


def kept_fields(headers: Headers) -> tuple[list[tuple[str, str]], str | None]:
    """The fields of ``headers`` sent on (not Content-Length, not hop-by-hop), and the last
    Content-Length they give."""
    length: str | None = None
    fields = []
    for field in headers:
        lowered = field[0].lower()
        if lowered == "content-length":
            length = field[1]
        elif lowered not in HOP_BY_HOP:
            fields.append(field)
    return fields, length


def serialise_request(
    method: str,
    target: str,
    headers: Headers,
    body: bytes | bytearray,
    *,
    seen: dict[Headers, bytes] | None = None,
) -> bytes:
    """A complete HTTP/1.1 request for a part; adds Content-Length when there is a body.

    ``seen``: header blocks already encoded, by their fields (one batch's requests tend to
    repeat their headers, as :func:`~.fields.parse_fields` reads them); it is filled in.
    """
    request_line = f"{method} {target} HTTP/1.1\r\n".encode("ascii")
    known = seen if type(headers) is tuple else None  # a key must be hashable
    lines = None if known is None else known.get(headers)
    if lines is None:
        lines = encode_fields(tuple(f for f in headers if f[0].lower() != "content-length"))
        if known is not None and len(known) < _SEEN_FIELDS:
            known[headers] = lines
    length = b"Content-Length: %d\r\n" % len(body) if body else b""
    return b"".join((request_line, lines, length, CRLF, body))


#: Header blocks one batch's encoding remembers (:func:`serialise_request`): a bound on its
#: memory.
_SEEN_FIELDS = 256


def parse_response(data: bytes | bytearray, part: int | None = None) -> SubResponse:
    """Parse one embedded response; the body is bounded by Content-Length when it has one."""
    head, body_start = parse_response_head(data, part)
    end = len(data)
    if head.length is not None:
        end = min(end, body_start + head.length)
    body = bytes(data[body_start:end]) if isinstance(data, bytearray) else data[body_start:end]
    return SubResponse(head.status, head.reason, head.headers, body)


class ResponseHead(NamedTuple):
    """An embedded response's status line and header fields, read."""

    status: int
    reason: str
    headers: Headers
    #: What its Content-Length says, when that is a plain number: where its body ends.
    length: int | None


def parse_response_head(data: bytes | bytearray, part: int | None) -> tuple[ResponseHead, int]:
    """The head of the response in ``data`` (:func:`parse_response`), and where its body
    begins. It depends on the bytes before that offset alone, which is what lets a reader
    keep the heads it has read by their bytes."""
    status_line, headers, body_start = _split_head(data, None, part)
    match = _STATUS_LINE.fullmatch(status_line)
    if match is None:
        raise MalformedBatch(f"invalid HTTP status line {status_line[:80]!r}", part=part)
    length = _response_length(headers, part)
    reason = (match.group(2) or b"").decode("latin-1")
    head = ResponseHead(
        int(match.group(1)), reason, headers, None if length is None else number(length)
    )
    return head, body_start


def _response_length(headers: Headers, part: int | None) -> str | None:
    """A response's Content-Length, as it says it; MalformedBatch if its values differ (in
    several fields, or in one field's list), which leaves its framing unknown (RFC 9112
    section 6.3), as the request reader refuses them in a part."""
    length: str | None = None
    for name, value in headers:
        if name.lower() != "content-length":
            continue
        for item in value.split(","):
            said = item.strip()
            if length is None:
                length = said
            elif said != length:
                raise MalformedBatch(
                    f"conflicting Content-Length values {length[:20]!r} and {said[:20]!r}",
                    part=part,
                )
    return length
