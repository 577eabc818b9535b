"""The JSON batch format of OData 4.01 and Microsoft Graph.

Request: ``{"requests": [{"id", "method", "url", "headers", "body", "dependsOn"}]}``.
Answer: ``{"responses": [{"id", "status", "headers", "body"}]}``, in request order. A body
travels as the JSON value itself under a JSON media type, as a string under ``text/*``, and
base64url-encoded otherwise. Requests are read from the raw bytes (:mod:`.jsontext`), so a
request's JSON body is the exact text its client wrote; answers are written with ``json``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import mmap
import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any, Literal
from urllib.parse import quote

from .errors import LimitExceeded, MalformedBatch, reason_phrase
from .fields import encode_fields
from .http1 import response_fields
from .jsontext import (
    STRING,
    STRINGS_ARRAY,
    STRINGS_OBJECT,
    Buffer,
    InvalidJson,
    JsonText,
    Member,
    NotUtf8,
    Span,
    object_pattern,
    value_pattern,
)
from .media_type import parse_media_type
from .model import Headers, Limits, SubRequest, SubResponse, first_header

__all__ = [
    "JSON_DIALECTS",
    "MAX_MEMBERS",
    "MEDIA_TYPE",
    "JsonDialect",
    "JsonRequestReader",
    "JsonResponseWriter",
    "body_to_string",
    "canonical_name",
    "encode_json_request",
    "encode_json_requests",
    "is_json",
    "join_json_requests",
    "json_value_span",
    "read_json_responses",
    "string_to_body",
]

MEDIA_TYPE = "application/json"
# Every visible ASCII character stays as sent; anything else in a url is percent-encoded.
_URL_SAFE = "".join(chr(code) for code in range(0x21, 0x7F))
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


def is_json(media_type: str) -> bool:
    return media_type == MEDIA_TYPE or media_type.endswith("+json")


class JsonRequestReader:
    """Collects a JSON batch body (bounded by ``max_body_size``) and reads its requests.

    The body is read as raw bytes (:class:`~.jsontext.JsonText`), checking every limit as it
    goes: the request past ``max_parts`` is refused before it is read, and a string is
    decoded only once its raw size is known to fit. Only the small members of a request
    become Python values, and a JSON body is its exact text, so the memory reading takes
    stays within a small multiple of the body whatever its shape (``json.loads`` of
    ``[[],[],...]`` takes 20 times its size).
    """

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._chunks: list[bytes] = []
        self._mapped: _MappedBody | None = None
        self._size = 0
        #: Bytes examined while reading (:attr:`.jsontext.JsonText.scanned`): reading costs
        #: time in proportion to the body, whatever its shape.
        self.scanned = 0

    def feed(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limits.max_body_size:
            raise LimitExceeded.of(
                self._limits, "max_body_size", "the batch body is larger than {value} bytes"
            )
        if self._mapped is not None:
            self._mapped.append(data)
            return
        self._chunks.append(data)
        if self._size >= _MAPPED_FROM:
            self._mapped = _MappedBody(self._chunks, self._size)
            self._chunks = []

    def close(self) -> list[SubRequest]:
        mapped = self._mapped
        data: Buffer = b"".join(self._chunks) if mapped is None else mapped.map
        self._chunks, self._mapped = [], None
        try:
            return self._read(data)
        finally:
            if mapped is not None:
                mapped.map.close()  # its memory goes back to the system now

    def _read(self, data: Buffer) -> list[SubRequest]:
        try:
            text = JsonText(data, self._size)
        except NotUtf8 as error:
            self.scanned = self._size
            raise MalformedBatch(str(error)) from None
        reading = _Reading(text, self._limits)
        try:
            return reading.batch()
        except InvalidJson as error:
            detail = f"the batch is not valid JSON: {error}"
            raise MalformedBatch(detail, part=reading.part) from None
        finally:
            self.scanned = text.scanned


class _MappedBody:
    """A large batch body, kept in anonymous memory (``mmap``) rather than in Python's heap:
    it is given back to the system as soon as it is read, where the allocator could keep the
    pages of a freed buffer (and Python's small objects never reuse them)."""

    def __init__(self, chunks: list[bytes], size: int) -> None:
        self.map = mmap.mmap(-1, 2 * size)
        self.size = 0
        for chunk in chunks:
            self.append(chunk)

    def append(self, data: bytes) -> None:
        end = self.size + len(data)
        if end > len(self.map):  # twice as large: copied log n times, linear in all
            grown = mmap.mmap(-1, max(end, 2 * len(self.map)))
            with memoryview(self.map) as old, memoryview(grown) as new:
                new[: self.size] = old[: self.size]
            self.map.close()
            self.map = grown
        self.map[self.size : end] = data
        self.size = end


class _Reading:
    """One JSON batch being read; InvalidJson is about request :attr:`part` (or None)."""

    def __init__(self, text: JsonText, limits: Limits) -> None:
        self.text = text
        self.limits = limits
        #: The request being read (1-based), None outside the requests.
        self.part: int | None = None
        # The requests of a batch tend to repeat their headers: each distinct "headers"
        # object is read once. Per batch, so that no batch learns from timing what another sent.
        self._seen_headers: dict[bytes, Headers] = {}
        # Longer JSON strings cannot fit in a header block: refused before they are decoded.
        self._string_budget = _ESCAPED * limits.max_header_size

    def batch(self) -> list[SubRequest]:
        """The requests of ``{"requests": [...]}``; its other members are read past."""
        text = self.text
        start = text.space(text.start)
        if text.byte(start) != _OPEN_OBJECT:
            text.value_end(start)  # InvalidJson if it is not JSON at all
            raise MalformedBatch(_BATCH_SHAPE)
        requests: list[SubRequest] | None = None
        names: set[bytes] = set()
        member = text.member_name(start, first=True)
        while isinstance(member, tuple):
            name, value = member
            _check_unique(name, names, "the batch", None)
            if name == b"requests":
                if text.byte(value) != _OPEN_ARRAY:
                    text.value_end(value)
                    raise MalformedBatch(_BATCH_SHAPE)
                requests, end = self._requests(value)
            else:
                end = text.value_end(value)
            member = text.member_name(end, first=False)
        end = text.space(member)
        if end != text.size:
            raise text.unexpected(end, "the end of the batch")
        if requests is None:
            raise MalformedBatch(_BATCH_SHAPE)
        return requests

    def _requests(self, start: int) -> tuple[list[SubRequest], int]:
        """The requests of the array at ``start``, and where it ends."""
        requests: list[SubRequest] = []
        ids: set[str] = set()
        limits = self.limits
        more, position = self.text.first_element(start)
        while more:
            index = len(requests) + 1
            if index > limits.max_parts:
                raise LimitExceeded.of(
                    limits, "max_parts", "the batch has more than {value} requests", part=index
                )
            self.part = index
            request, end = self._request(position, index)
            assert request.content_id is not None
            if request.content_id in ids:
                raise MalformedBatch(f"the id {request.content_id!r} is used twice", part=index)
            ids.add(request.content_id)
            requests.append(request)
            more, position = self.text.next_element(end)
        self.part = None
        return requests, position

    def _request(self, start: int, index: int) -> tuple[SubRequest, int]:
        """The request of the object at ``start``, and where the object ends."""
        text = self.text
        # The common case in one match: known members only, each once, of the right types.
        match = text.match(_request_matcher(), start, charge_failure=False)
        if match is not None:
            return self._to_request(tuple(map(match.span, _GROUPS)), index), match.end()
        end = text.size
        try:
            request, end = self._request_by_members(start, index)
        finally:
            text.scanned += end - start  # the failed match: no further than the object
        return request, end

    def _request_by_members(self, start: int, index: int) -> tuple[SubRequest, int]:
        """:meth:`_request`, member by member: other members, or errors to report."""
        text = self.text
        if text.byte(start) != _OPEN_OBJECT:
            text.value_end(start)
            raise MalformedBatch("a request must be a JSON object", part=index)
        spans = dict.fromkeys(_REQUEST_MEMBERS, _ABSENT)
        seen: set[bytes] = set()
        member = text.member(start, first=True)
        while isinstance(member, Member):
            _check_unique(member.name, seen, "the request", index)
            if member.name in spans:
                self._check_type(member, index)
                spans[member.name] = member.start, member.end
            elif member.name == b"atomicityGroup":
                raise MalformedBatch(
                    '"atomicityGroup" is not supported yet: the requests of a group could not '
                    "be undone together if one failed; send them without it",
                    part=index,
                )
            member = text.member(member.end, first=False)
        return self._to_request(tuple(spans.values()), index), member

    def _check_type(self, member: Member, index: int) -> None:
        """Refuses a member of :data:`_REQUEST_MEMBERS` whose value is not of its type."""
        text = self.text
        name, start, end = member
        if name in (b"id", b"method", b"url"):
            typed = text.is_string(start)
            expected = f'a request needs "{name.decode()}" as a non-empty string'
        elif name == b"headers":
            typed = text.is_strings_object(start, end)
            expected = '"headers" must be an object of strings'
        elif name == b"body":
            return  # any value
        else:
            typed = text.is_strings_array(start, end)
            expected = '"dependsOn" must be an array of request ids'
        if not typed:
            raise MalformedBatch(expected, part=index)

    def _to_request(self, spans: Sequence[Span], index: int) -> SubRequest:
        """The request whose members' values are at ``spans`` (:data:`_REQUEST_MEMBERS`)."""
        limits = self.limits
        request_id = self._string(spans[_ID], "id", index, _part_head_too_large)
        method = self._string(spans[_METHOD], "method", index, _head_too_large).upper()
        if not method.isascii() or not method.isalpha():
            raise MalformedBatch(f"invalid method {method!r}", part=index)
        target = self._string(spans[_URL], "url", index, _head_too_large)
        if not _VISIBLE_ASCII.fullmatch(target):
            try:
                target = quote(target, safe=_URL_SAFE)
            except UnicodeEncodeError:  # a lone surrogate escape has no UTF-8 form
                raise MalformedBatch('"url" is not valid Unicode', part=index) from None
        headers = self._headers(spans[_HEADERS], index)
        # The HTTP head it would have in multipart: request line, header lines, blank line.
        head = len(f"{method} {target} HTTP/1.1\r\n\r\n") + len(encode_fields(headers))
        if head > limits.max_header_size:
            raise _head_too_large(limits, index)
        depends_on = self._depends_on(spans[_DEPENDS_ON], spans[_DEPENDS_ON_SNAKE], index)
        # Its MIME headers in multipart: "Content-ID: <id>", "Depends-On: <ids>", blank line.
        part_head = len(f"Content-ID: {request_id}\r\n\r\n".encode("utf-8", "surrogatepass"))
        if depends_on:
            line = f"Depends-On: {', '.join(depends_on)}\r\n"
            part_head += len(line.encode("utf-8", "surrogatepass"))
        if part_head > limits.max_header_size:
            raise _part_head_too_large(limits, index)
        body, invalid_reason = self._body(spans[_BODY], headers, index)
        return SubRequest(method, target, headers, body, request_id, depends_on, invalid_reason)

    def _string(
        self, span: Span, key: str, index: int, too_large: Callable[[Limits, int], LimitExceeded]
    ) -> str:
        """A required non-empty string member; ``too_large``: the error if it cannot fit."""
        start, end = span
        if not 2 < end - start <= self._string_budget:
            if end - start <= 2:  # absent, or ""
                raise MalformedBatch(f'a request needs "{key}" as a non-empty string', part=index)
            raise too_large(self.limits, index)
        return self.text.text(start + 1, end - 1)

    def _headers(self, span: Span, index: int) -> Headers:
        """The fields of a "headers" object of strings, counted before they are decoded."""
        start, end = span
        if start < 0:
            return ()
        text = self.text
        limits = self.limits
        key = text.raw(start, end) if end - start <= _HEADERS_KEPT else b""
        known = self._seen_headers.get(key)
        if known is not None:
            return known
        spans = []
        size = 0
        for name_span, value_span in text.string_pairs(start, end):
            spans.append((name_span, value_span))
            if len(spans) > limits.max_headers:
                raise LimitExceeded.of(
                    limits, "max_headers", "the request has more than {value} headers", part=index
                )
            size += name_span[1] - name_span[0] + value_span[1] - value_span[0]
            if size > self._string_budget:
                raise _head_too_large(limits, index)
        names: set[str] = set()
        fields = []
        for name_span, value_span in spans:
            name = text.text(*name_span)
            if name in names:  # a repeated header is two fields in HTTP, not a name twice
                raise MalformedBatch(f'the header {name!r} appears twice in "headers"', part=index)
            names.add(name)
            fields.append((name, text.text(*value_span)))
        headers = tuple(fields)
        try:
            encode_fields(headers)
        except ValueError as error:
            raise MalformedBatch(str(error), part=index) from None
        if key and len(self._seen_headers) < _SEEN_HEADERS:
            self._seen_headers[key] = headers
        return headers

    def _depends_on(self, span: Span, snake_span: Span, index: int) -> tuple[str, ...]:
        if span[0] >= 0 and snake_span[0] >= 0:
            raise MalformedBatch('give either "dependsOn" or "depends_on", not both', part=index)
        start, end = max(span, snake_span)  # the one given: an absent one is (-1, -1)
        if start < 0:
            return ()
        spans = list(self.text.strings(start, end))
        if sum(end - start for start, end in spans) > self._string_budget:
            raise _part_head_too_large(self.limits, index)
        return tuple(self.text.text(*span) for span in spans)

    def _body(self, span: Span, headers: Headers, index: int) -> tuple[bytes, str | None]:
        """The body a request's "body" stands for by its Content-Type, and why it cannot be
        read if it cannot (the request is then answered 400, the others run)."""
        start, end = span
        if start < 0:
            return b"", None
        text = self.text
        content_type = first_header(headers, "content-type")
        # "body": null is the JSON value null under a JSON type, and no body otherwise.
        null = end - start == 4 and text.data[start:end] == b"null"
        if null and not is_json(_media(content_type)[0]):
            return b"", None
        if content_type is None:
            return b"", "a request with a body needs a Content-Type header"
        limit = self.limits.max_part_size
        try:
            media_type, params = _media(content_type, strict=True)
            if is_json(media_type):
                if end - start > limit:
                    raise _body_too_large(self.limits, index)
                return text.raw(start, end), None  # exactly as the client wrote it
            if not text.is_string(start):
                raise ValueError(f"a {media_type or 'untyped'} body must be a string (base64url)")
            if media_type.startswith("text/"):
                charset = params.get("charset", "utf-8")
                try:
                    body = text.encoded(start + 1, end - 1, charset, limit=limit)
                except (LookupError, ValueError) as error:
                    raise ValueError(f"the body cannot be encoded as {charset}: {error}") from None
            else:
                body = _base64url_string(text, start + 1, end - 1, limit)
        except ValueError as error:
            return b"", str(error)
        if len(body) > limit:
            raise _body_too_large(self.limits, index)
        return body, None


#: Bodies this large are kept out of Python's heap while they are read (:class:`_MappedBody`).
_MAPPED_FROM = 1024 * 1024
#: Members one object of a JSON batch may have (the batch, a request): a few are read, the
#: others only checked.
MAX_MEMBERS = 1000
#: A JSON string takes at most 6 bytes of text per byte it decodes to (``\\u0041`` is "A"),
#: so a string of more than 6n bytes cannot fit in n: it is refused before it is decoded.
_ESCAPED = 6
#: Distinct "headers" objects one batch remembers, and the longest one remembered.
_SEEN_HEADERS = 256
_HEADERS_KEPT = 1024
_OPEN_OBJECT = ord("{")
_OPEN_ARRAY = ord("[")
_BATCH_SHAPE = 'a JSON batch is an object with a "requests" array'
#: The members of a request that are read (the others are only checked to be JSON), in the
#: order of the groups of :func:`_request_matcher`; the value of an absent one is at _ABSENT.
_REQUEST_MEMBERS = (b"id", b"method", b"url", b"headers", b"dependsOn", b"depends_on", b"body")
_ID, _METHOD, _URL, _HEADERS, _DEPENDS_ON, _DEPENDS_ON_SNAKE, _BODY = range(7)
_GROUPS = range(1, len(_REQUEST_MEMBERS) + 1)
_ABSENT = (-1, -1)


@cache
def _request_matcher() -> re.Pattern[bytes]:
    """A request with only the members it is read for, each once, each of its type."""
    types = (STRING, STRING, STRING, STRINGS_OBJECT, STRINGS_ARRAY, STRINGS_ARRAY)
    values = (*types, value_pattern())
    return re.compile(
        object_pattern([(n.decode(), v) for n, v in zip(_REQUEST_MEMBERS, values, strict=True)])
    )


_BASE64 = re.compile(rb"[A-Za-z0-9+/_-]*+={0,2}")
_TO_STANDARD_BASE64 = bytes.maketrans(b"-_", b"+/")
_BASE64_PIECE = 64 * 1024  # a multiple of 4: whole quantums


def _base64url_string(text: JsonText, start: int, end: int, limit: int) -> bytes:
    """:func:`_base64url` of the string whose inside is from ``start`` to ``end``."""
    text.scanned += end - start
    if text.data.find(b"\\", start, end) < 0:
        return _base64url(text.data, start, end, limit)
    try:  # "\\/" for "/": some encoders escape it
        return _base64url(text.encoded(start, end, "ascii"), limit=limit)
    except UnicodeEncodeError:
        raise ValueError("the body is not valid base64url") from None


def _check_unique(name: bytes, seen: set[bytes], where: str, index: int | None) -> None:
    """Refuses a member named twice (else adds it to ``seen``): parsers differ on which one
    counts, so a proxy could check one "url" while this reads the other. Refuses more than
    :data:`MAX_MEMBERS` members: the names seen take memory (about 60 bytes each)."""
    if name in seen:
        shown = name.decode("utf-8", "replace")
        raise MalformedBatch(f"the member {shown!r} appears twice in {where}", part=index)
    if len(seen) >= MAX_MEMBERS:
        raise MalformedBatch(f"{where} has more than {MAX_MEMBERS} members", part=index)
    seen.add(name)


def _head_too_large(limits: Limits, index: int) -> LimitExceeded:
    """The error multipart gives for the same request line and headers."""
    return LimitExceeded.of(
        limits,
        "max_header_size",
        "the HTTP request line and headers are longer than {value} bytes",
        part=index,
    )


def _part_head_too_large(limits: Limits, index: int) -> LimitExceeded:
    """The error multipart gives for the same Content-ID and Depends-On part headers."""
    return LimitExceeded.of(
        limits, "max_header_size", "the part's headers are longer than {value} bytes", part=index
    )


def _body_too_large(limits: Limits, index: int) -> LimitExceeded:
    return LimitExceeded.of(
        limits, "max_part_size", "the request's body is larger than {value} bytes", part=index
    )


def _base64url(data: Buffer, start: int = 0, end: int = -1, limit: int = -1) -> bytes:
    """The bytes ``data[start:end]`` stands for in base64url (standard base64 and missing
    padding are accepted too), decoded in pieces; ValueError if it is not base64url.

    With a ``limit``, decoding stops once the bytes are longer (the caller refuses them).
    """
    end = len(data) if end < 0 else end
    padding = -(end - start) % 4
    if _BASE64.fullmatch(data, start, end) is None or (
        data[max(start, end - 2) : end].count(b"=") + padding > 2
    ):
        raise ValueError("the body is not valid base64url")
    pieces = []
    size = 0
    for piece_start in range(start, end, _BASE64_PIECE):
        piece = data[piece_start : min(end, piece_start + _BASE64_PIECE)]
        piece = piece.translate(_TO_STANDARD_BASE64)
        if piece_start + _BASE64_PIECE >= end:
            piece += b"=" * padding
        pieces.append(binascii.a2b_base64(piece))
        size += len(pieces[-1])
        if 0 <= limit < size:
            break
    return b"".join(pieces)


def _media(content_type: str | None, *, strict: bool = False) -> tuple[str, dict[str, str]]:
    """Media type and parameters; an absent (or, unless ``strict``, unreadable) one is ""."""
    if not content_type:
        return "", {}
    try:
        return parse_media_type(content_type)
    except MalformedBatch as error:
        if strict:
            raise ValueError(error.detail) from None
        return "", {}


def _loads(data: bytes | bytearray | str) -> Any:
    """Strict JSON (RFC 8259): NaN, Infinity and numbers beyond a double are refused."""
    return json.loads(data, parse_constant=_refuse_constant, parse_float=_finite)


def _dumps(value: Any) -> bytes:
    """Compact JSON in ASCII: a lone surrogate escape stays an escape, never raw bytes."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond a double's range")
    return value


def _is_binary(content_type: str | None) -> bool:
    """Whether a body of this type travels as base64url by rule (so needs no marker)."""
    media_type, _ = _media(content_type)  # untyped (or unreadable) bodies are binary too
    return not is_json(media_type) and not media_type.startswith("text/")


def string_to_body(value: Any, content_type: str | None) -> bytes:
    """The bytes a text or binary answer body (a JSON string) stands for, by its media type;
    ValueError if it cannot. Untyped bodies, and those of an unreadable Content-Type, are
    base64url, like any type that is neither JSON nor text (a JSON body is its own text)."""
    media_type, params = _media(content_type)
    if not isinstance(value, str):
        raise ValueError(f"a {media_type or 'untyped'} body must be a string (base64url)")
    if media_type.startswith("text/"):
        charset = params.get("charset", "utf-8")
        try:
            return value.encode(charset)
        except (LookupError, UnicodeEncodeError) as error:
            raise ValueError(f"the body cannot be encoded as {charset}: {error}") from None
    try:
        return _base64url(value.encode("ascii"))
    except UnicodeEncodeError:
        raise ValueError("the body is not valid base64url") from None


def body_to_string(body: bytes | bytearray, content_type: str | None) -> tuple[str, bool]:
    """The JSON string that carries a text or binary ``body``, and whether it had to be
    base64url: text in its charset, anything else (a JSON type whose body is not valid
    JSON text included) base64url. A valid JSON body goes as its own text instead
    (:func:`json_value_span`)."""
    media_type, params = _media(content_type)
    if media_type.startswith("text/"):
        try:
            return body.decode(params.get("charset", "utf-8")), False
        except (ValueError, LookupError):
            pass  # not what its type says: sent losslessly as base64url, marked as such
    return base64.urlsafe_b64encode(body).rstrip(b"=").decode("ascii"), True


#: How a JSON answer spells header names: "graph" as Microsoft Graph writes them and its
#: clients expect them (``Content-Type``), "odata" in lower case as OData JSON Format 4.01
#: (section 19.5) requires (``content-type``).
JsonDialect = Literal["graph", "odata"]
JSON_DIALECTS: tuple[JsonDialect, ...] = ("graph", "odata")


class JsonResponseWriter:
    """Writes ``{"responses": [...]}`` one response at a time, so it can be streamed.

    ``dialect`` (:data:`JsonDialect`) decides how header names are spelt, whatever case the
    application used: ASGI applications send them in lower case, and Microsoft Graph's
    JavaScript client looks for ``"Content-Type"``. Names differing only in case are one
    header: their values make one list, in order.
    """

    content_type = MEDIA_TYPE

    def __init__(self, dialect: JsonDialect = "graph") -> None:
        if dialect not in JSON_DIALECTS:
            raise ValueError(f"dialect must be one of {JSON_DIALECTS}, not {dialect!r}")
        self._spell: Callable[[str], str] = canonical_name if dialect == "graph" else str.lower
        self._written = 0

    def start(self) -> bytes:
        return b'{"responses":['

    def part(self, response: SubResponse, request: SubRequest) -> bytes:
        """One response object; raises ValueError if ``response`` cannot be sent."""
        return b"".join(self.part_pieces(response, request))

    def part_pieces(
        self, response: SubResponse, request: SubRequest
    ) -> tuple[bytes, bytes | bytearray, bytes]:
        """:meth:`part` as its head, the body and its tail. A JSON body goes in as the
        application wrote it (checked, not rebuilt: no copy, and no object per bracket); a
        text or binary one is encoded into a string."""
        fields, body = response_fields(response, head=request.method == "HEAD")
        encode_fields(fields)  # the same checks as on the wire: no CR, LF or NUL
        headers: dict[str, str | list[str]] = {}
        spell = self._spell
        for name, value in fields:
            spelt = spell(name)
            previous = headers.get(spelt)
            # A repeated header (several Set-Cookie) becomes a list: nothing is lost.
            headers[spelt] = value if previous is None else [*_as_list(previous), value]
        item: dict[str, Any] = {"id": request.content_id, "status": response.status}
        item["headers"] = headers
        as_written: bytes | bytearray = b""  # a JSON body, as the application wrote it
        if body:
            content_type = first_header(fields, "content-type")
            span = json_value_span(body) if is_json(_media(content_type)[0]) else None
            if span is not None:
                as_written = body if span == (0, len(body)) else body[span[0] : span[1]]
            else:
                item["body"], encoded = body_to_string(body, content_type)
                if encoded and not _is_binary(content_type):
                    item["bodyEncoding"] = "base64url"  # not what its type says: say so
        encoded_item = _dumps(item)  # before counting it: a failure here writes nothing
        separator = b"," if self._written else b""
        self._written += 1
        if not as_written:
            return separator + encoded_item, b"", b""
        return separator + encoded_item[:-1] + b',"body":', as_written, b"}"

    def close(self) -> bytes:
        return b"]}"


def canonical_name(name: str) -> str:
    """``name`` as header names are usually spelt: each word capitalised (``Content-Type``),
    the irregular ones as their specifications spell them (``ETag``, ``WWW-Authenticate``)."""
    spelt = _CANONICAL.get(name)
    if spelt is None:
        lowered = name.lower()
        spelt = _IRREGULAR_NAMES.get(lowered) or "-".join(
            _IRREGULAR_WORDS.get(word) or word.capitalize() for word in lowered.split("-")
        )
        if len(_CANONICAL) >= 4096:
            _CANONICAL.clear()  # unique names (X-Request-Id values?) fill it: start afresh
        _CANONICAL[name] = spelt
    return spelt


#: Names already spelt (bounded): the same few recur in every answer.
_CANONICAL: dict[str, str] = {}
#: Whole names spelt otherwise than word by word.
_IRREGULAR_NAMES = {"etag": "ETag", "te": "TE", "dnt": "DNT", "sourcemap": "SourceMap"}
#: Words of names spelt otherwise than capitalised (the registered names that use them:
#: WWW-Authenticate, Content-MD5, Content-ID, X-XSS-Protection, OData-Version,
#: OData-MaxVersion, OData-EntityId, X-UA-Compatible, X-DNS-Prefetch-Control, Expect-CT,
#: Accept-CH, X-Real-IP, HTTP2-Settings, Sec-WebSocket-Key, X-CSRF-Token, ...).
_IRREGULAR_WORDS = {
    "www": "WWW",
    "md5": "MD5",
    "id": "ID",
    "xss": "XSS",
    "odata": "OData",
    "maxversion": "MaxVersion",
    "entityid": "EntityId",
    "ua": "UA",
    "dns": "DNS",
    "ct": "CT",
    "ch": "CH",
    "ip": "IP",
    "http2": "HTTP2",
    "websocket": "WebSocket",
    "csrf": "CSRF",
    "xsrf": "XSRF",
    "p3p": "P3P",
    "nel": "NEL",
}


def encode_json_requests(requests: Iterable[SubRequest]) -> bytes:
    """A JSON batch request body (the client side); ValueError for a body it cannot carry."""
    return join_json_requests(encode_json_request(request) for request in requests)


def join_json_requests(items: Iterable[bytes]) -> bytes:
    """The body of a JSON batch from requests each encoded by :func:`encode_json_request`."""
    return b'{"requests":[' + b",".join(items) + b"]}"


def encode_json_request(request: SubRequest) -> bytes:
    """One request of a JSON batch; ValueError for a body the format cannot carry."""
    item: dict[str, Any] = {
        "id": request.content_id,
        "method": request.method,
        "url": request.target,
        "headers": dict(request.headers),
    }
    if request.depends_on:
        item["dependsOn"] = list(request.depends_on)
    if not request.body:
        return _dumps(item)
    content_type = first_header(request.headers, "content-type")
    if content_type is None:
        raise ValueError("in the JSON batch format a request body needs a Content-Type")
    cannot = f"the body is not valid {content_type}: the JSON batch format cannot carry it"
    if is_json(_media(content_type)[0]):
        # As it is, so that the application gets it exactly (surrounding white space aside).
        span = json_value_span(request.body)
        if span is None:
            raise ValueError(cannot)
        return _dumps(item)[:-1] + b',"body":' + bytes(request.body[span[0] : span[1]]) + b"}"
    item["body"], encoded = body_to_string(request.body, content_type)
    if encoded and not _is_binary(content_type):
        raise ValueError(cannot)
    return _dumps(item)


def json_value_span(data: bytes | bytearray) -> tuple[int, int] | None:
    """Where the one JSON value ``data`` holds starts and ends, as a JSON batch reader accepts
    it (strict, UTF-8, at most :data:`~.jsontext.MAX_DEPTH` levels deep), without the white
    space around it; None if it holds anything else. Nothing is built, nothing copied."""
    try:
        text = JsonText(data)
        start = text.space(text.start)
        end = text.value_end(start)
    except (NotUtf8, InvalidJson):
        return None
    return (start, end) if text.space(end) == len(data) else None


def read_json_responses(body: bytes) -> list[tuple[str | None, SubResponse]]:
    """A JSON batch answer as (id of the request it answers, response) pairs.

    Read as the server reads a batch (:class:`~.jsontext.JsonText`): a JSON body is taken as
    the server wrote it, byte for byte, and nothing is built for it. Each body may nest as
    deep as a request's may (:data:`~.jsontext.MAX_DEPTH`), wherever it sits in the answer.
    """
    try:
        text = JsonText(body)
        start = text.space(text.start)
        if text.byte(start) != _OPEN_OBJECT:
            raise TypeError("the answer is not an object")
        answers: list[tuple[str | None, SubResponse]] | None = None
        member = text.member_name(start, first=True)
        while isinstance(member, tuple):
            name, position = member
            if name == b"responses":
                answers, end = _responses(text, position)
            else:
                end = text.value_end(position)
            member = text.member_name(end, first=False)
        if text.space(member) != text.size:
            raise text.unexpected(text.space(member), "the end of the answer")
        if answers is None:
            raise KeyError("responses")
        return answers
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        raise MalformedBatch(f"the JSON batch answer is malformed: {error!r}") from None


def _responses(text: JsonText, start: int) -> tuple[list[tuple[str | None, SubResponse]], int]:
    """The responses of the array at ``start``, and where it ends."""
    if text.byte(start) != _OPEN_ARRAY:
        raise TypeError('"responses" is not an array')
    answers = []
    more, position = text.first_element(start)
    while more:
        members, end = _members(text, position)
        answers.append(_response(text, members))
        more, position = text.next_element(end)
    return answers, position


def _members(text: JsonText, start: int) -> tuple[dict[bytes, Span], int]:
    """The members of the object at ``start`` (name -> where its value is; the last of a
    repeated name), and where the object ends."""
    if text.byte(start) != _OPEN_OBJECT:
        raise TypeError("a response is not an object")
    members: dict[bytes, Span] = {}
    member = text.member(start, first=True)
    while isinstance(member, Member):
        members[member.name] = member.start, member.end
        member = text.member(member.end, first=False)
    return members, member


def _response(text: JsonText, members: dict[bytes, Span]) -> tuple[str | None, SubResponse]:
    """One response of an answer; an error for anything HTTP could not have carried."""

    def value(name: bytes, default: Any = None) -> Any:
        span = members.get(name)
        return default if span is None else _loads(text.raw(*span))

    status = value(b"status")
    if type(status) is not int or not 100 <= status <= 999:
        raise TypeError(f"status {status!r} is not an HTTP status")
    headers = value(b"headers", {})
    if not isinstance(headers, dict):
        raise TypeError('"headers" is not an object')
    fields = [
        (name, item)
        for name, values in headers.items()
        for item in (values if isinstance(values, list) else [values])
    ]
    if not all(isinstance(item, str) for _, item in fields):
        raise TypeError("a header value is not a string")
    encode_fields(tuple(fields))  # ValueError: a name or value HTTP cannot carry
    content_type = first_header(tuple(fields), "content-type")
    body = b""
    span = members.get(b"body")
    if span is not None:
        marked = value(b"bodyEncoding") == "base64url"
        if not marked and is_json(_media(content_type)[0]):
            body = text.raw(*span)  # the JSON text itself, as the server wrote it
        else:
            body = string_to_body(_loads(text.raw(*span)), None if marked else content_type)
        # The length is that of the body that arrived (a JSON body may be spaced otherwise).
        fields = [f for f in fields if f[0].lower() != "content-length"]
        fields.append(("Content-Length", str(len(body))))
    request_id = value(b"id")
    return (
        None if request_id is None else str(request_id),
        SubResponse(status, reason_phrase(status), tuple(fields), body),
    )


def _as_list(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]
