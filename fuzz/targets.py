"""The fuzz targets: each reads the fuzzer's bytes, and raises if a wire-core invariant breaks.

Pure Python (no atheris), so pytest replays the seed corpus and every regression input on
machines without the fuzzer (``tests/test_fuzz_regressions.py``). A target may raise only
:class:`Finding` (an invariant broke) or whatever the library let escape; a refusal of the input
is a :class:`~flask_batch.wire.errors.BatchError` with a 4xx status, and is fine.

Input layout: byte 0 picks the target (its value modulo 5, see :data:`TARGETS`); the rest is read
by that target with a :class:`Cursor`, as documented on its ``*_input`` encoder, which the seed
builder (``fuzz/make_seeds.py``) uses too. Every byte string is a valid input.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from flask_batch.answers import INVALID_RESPONSE
from flask_batch.wire.content_coding import BodyDecoder
from flask_batch.wire.errors import (
    BatchError,
    LimitExceeded,
    MalformedBatch,
    problem_body,
    reason_phrase,
)
from flask_batch.wire.fields import TOKEN, encode_fields
from flask_batch.wire.formats import Metered
from flask_batch.wire.http1 import (
    HOP_BY_HOP,
    check_status,
    kept_fields,
    parse_request,
    parse_response,
    serialise_request,
)
from flask_batch.wire.json_answers import JsonResponseWriter, canonical_name, read_json_responses
from flask_batch.wire.json_bodies import is_json
from flask_batch.wire.json_requests import JsonRequestReader, encode_json_requests
from flask_batch.wire.media_type import boundary_of, parse_media_type
from flask_batch.wire.model import KIB, MIB, UNLIMITED, Headers, Limits, SubRequest, SubResponse
from flask_batch.wire.multipart_answers import (
    AnswerStream,
    ReadAnswer,
    ResponseWriter,
    read_answers,
    read_responses,
)
from flask_batch.wire.multipart_requests import RequestReader, encode_requests, read_requests

READER, MESSAGE, ROUNDTRIP, DECODER, JSON = range(5)
#: Target names for ``fuzz_batch.py --target``; "all" lets byte 0 choose.
TARGETS = {
    "reader": READER,
    "message": MESSAGE,
    "roundtrip": ROUNDTRIP,
    "decoder": DECODER,
    "json": JSON,
}
DEFAULT = 255  # a limit byte of 255 means the limit's default (large enough for real batches)
BYTEWISE = 300  # bodies up to this size are also read one byte at a time

_TOKEN = re.compile(TOKEN.decode("ascii"))
_VISIBLE = re.compile(r"[\x21-\x7e]+")
_NOT_IN_VALUE = re.compile(r"[\r\n\x00]")
_FIELD_VALUE = re.compile(r"[^\r\n\x00\u0100-\U0010ffff]*")  # Latin-1, no CR, LF or NUL


class Finding(AssertionError):
    """An invariant of the wire core does not hold for this input."""


class Cursor:
    """Reads the fuzzer's bytes front to back; past the end, bytes are 0 and lines empty."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def byte(self) -> int:
        if self._at >= len(self._data):
            return 0
        self._at += 1
        return self._data[self._at - 1]

    def take(self, size: int) -> bytes:
        chunk = self._data[self._at : self._at + size]
        self._at += len(chunk)
        return chunk

    def line(self, limit: int = 256) -> bytes:
        """The bytes up to the next LF (dropped), or the next ``limit`` bytes if none is near."""
        end = self._data.find(b"\n", self._at, self._at + limit)
        if end < 0:
            return self.take(limit)
        chunk = self._data[self._at : end]
        self._at = end + 1
        return chunk

    def rest(self) -> bytes:
        return self.take(len(self._data) - self._at)


@dataclass(frozen=True)
class Refused:
    """How an input was refused: what must not depend on chunking."""

    error: str
    limit: str | None = None
    part: int | None = None


def refused(error: BatchError) -> Refused:
    """Check that a refusal is a 4xx with a problem document, and describe it."""
    if not 400 <= error.status < 500:
        raise Finding(f"{type(error).__name__} has status {error.status}, not a 4xx: {error}")
    problem_body(error.problem())  # the answer that carries it must be writable
    limit = error.limit if isinstance(error, LimitExceeded) else None
    return Refused(type(error).__name__, limit, error.part)


#: The work a reader may do per byte it reads (its ``scanned`` meter): a few looks at each
#: byte. The multipart reader finds a header block then parses it, searches content and may
#: move a large part's content once, walks blanks and looks past them at most as far again.
COST_PER_BYTE = 4
#: And per read, whatever its size.
COST_FIXED = 256
#: The JSON reader's allowance: it checks the UTF-8 of the whole text, then matches each value
#: (an error is diagnosed with one more match), and its fixed cost covers a document's shell.
JSON_COST_PER_BYTE = 8
JSON_COST_FIXED = 1024


def check_cost(
    work: int,
    size: int,
    what: str,
    overlap: int = 0,
    *,
    per_byte: int = COST_PER_BYTE,
    fixed: int = COST_FIXED,
) -> None:
    """Refuse work that is not linear in the input: ``work`` (a reader's ``scanned``) over
    ``per_byte * size + fixed``, plus ``overlap``: the bytes the reader may look at again by
    design (the multipart reader, a delimiter's length per push)."""
    bound = per_byte * size + fixed + overlap
    if work > bound:
        raise Finding(f"{what}: {work} bytes examined for {size} received (bound {bound})")


def check_reader_cost(reader: Metered, chunks: Sequence[bytes], overlap: int = 0) -> None:
    """:func:`check_cost` for a reader that was fed ``chunks``, and may look again at
    ``overlap`` bytes per push."""
    size = sum(len(chunk) for chunk in chunks)
    what = f"{type(reader).__name__}, {len(chunks)} chunks"
    check_cost(reader.scanned, size, what, overlap * len(chunks))


def split(data: bytes, sizes: Iterable[int]) -> list[bytes]:
    """``data`` cut into chunks of ``sizes`` (some may be empty), the rest as the last chunk."""
    chunks = []
    at = 0
    for size in sizes:
        chunks.append(data[at : at + size])
        at += size
    chunks.append(data[at:])
    return chunks


def _chunk_sizes(cursor: Cursor) -> list[int]:
    """A count byte (modulo 16), then one byte per size: 0-127 as is, above in steps of 64."""
    return [_chunk_size(cursor.byte()) for _ in range(cursor.byte() % 16)]


def _chunk_size(value: int) -> int:
    return value if value < 128 else (value - 127) * 64


# --------------------------------------------------------------------------------------------
# Target 0: RequestReader over arbitrary bodies, whole and chunked


def reader_input(
    content_type: bytes, body: bytes, *, limits: bytes = bytes([DEFAULT] * 5), chunks: bytes = b""
) -> bytes:
    """[0] target; [1:6] limits (parts, body, part, header bytes, header count; 255: default);
    a count of chunk sizes and the sizes; the Content-Type line up to LF; then the body."""
    assert len(limits) == 5
    assert b"\n" not in content_type
    return bytes([READER]) + limits + bytes([len(chunks)]) + chunks + content_type + b"\n" + body


def _small_limits(cursor: Cursor) -> Limits:
    parts, body, part, header, headers = (cursor.byte() for _ in range(5))
    default = Limits()
    return Limits(
        max_parts=default.max_parts if parts == DEFAULT else 1 + parts % 16,
        max_body_size=default.max_body_size if body == DEFAULT else 32 + body * 64,
        max_part_size=default.max_part_size if part == DEFAULT else 16 + part * 32,
        max_header_size=default.max_header_size if header == DEFAULT else 8 + header * 8,
        max_headers=default.max_headers if headers == DEFAULT else 1 + headers % 32,
    )


def _read(
    content_type: str, chunks: Sequence[bytes], limits: Limits, *, one_pass: bool = True
) -> tuple[SubRequest, ...] | Refused:
    """The requests or the refusal; the reader's work is checked against the bytes it got."""
    try:
        reader = RequestReader(boundary_of(content_type), limits, one_pass=one_pass)
    except BatchError as error:
        return refused(error)
    result: tuple[SubRequest, ...] | Refused
    try:
        for chunk in chunks:
            reader.feed(chunk)
        result = tuple(reader.close())
    except BatchError as error:
        result = refused(error)
    # Each push may look again at the bytes at the buffer's end that may begin a delimiter.
    check_reader_cost(reader, chunks, len(boundary_of(content_type)) + len("\n--"))
    return result


def reader_case(cursor: Cursor) -> tuple[Limits, list[int], str, bytes]:
    """What a reader input (:func:`reader_input`, after its byte 0) holds: the limits, the
    chunk sizes, the Content-Type and the body."""
    limits = _small_limits(cursor)
    sizes = _chunk_sizes(cursor)
    return limits, sizes, cursor.line(512).decode("latin-1"), cursor.rest()


def check_reader(cursor: Cursor) -> None:
    """Only 4xx BatchErrors; the same requests or refusal read whole, in the fuzzer's chunks
    and (short bodies) byte by byte, and with the usual parts read in one pass or not; what
    was read respects the limits."""
    limits, sizes, content_type, body = reader_case(cursor)
    whole = _read(content_type, [body], limits)
    general = _read(content_type, [body], limits, one_pass=False)
    if whole != general:
        raise Finding(f"the one-pass reading gives {whole!r}, the general one {general!r}")
    chunkings = [split(body, sizes)]
    if len(body) <= BYTEWISE:
        chunkings.append([body[i : i + 1] for i in range(len(body))])
    for chunks in chunkings:
        chunked = _read(content_type, chunks, limits)
        # Read whole, the size limit trips first; streamed, an earlier part may be refused first.
        streamed_first = (
            len(body) > limits.max_body_size
            and whole == Refused("LimitExceeded", "max_body_size")
            and isinstance(chunked, Refused)
        )
        if whole != chunked and not streamed_first:
            raise Finding(f"chunking changes the result: whole {whole!r}, chunked {chunked!r}")
    if isinstance(whole, tuple):
        _check_within(whole, limits, len(body))
    # The client's reader of batch answers, on the same bytes: its one pass over an answer
    # shaped as the server writes one (bytes) reads what its general reader does (the rest).
    answered = _answers(content_type, body)
    answered_generally = _answers(content_type, bytearray(body))
    if answered != answered_generally:
        raise Finding(
            f"the answer reads {answered!r} in one pass, {answered_generally!r} in general"
        )
    # Read as it arrives, in the same pieces: the same answers, or a failure too (which
    # error comes first may differ: the whole reading names a framing error first).
    for chunks in chunkings:
        streamed = _streamed_answers(content_type, chunks)
        if streamed != (None if isinstance(answered, tuple) else answered):
            raise Finding(f"the answer reads {answered!r} whole, {streamed!r} as it arrives")


def _answers(content_type: str, body: bytes | bytearray) -> list[ReadAnswer] | tuple[Refused, str]:
    """The answers read, or how they were refused and the message saying why."""
    try:
        return read_answers(content_type, body)  # type: ignore[arg-type]  # a bytearray too
    except BatchError as error:
        return refused(error), str(error)


def _streamed_answers(content_type: str, chunks: Iterable[bytes]) -> list[ReadAnswer] | None:
    """The answers read as they arrive in ``chunks`` (None: refused), each piece's answers
    in order and none lost when the reading closes."""
    try:
        stream = AnswerStream(content_type)
    except BatchError:
        return None
    given: list[ReadAnswer] = []
    for chunk in chunks:
        given += stream.feed(chunk)
    try:
        answers = stream.close()
    except BatchError:
        return None
    if answers[: len(given)] != given:
        raise Finding(f"{given!r} were given as the answer arrived, then {answers!r}")
    return answers


def _check_within(requests: tuple[SubRequest, ...], limits: Limits, size: int) -> None:
    """What was read respects every limit."""
    if size > limits.max_body_size or len(requests) > limits.max_parts:
        raise Finding(f"{len(requests)} requests read from {size} bytes under {limits!r}")
    for request in requests:
        if len(request.headers) > limits.max_headers or len(request.body) > limits.max_part_size:
            raise Finding(f"{request!r} read under {limits!r}")


# --------------------------------------------------------------------------------------------
# Target 1: parse_request and parse_response on arbitrary messages


def message_input(
    message: bytes, *, header_size: int = DEFAULT, headers: int = DEFAULT, part: int = 0
) -> bytes:
    """[0] target; [1] max_header_size, [2] max_headers (255: default); [3] part (0: None);
    then the message."""
    return bytes([MESSAGE, header_size, headers, part]) + message


def check_message(cursor: Cursor) -> None:
    """Only 4xx BatchErrors naming the part; a parsed request is valid and re-serialisable."""
    header_size, headers = cursor.byte(), cursor.byte()
    limits = Limits(
        max_header_size=16 * KIB if header_size == DEFAULT else 8 + header_size * 8,
        max_headers=100 if headers == DEFAULT else 1 + headers % 32,
    )
    part = cursor.byte() or None
    data = cursor.rest()
    try:
        method, target, fields, body = parse_request(data, limits, part)
    except BatchError as error:
        _check_part(refused(error), part)
    else:
        _check_request(method, target, fields, body)
    try:
        response = parse_response(data, part)
    except BatchError as error:
        _check_part(refused(error), part)
    else:
        _check_fields(response.headers)
        if not 0 <= response.status <= 999:
            raise Finding(f"parse_response gave {response!r}")


def _check_part(refusal: Refused, part: int | None) -> None:
    if refusal.part != part:
        raise Finding(f"{refusal!r} does not name part {part}")


def _check_fields(fields: Headers) -> None:
    for name, value in fields:
        if not _TOKEN.fullmatch(name) or _NOT_IN_VALUE.search(value) or value != value.strip(" \t"):
            raise Finding(f"invalid header field {name!r}: {value!r}")


def _check_request(method: str, target: str, fields: Headers, body: bytes | bytearray) -> None:
    if not (_TOKEN.fullmatch(method) and _VISIBLE.fullmatch(target)):
        raise Finding(f"invalid request line {method!r} {target!r}")
    _check_fields(fields)
    if any(name.lower() == "transfer-encoding" for name, _ in fields):
        return  # the body was dechunked: serialising it again is the caller's business
    again = parse_request(serialise_request(method, target, fields, body), UNLIMITED)
    expected = (method, target, _request_fields(fields, body), body)
    if again != expected:
        raise Finding(f"serialised and parsed again, {expected!r} became {again!r}")


def _request_fields(fields: Headers, body: bytes | bytearray) -> Headers:
    """The fields of a request as serialise_request writes them: its own Content-Length."""
    kept = tuple((name, value) for name, value in fields if name.lower() != "content-length")
    return (*kept, ("Content-Length", str(len(body)))) if body else kept


# --------------------------------------------------------------------------------------------
# Target 2: requests and responses written by the library and read back


def roundtrip_input(boundary: bytes, exchanges: Sequence[bytes], *, chunk: int = DEFAULT) -> bytes:
    """[0] target; [1] chunk size - 1 for read_requests (255: one chunk); the boundary line; a
    count byte (1 + value % 8); then that many request/response pairs, as :func:`exchange`
    encodes them."""
    assert 1 <= len(exchanges) <= 8
    return (
        bytes([ROUNDTRIP, chunk])
        + boundary
        + b"\n"
        + bytes([len(exchanges) - 1])
        + b"".join(exchanges)
    )


def exchange(
    method: bytes,
    target: bytes,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    content_id: bytes | None = None,
    status: int = 200,
    reason: bytes = b"OK",
    response_headers: Sequence[tuple[bytes, bytes]] = (),
    response_body: bytes = b"",
) -> bytes:
    """One request/response pair: lines end with LF, counts and lengths are one byte each
    (lengths 0-127 as is, above in steps of 16: give bodies of such lengths)."""
    request = [method + b"\n", target + b"\n", _encode_fields(headers)]
    request.append(b"\x00" if content_id is None else b"\x01" + content_id + b"\n")
    request.append(_encode_body(body))
    response = [bytes([(status - 100) // 256, (status - 100) % 256]), reason + b"\n"]
    response += [_encode_fields(response_headers), _encode_body(response_body)]
    return b"".join(request + response)


def _encode_fields(fields: Sequence[tuple[bytes, bytes]]) -> bytes:
    return bytes([len(fields)]) + b"".join(name + b"\n" + value + b"\n" for name, value in fields)


def _encode_body(body: bytes) -> bytes:
    size = len(body)
    code = size if size < 128 else 127 + size // 16
    assert _body_size(code) == size, "a body length must be below 128 or a multiple of 16"
    return bytes([code]) + body


def _body_size(code: int) -> int:
    return code if code < 128 else (code - 127) * 16


def _token(raw: bytes, default: str) -> str:
    text = "".join(_TOKEN.findall(raw.decode("latin-1")))
    return text or default


def _value(raw: bytes) -> str:
    return _NOT_IN_VALUE.sub("", raw.decode("latin-1")).strip(" \t")


def _fields(cursor: Cursor, *, response: bool) -> Headers:
    fields = []
    for _ in range(cursor.byte() % 8):
        name = _token(cursor.line(), "X-Fuzz")
        value = _value(cursor.line())
        lowered = name.lower()
        if lowered == "content-length":
            value = "".join(c for c in value if c in "0123456789")  # a length, if any, is digits
        if lowered == "transfer-encoding" and not response:
            continue  # a request's framing is the library's: not representable
        fields.append((name, value))
    return tuple(fields)


def _boundary(raw: bytes) -> str:
    text = raw.decode("latin-1")
    try:
        valid = boundary_of(f'multipart/mixed; boundary="{text}"') == text
    except BatchError:
        valid = False
    return text if valid else "fuzz-boundary"


def _exchange(cursor: Cursor) -> tuple[SubRequest, SubResponse]:
    method = _token(cursor.line(), "GET")
    target = "".join(_VISIBLE.findall(cursor.line().decode("latin-1"))) or "/"
    fields = _fields(cursor, response=False)
    content_id = _value(cursor.line()) if cursor.byte() % 2 else None
    body = cursor.take(_body_size(cursor.byte()))
    request = SubRequest(method, target, fields, body, content_id)
    status = 100 + (cursor.byte() * 256 + cursor.byte()) % 900
    reason = _value(cursor.line())
    response_fields = _fields(cursor, response=True)
    response = SubResponse(status, reason, response_fields, cursor.take(_body_size(cursor.byte())))
    return request, response


def _as_read(response: SubResponse, request: SubRequest) -> SubResponse:
    """What the client reads back of ``response``, as serialise_response frames it."""
    bodiless = request.method == "HEAD" or response.status == 304
    given = None  # the last Content-Length the application set
    kept = []
    for name, value in response.headers:
        lowered = name.lower()
        if lowered == "content-length":
            given = value
        elif lowered not in HOP_BY_HOP:
            kept.append((name, value))
    length = given if bodiless and given is not None and given.isdigit() else None
    length = length or str(len(response.body))
    return SubResponse(
        response.status,
        response.reason or reason_phrase(response.status),
        (*kept, ("Content-Length", length)),
        b"" if bodiless else response.body,
    )


def check_roundtrip(cursor: Cursor) -> None:
    """encode_requests -> read_requests and ResponseWriter -> read_responses give back what
    went in, for every input the format can carry (no delimiter line inside a message)."""
    chunk = cursor.byte()
    boundary = _boundary(cursor.line(80))
    pairs = [_exchange(cursor) for _ in range(1 + cursor.byte() % 8)]
    requests = [request for request, _ in pairs]
    delimiter = b"\n--" + boundary.encode("ascii")
    body = encode_requests(requests, boundary)
    chunks = (
        [body]
        if chunk == DEFAULT
        else [body[i : i + chunk + 1] for i in range(0, len(body), chunk + 1)]
    )
    content_type = f'multipart/mixed; boundary="{boundary}"'
    carried = all(
        delimiter not in b"\n" + serialise_request(r.method, r.target, r.headers, r.body)
        for r in requests
    )
    try:
        read = read_requests(content_type, chunks, UNLIMITED)
    except BatchError as error:
        refused(error)
        if carried:
            raise Finding(f"{requests!r} written and refused: {error}") from None
    else:
        expected = [
            SubRequest(r.method, r.target, _request_fields(r.headers, r.body), r.body, r.content_id)
            for r in requests
        ]
        if carried and read != expected:
            raise Finding(f"{expected!r} written, {read!r} read")
    _check_responses(pairs, boundary, delimiter)


def _check_responses(
    pairs: list[tuple[SubRequest, SubResponse]], boundary: str, delimiter: bytes
) -> None:
    writer = ResponseWriter(boundary)
    parts = []
    for request, response in pairs:
        try:
            parts.append(writer.part(response, request))
        except ValueError as error:
            raise Finding(f"a valid response could not be written: {error}") from None
    body = b"".join(parts) + writer.close()
    if any(delimiter in b"\n" + part.partition(b"\r\n\r\n")[2] for part in parts):
        return  # a response holds the delimiter: the format cannot carry it
    expected = [(r.content_id, _as_read(response, r)) for r, response in pairs]
    try:
        read = read_responses(writer.content_type, body)
    except BatchError as error:
        raise Finding(f"{expected!r} written and refused: {error}") from None
    if read != expected:
        raise Finding(f"{expected!r} written, {read!r} read")


# --------------------------------------------------------------------------------------------
# Target 3: BodyDecoder on arbitrary and on compressed bytes

CODINGS = ("gzip", "x-gzip", "deflate", " Deflate ", "GZIP")
RAW, GZIP, ZLIB, RAW_DEFLATE = range(4)  # what the payload becomes (the low 2 bits of the mode)
_WBITS = {GZIP: 31, ZLIB: 15, RAW_DEFLATE: -15}


def decoder_input(
    payload: bytes, *, coding: int = 0, limit: int = DEFAULT, mode: int = RAW, chunks: bytes = b""
) -> bytes:
    """[0] target; [1] Content-Encoding (index in CODINGS, modulo); [2] the decompressed size
    limit (1 + value * 64; 255: 16 MiB); [3] mode: bits 0-1 compress the payload (0 as is,
    1 gzip, 2 zlib, 3 raw deflate), bit 2 cuts the last 1 + (mode >> 4) bytes, bit 3 appends a
    byte; a count of chunk sizes and the sizes; then the payload."""
    return bytes([DECODER, coding, limit, mode, len(chunks)]) + chunks + payload


def _decode(coding: str, limit: int, chunks: Sequence[bytes]) -> bytes | Refused:
    try:
        decoder = BodyDecoder(coding, limit)
        output = b"".join([decoder.feed(chunk) for chunk in chunks])
        decoder.close()
    except BatchError as error:
        return refused(error)
    return output


def check_decoder(cursor: Cursor) -> None:
    """Only 4xx BatchErrors; the same output or refusal however the stream is chunked; and a
    well-formed stream of a matching coding within the limit decodes to its payload."""
    coding = CODINGS[cursor.byte() % len(CODINGS)]
    limit_byte = cursor.byte()
    limit = 16 * MIB if limit_byte == DEFAULT else 1 + limit_byte * 64
    mode = cursor.byte()
    sizes = _chunk_sizes(cursor)
    payload = cursor.rest()
    kind = mode & 3
    data = payload
    if kind != RAW:
        compressor = zlib.compressobj(wbits=_WBITS[kind])
        data = compressor.compress(payload) + compressor.flush()
    if mode & 4:
        data = data[: -(1 + (mode >> 4))]
    if mode & 8:
        data += b"\x00"
    whole = _decode(coding, limit, [data])
    chunked = _decode(coding, limit, split(data, sizes))
    if whole != chunked:
        raise Finding(
            f"chunking changes the result: whole {whole!r:.200}, chunked {chunked!r:.200}"
        )
    gzip = "gzip" in coding.lower()
    matching = kind == GZIP if gzip else kind in (ZLIB, RAW_DEFLATE)
    if matching and not mode & 12 and len(payload) <= limit and whole != payload:
        raise Finding(f"a {coding!r} stream of {len(payload)} bytes decoded to {whole!r:.200}")


# --------------------------------------------------------------------------------------------
# Target 4: the JSON batch format, read, answered and read back

READ_DOCUMENT, WRITE_ANSWERS = range(2)  # the JSON target's mode (byte 1, modulo 2)
#: Content-Types an answer of the "write" mode may carry (index modulo; the last: a fuzzed one).
CONTENT_TYPES: tuple[str | None, ...] = (
    "application/json",
    "application/problem+json; charset=utf-8",
    "Application/Vnd.X+JSON",
    "text/plain",
    "text/plain; charset=utf-16",
    "text/html; charset=latin-1",
    "text/csv; charset=no-such-charset",
    "application/octet-stream",
    None,
)
FUZZED_TYPE = len(CONTENT_TYPES)


def json_input(
    document: bytes, *, limits: bytes = bytes([DEFAULT] * 5), chunks: bytes = b""
) -> bytes:
    """[0] target; [1] mode (even: read a document); [2:7] limits as for the reader target;
    a count of chunk sizes and the sizes; then the JSON batch request document."""
    assert len(limits) == 5
    return bytes([JSON, READ_DOCUMENT]) + limits + bytes([len(chunks)]) + chunks + document


def json_answers_input(answers: Sequence[bytes]) -> bytes:
    """[0] target; [1] mode (odd: write answers); a count byte (1 + value % 8); then that many
    request/answer pairs, as :func:`json_answer` encodes them."""
    assert 1 <= len(answers) <= 8
    return bytes([JSON, WRITE_ANSWERS, len(answers) - 1]) + b"".join(answers)


def json_answer(
    request_id: bytes,
    *,
    method: int = 0,
    status: int = 200,
    content_type: int | bytes = 0,
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes = b"",
) -> bytes:
    """One pair: the request's id as the inside of a JSON string literal (LF-terminated; an
    invalid one becomes the pair's number), its method (GET, HEAD, POST, DELETE by index),
    then the application's answer: status, a Content-Type (an index in CONTENT_TYPES, or
    FUZZED_TYPE and a line with the value: give it as bytes), fields and body as
    :func:`exchange` writes them."""
    if isinstance(content_type, bytes):
        kind = bytes([FUZZED_TYPE]) + content_type + b"\n"
    else:
        kind = bytes([content_type])
    return (
        request_id
        + b"\n"
        + bytes([method, (status - 100) // 256, (status - 100) % 256])
        + kind
        + _encode_fields(headers)
        + _encode_body(body)
    )


def _strict_json(data: bytes | bytearray | str) -> Any:
    """RFC 8259 JSON, as a browser's JSON.parse reads it: no NaN, no Infinity."""
    return json.loads(data, parse_constant=_not_json)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _media(content_type: str | None) -> tuple[str, dict[str, str]]:
    try:
        return parse_media_type(content_type) if content_type else ("", {})
    except MalformedBatch:
        return "", {}


def _content_type(fields: Headers) -> str | None:
    return next((value for name, value in fields if name.lower() == "content-type"), None)


def _read_json(chunks: Sequence[bytes], limits: Limits) -> tuple[SubRequest, ...] | Refused:
    reader = JsonRequestReader(limits)
    try:
        for chunk in chunks:
            reader.feed(chunk)
        return tuple(reader.close())
    except BatchError as error:
        return refused(error)
    finally:
        size = sum(map(len, chunks))
        check_cost(
            reader.scanned,
            size,
            "JsonRequestReader",
            per_byte=JSON_COST_PER_BYTE,
            fixed=JSON_COST_FIXED,
        )


def check_json(cursor: Cursor) -> None:
    """Reading: only 4xx BatchErrors, the same requests or refusal however the document is
    chunked, within the limits, bodies as sent; answering: strict JSON that reads back to the
    same answers; the client's encoder carries every request the server read."""
    if cursor.byte() % 2 == WRITE_ANSWERS:
        pairs = [_json_pair(cursor, number) for number in range(1, 2 + cursor.byte() % 8)]
        _check_json_answers(pairs)
        return
    limits = _small_limits(cursor)
    sizes = _chunk_sizes(cursor)
    document = cursor.rest()
    whole = _read_json([document], limits)
    chunkings = [split(document, sizes)]
    if len(document) <= BYTEWISE:
        chunkings.append([document[i : i + 1] for i in range(len(document))])
    for chunks in chunkings:
        chunked = _read_json(chunks, limits)
        if whole != chunked:
            raise Finding(f"chunking changes the result: whole {whole!r}, chunked {chunked!r}")
    try:  # the client's reader of JSON answers, on the same bytes
        answers = read_json_responses(document)
    except BatchError as error:
        refused(error)
    else:
        for request_id, response in answers:
            _check_json_read(request_id, response)
    if isinstance(whole, Refused):
        return
    _check_json_requests(whole, limits, _strict_json(document)["requests"], document)
    _check_json_answers([(request, _echo(request)) for request in whole])
    _check_json_resent([request for request in whole if request.invalid_reason is None])


def _check_json_read(request_id: object, response: SubResponse) -> None:
    """What read_json_responses accepts is what an HTTP response can be (else MalformedBatch):
    a status of 0 to 999, fields of token names and Latin-1 values without CR, LF or NUL."""
    if not (
        (request_id is None or isinstance(request_id, str))
        and type(response.status) is int
        and 0 <= response.status <= 999
        and isinstance(response.body, bytes)
        and all(
            isinstance(name, str)
            and isinstance(value, str)
            and _TOKEN.fullmatch(name)
            and _FIELD_VALUE.fullmatch(value)
            for name, value in response.headers
        )
    ):
        raise Finding(f"read_json_responses read {request_id!r}, {response!r:.300}")


def _check_json_requests(
    requests: tuple[SubRequest, ...], limits: Limits, items: list[Any], document: bytes
) -> None:
    """Within the limits; a valid request line and fields; each body the bytes its item says."""
    if len(requests) > limits.max_parts or len({r.content_id for r in requests}) < len(requests):
        raise Finding(f"{len(requests)} requests (ids not unique?) read under {limits!r}")
    for request, item in zip(requests, items, strict=True):
        if not (request.method.isascii() and request.method.isalpha() and request.method.isupper()):
            raise Finding(f"invalid method {request.method!r}")
        if not _VISIBLE.fullmatch(request.target) or not request.content_id:
            raise Finding(f"invalid target or id in {request!r}")
        # The request line and the header lines count as in multipart (blank line included).
        head = len(f"{request.method} {request.target} HTTP/1.1\r\n\r\n")
        if (
            len(request.headers) > limits.max_headers
            or head + len(encode_fields(request.headers)) > limits.max_header_size
            or len(request.body) > limits.max_part_size
        ):
            raise Finding(f"{request!r} read under {limits!r}")
        if request.invalid_reason is None and request.body:
            _check_json_body(request, item["body"], document)


def _check_json_body(request: SubRequest, value: Any, document: bytes) -> None:
    """The body the application gets is what the item's "body" stands for, by its type: under
    a JSON type, the value's own text (the same value, as written: found in the document)."""
    media_type, params = _media(_content_type(request.headers))
    try:
        if is_json(media_type):
            body = bytes(request.body)
            same = (
                _strict_json(body) == value and body == body.strip(b" \t\r\n") and body in document
            )
        elif media_type.startswith("text/"):
            same = request.body.decode(params.get("charset", "utf-8")) == value
        else:
            return  # base64url: the reader's decoding is the only definition there is
    except (ValueError, LookupError, RecursionError) as error:
        raise Finding(f"the body of {request!r} is not its {media_type}: {error!r}") from None
    if not same:
        raise Finding(f"{value!r:.200} sent as the body, {request.body!r:.200} read")


def _echo(request: SubRequest) -> SubResponse:
    """The application of the "read" mode: it answers with the request's own fields and body;
    ``X-Status`` (3 digits) sets the status, ``X-Reply`` the Content-Type of the answer."""
    status = 200
    reply = None
    fields = []
    for name, value in request.headers:
        lowered = name.lower()
        if lowered == "x-status":
            if len(value) == 3 and value.isascii() and value.isdigit() and value[0] != "0":
                status = int(value)
        elif lowered == "x-reply":
            reply = value
        else:
            fields.append((name, value))
    if reply is not None:
        fields = [(n, v) for n, v in fields if n.lower() != "content-type"]
        fields.append(("Content-Type", reply))
    return SubResponse(status, "", tuple(fields), bytes(request.body))


def _json_pair(cursor: Cursor, number: int) -> tuple[SubRequest, SubResponse]:
    raw_id = cursor.line()
    try:
        request_id = json.loads(b'"' + raw_id + b'"')
    except ValueError:
        request_id = ""
    method = ("GET", "HEAD", "POST", "DELETE")[cursor.byte() % 4]
    request = SubRequest(method, "/", (), b"", request_id or str(number))
    status = 100 + (cursor.byte() * 256 + cursor.byte()) % 900
    kind = cursor.byte() % (FUZZED_TYPE + 1)
    content_type = _value(cursor.line()) if kind == FUZZED_TYPE else CONTENT_TYPES[kind]
    fields = _fields(cursor, response=True)
    if content_type is not None:
        fields = (("Content-Type", content_type), *fields)
    return request, SubResponse(status, "", fields, cursor.take(_body_size(cursor.byte())))


def _sent_fields(response: SubResponse, *, head: bool) -> tuple[Headers, bytes | bytearray]:
    """The reference for what every writer sends for ``response``: its fields less
    Content-Length and the hop-by-hop ones, then the exact Content-Length (the one given,
    for a HEAD request and a 304, which send no body); ValueError for a status HTTP cannot
    carry."""
    check_status(response.status)
    fields, given = kept_fields(response.headers)
    keep = head or response.status == 304
    if not (keep and given and given.isascii() and given.isdigit()):
        given = str(len(response.body))
    return (*fields, ("Content-Length", given)), b"" if keep else response.body


def _sendable(response: SubResponse, request: SubRequest) -> bool:
    """Whether ``response`` can be sent at all (a status and fields HTTP can carry)."""
    try:
        encode_fields(_sent_fields(response, head=request.method == "HEAD")[0])
    except ValueError:
        return False
    return True


def _check_json_answers(pairs: Sequence[tuple[SubRequest, SubResponse]]) -> None:
    """JsonResponseWriter writes every sendable answer (INVALID_RESPONSE for the others) as
    strict JSON in UTF-8, which read_json_responses reads back to the same answers."""
    writer = JsonResponseWriter()
    chunks = [writer.start()]
    sent = []
    for request, response in pairs:
        try:
            chunks.append(writer.part(response, request))
        except ValueError as error:
            if _sendable(response, request):
                raise Finding(f"{response!r:.300} could not be written: {error!r}") from None
            try:  # what the engine sends instead
                chunks.append(writer.part(INVALID_RESPONSE, request))
            except ValueError as again:
                raise Finding(f"INVALID_RESPONSE for {request!r} failed: {again!r}") from None
            sent.append((request, INVALID_RESPONSE))
        else:
            sent.append((request, response))
    chunks.append(writer.close())
    answer = b"".join(chunks)
    try:
        document = _strict_json(answer.decode("utf-8"))
    except (ValueError, RecursionError) as error:
        raise Finding(f"the answer is not strict JSON in UTF-8: {error!r:.300}") from None
    if len(document["responses"]) != len(pairs):
        raise Finding(f"{len(pairs)} answers written, {document!r:.300} read")
    try:
        read = read_json_responses(answer)
    except BatchError as error:
        raise Finding(f"the answer {answer!r:.300} written and refused: {error}") from None
    for (request, response), (request_id, got) in zip(sent, read, strict=True):
        _check_json_answer(request, response, request_id, got)


def _check_json_answer(
    request: SubRequest, response: SubResponse, request_id: str | None, got: SubResponse
) -> None:
    fields, body = _sent_fields(response, head=request.method == "HEAD")
    grouped: dict[str, list[str]] = {}
    # Names equal but for case travel as one list, at the first one's place, spelt as usual.
    for name, value in fields:
        grouped.setdefault(name.lower(), []).append(value)
    expected = [(name, value) for name, values in grouped.items() for value in values]
    if body:  # the length is that of the bytes that arrived
        expected = [f for f in expected if f[0] != "content-length"]
        expected.append(("content-length", str(len(got.body))))
    if (
        request_id != request.content_id
        or (got.status, got.reason) != (response.status, reason_phrase(response.status))
        or [(name.lower(), value) for name, value in got.headers] != expected
        or any(name != canonical_name(name) for name, _ in got.headers)
        or not _same_body(body, bytes(got.body), _content_type(fields))
    ):
        raise Finding(f"{request.content_id!r}: {response!r:.300} written, {got!r:.300} read")


def _same_body(sent: bytes | bytearray, read: bytes, content_type: str | None) -> bool:
    """The same bytes, or the same JSON value, or the same text in the type's charset."""
    if sent == read:
        return True
    media_type, params = _media(content_type)
    try:
        if is_json(media_type):
            return bool(_strict_json(sent) == _strict_json(read))
        if media_type.startswith("text/"):
            charset = params.get("charset", "utf-8")
            return sent.decode(charset) == read.decode(charset)
    except (ValueError, LookupError, RecursionError):
        pass
    return False


def _check_json_resent(requests: list[SubRequest]) -> None:
    """The client's encoder writes what the server read so that it reads the same again."""
    try:
        body = encode_json_requests(requests)
    except ValueError as error:
        raise Finding(f"{requests!r:.300} read; the client cannot send them: {error!r}") from None
    again = _read_json([body], UNLIMITED)
    if again != tuple(requests):
        raise Finding(f"{requests!r:.300} sent again, {again!r:.300} read")


# --------------------------------------------------------------------------------------------

CHECKS: tuple[Callable[[Cursor], None], ...] = (
    check_reader,
    check_message,
    check_roundtrip,
    check_decoder,
    check_json,
)


def check(data: bytes, target: int | None = None) -> None:
    """Run the target that byte 0 picks (or ``target``, byte 0 then ignored) on ``data``."""
    cursor = Cursor(data)
    picked = cursor.byte() % len(CHECKS)
    CHECKS[picked if target is None else target](cursor)
