"""The requests of a JSON batch, both ways: :class:`JsonRequestReader` (the server) reads
``{"requests": [{"id", "method", "url", "headers", "body", "dependsOn"}]}`` from its raw
bytes (:mod:`.jsontext`), so a request's JSON body is the exact text its client wrote, and
:func:`encode_json_request` (the clients) writes one.

(Over 400 lines on purpose: :class:`_Reading` is one pass over the batch whose checks of
every limit act on the same position and budgets; it stays whole so that each check reads
beside what it guards. How bodies travel is :mod:`.json_bodies`.)
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any
from urllib.parse import quote

from .errors import LimitExceeded, MalformedBatch
from .fields import encode_fields
from .json_bodies import (
    body_media_type,
    body_to_string,
    decode_base64url,
    dumps_compact,
    is_base64url_type,
    is_json,
    json_value_span,
)
from .json_groups import AtomicityGroups
from .jsontext import (
    OPEN_ARRAY,
    OPEN_OBJECT,
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
from .model import Headers, Limits, SubRequest, filled_tuple, first_header

__all__ = [
    "MAX_MEMBERS",
    "JsonRequestReader",
    "encode_json_request",
    "encode_json_requests",
    "join_json_requests",
]

# Every visible ASCII character stays as sent; anything else in a url is percent-encoded.
_URL_SAFE = "".join(chr(code) for code in range(0x21, 0x7F))
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


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
        # object is read once, with the size of its header lines. Per batch, so that no batch
        # learns from timing what another sent.
        self._seen_headers: dict[bytes, tuple[Headers, int, _BodyType]] = {}
        # Longer JSON strings cannot fit in a header block: refused before they are decoded.
        self._string_budget = _ESCAPED * limits.max_header_size

    def batch(self) -> list[SubRequest]:
        """The requests of ``{"requests": [...]}``; its other members are read past."""
        text = self.text
        start = text.space(text.start)
        if text.byte(start) != OPEN_OBJECT:
            text.value_end(start)  # InvalidJson if it is not JSON at all
            raise MalformedBatch(_BATCH_SHAPE)
        requests: list[SubRequest] | None = None
        names: set[bytes] = set()
        member = text.member_name(start, first=True)
        while isinstance(member, tuple):
            name, value = member
            _check_unique(name, names, "the batch", None)
            if name == b"requests":
                if text.byte(value) != OPEN_ARRAY:
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
        groups = AtomicityGroups(requests, self.limits)
        limits = self.limits
        more, position = self.text.first_element(start)
        while more:
            index = len(requests) + 1
            if index > limits.max_parts:
                raise LimitExceeded.of(
                    limits, "max_parts", "the batch has more than {value} requests", part=index
                )
            self.part = index
            (request, group), end = self._request(position, index)
            assert request.content_id is not None
            if request.content_id in ids:
                raise MalformedBatch(f"the id {request.content_id!r} is used twice", part=index)
            ids.add(request.content_id)
            if group is not None or groups.seen:  # most batches have none: no look
                groups.add(request.content_id, group, ids, index)
            requests.append(request)
            more, position = self.text.next_element(end)
        groups.close()
        self.part = None
        return requests, position

    def _request(self, start: int, index: int) -> tuple[tuple[SubRequest, str | None], int]:
        """The request of the object at ``start`` and the name of its atomicity group (see
        :meth:`_to_request`), and where the object ends."""
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

    def _request_by_members(
        self, start: int, index: int
    ) -> tuple[tuple[SubRequest, str | None], int]:
        """:meth:`_request`, member by member: other members, or errors to report."""
        text = self.text
        if text.byte(start) != OPEN_OBJECT:
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
            member = text.member(member.end, first=False)
        return self._to_request(tuple(spans.values()), index), member

    def _check_type(self, member: Member, index: int) -> None:
        """Refuses a member of :data:`_REQUEST_MEMBERS` whose value is not of its type."""
        text = self.text
        name, start, end = member
        if name in (b"id", b"method", b"url"):
            typed = text.is_string(start)
            expected = f'a request needs "{name.decode()}" as a non-empty string'
        elif name == b"atomicityGroup":
            typed = text.is_string(start)
            expected = '"atomicityGroup" must be a non-empty string'
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

    def _to_request(self, spans: Sequence[Span], index: int) -> tuple[SubRequest, str | None]:
        """The request whose members' values are at ``spans`` (:data:`_REQUEST_MEMBERS`),
        and the name of its atomicity group (None: it is in none)."""
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
        headers, lines, body_type = self._headers(spans[_HEADERS], index)
        # The HTTP head it would have in multipart: request line, header lines, blank line
        # ("{method} {target} HTTP/1.1\r\n\r\n": both are ASCII by now).
        head = len(method) + len(target) + 14 + lines
        if head > limits.max_header_size:
            raise _head_too_large(limits, index)
        depends_on = self._depends_on(spans[_DEPENDS_ON], spans[_DEPENDS_ON_SNAKE], index)
        group = None
        if spans[_GROUP][0] >= 0:
            group = self._string(spans[_GROUP], "atomicityGroup", index, _part_head_too_large)
        # Its MIME headers in multipart: "Content-ID: <id>", "Depends-On: <ids>", blank line.
        part_head = 16 + (  # "Content-ID: {request_id}\r\n\r\n"
            len(request_id)
            if request_id.isascii()
            else len(request_id.encode("utf-8", "surrogatepass"))
        )
        if depends_on:
            line = f"Depends-On: {', '.join(depends_on)}\r\n"
            part_head += len(line.encode("utf-8", "surrogatepass"))
        if part_head > limits.max_header_size:
            raise _part_head_too_large(limits, index)
        body, invalid_reason = self._body(spans[_BODY], body_type, index)
        request: SubRequest = filled_tuple(
            SubRequest,
            (method, target, headers, body, request_id, depends_on, invalid_reason, None),
        )
        return request, group

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

    def _headers(self, span: Span, index: int) -> tuple[Headers, int, _BodyType]:
        """The fields of a "headers" object of strings, counted before they are decoded, the
        bytes of their header lines in an HTTP head, and what their Content-Type says of a
        body."""
        start, end = span
        if start < 0:
            return (), 0, _UNTYPED
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
            lines = len(encode_fields(headers))
        except ValueError as error:
            raise MalformedBatch(str(error), part=index) from None
        known = headers, lines, _BodyType(first_header(headers, "content-type"))
        if key and len(self._seen_headers) < _SEEN_HEADERS:
            self._seen_headers[key] = known
        return known

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

    def _body(self, span: Span, body_type: _BodyType, index: int) -> tuple[bytes, str | None]:
        """The body a request's "body" stands for by its Content-Type, and why it cannot be
        read if it cannot (the request is then answered 400, the others run)."""
        start, end = span
        if start < 0:
            return b"", None
        text = self.text
        # "body": null is the JSON value null under a JSON type, and no body otherwise.
        null = end - start == 4 and text.data[start:end] == b"null"
        if null and not body_type.loosely_json:
            return b"", None
        if body_type.content_type is None:
            return b"", "a request with a body needs a Content-Type header"
        limit = self.limits.max_part_size
        try:
            media_type, params = body_type.media()
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


class _BodyType:
    """What a request's Content-Type says of its body, worked out once per distinct
    "headers" object of a batch (:meth:`_Reading._headers`): requests repeat theirs."""

    __slots__ = ("_media", "content_type", "loosely_json")

    def __init__(self, content_type: str | None) -> None:
        self.content_type = content_type
        #: Whether it is a JSON type (an unreadable one is not): "body": null is then a value.
        self.loosely_json = is_json(body_media_type(content_type)[0])
        self._media: tuple[str, dict[str, str]] | str | None = None

    def media(self) -> tuple[str, dict[str, str]]:
        """The media type and its parameters; ValueError if the Content-Type is unreadable."""
        media = self._media
        if media is None:
            try:
                media = body_media_type(self.content_type, strict=True)
            except ValueError as error:
                media = str(error)
            self._media = media
        if isinstance(media, str):
            raise ValueError(media)
        return media


_UNTYPED = _BodyType(None)


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
_BATCH_SHAPE = 'a JSON batch is an object with a "requests" array'
#: The members of a request that are read (the others are only checked to be JSON), in the
#: order of the groups of :func:`_request_matcher`; the value of an absent one is at _ABSENT.
_REQUEST_MEMBERS = (
    b"id",
    b"method",
    b"url",
    b"headers",
    b"dependsOn",
    b"depends_on",
    b"atomicityGroup",
    b"body",
)
_ID, _METHOD, _URL, _HEADERS, _DEPENDS_ON, _DEPENDS_ON_SNAKE, _GROUP, _BODY = range(8)
_GROUPS = range(1, len(_REQUEST_MEMBERS) + 1)
_ABSENT = (-1, -1)


@cache
def _request_matcher() -> re.Pattern[bytes]:
    """A request with only the members it is read for, each once, each of its type."""
    types = (STRING, STRING, STRING, STRINGS_OBJECT, STRINGS_ARRAY, STRINGS_ARRAY, STRING)
    values = (*types, value_pattern())
    return re.compile(
        object_pattern([(n.decode(), v) for n, v in zip(_REQUEST_MEMBERS, values, strict=True)])
    )


def _base64url_string(text: JsonText, start: int, end: int, limit: int) -> bytes:
    """:func:`decode_base64url` of the string whose inside is from ``start`` to ``end``."""
    text.scanned += end - start
    if text.data.find(b"\\", start, end) < 0:
        return decode_base64url(text.data, start, end, limit)
    try:  # "\\/" for "/": some encoders escape it
        return decode_base64url(text.encoded(start, end, "ascii"), limit=limit)
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
    if request.group is not None:
        item["atomicityGroup"] = request.group.name
    if not request.body:
        return dumps_compact(item)
    content_type = first_header(request.headers, "content-type")
    if content_type is None:
        raise ValueError("in the JSON batch format a request body needs a Content-Type")
    cannot = f"the body is not valid {content_type}: the JSON batch format cannot carry it"
    if is_json(body_media_type(content_type)[0]):
        # As it is, so that the application gets it exactly (surrounding white space aside).
        span = json_value_span(request.body)
        if span is None:
            raise ValueError(cannot)
        return (
            dumps_compact(item)[:-1] + b',"body":' + bytes(request.body[span[0] : span[1]]) + b"}"
        )
    item["body"], encoded = body_to_string(request.body, content_type)
    if encoded and not is_base64url_type(content_type):
        raise ValueError(cannot)
    return dumps_compact(item)
