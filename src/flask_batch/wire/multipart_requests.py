"""The requests of a multipart batch (the Google/OData format), both ways:
:class:`RequestReader` (the server) reads ``application/http`` parts into
:class:`~.model.SubRequest` values, OData changesets included, and :func:`encode_requests`
(the clients) writes them, each atomic group as a changeset.

It joins :mod:`.multipart` (the framing) and :mod:`.http1` (the messages); the answers are
:mod:`.multipart_answers`. The JSON format sits beside it (:mod:`.json_requests`,
:mod:`.json_answers`), sharing the model (:mod:`.model`); :mod:`.formats` picks one by
media type.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Iterable, Sequence

from .errors import BatchError, LimitExceeded, MalformedBatch
from .fields import (
    CRLF,
    FIELD_VALUE,
    HTTP_FIELD_LINES,
    encode_field,
    encode_fields,
    encode_text,
    number,
    parse_fields,
)
from .http1 import REQUEST_LINE, SUPPORTED_VERSIONS, parse_request, serialise_request
from .media_type import boundary_of, boundary_param, multipart_type, parse_media_type
from .model import Group, Headers, Limits, Part, SubRequest, filled_tuple
from .multipart import MultipartReader, encode_close, encode_part

__all__ = [
    "RequestReader",
    "body_location",
    "changeset_boundary",
    "encode_request",
    "encode_requests",
    "read_requests",
]

_ACCEPTED_ENCODINGS = frozenset({"binary", "8bit", "7bit"})
#: Methods that change nothing: a changeset (a group of changes) cannot hold them (OData).
_READS = frozenset({"GET", "HEAD"})
#: The shape of nearly every part of a batch, as Google's and OData's clients and ours write
#: it, read in one pass (:meth:`RequestReader._read_shaped`): group 1, the part's headers
#: in this order and spelling and their blank line (2: the Content-ID, 3: the Depends-On);
#: the request line (4-6: method, target, version); 7: the HTTP header lines, up to their
#: blank line. Each line matches in one way only, and possessively: a part that does not fit
#: fails at its first odd byte, and goes the general way.
_SHAPED_PART = re.compile(
    rb"(Content-Type: application/http\r?\n"
    rb"(?:Content-Transfer-Encoding: binary\r?\n)?+"
    rb"(?:Content-ID:" + FIELD_VALUE + rb")?+"
    rb"(?:Depends-On:" + FIELD_VALUE + rb")?+"
    rb"\r?\n)" + REQUEST_LINE + rb"\r?\n(" + HTTP_FIELD_LINES + rb")\r?\n"
)
#: The most fields the shape's part headers have: a route allowing fewer reads every part
#: the general way (which refuses the part).
_SHAPED_FIELDS = 4
#: What may follow a field's value on its line, and is not part of it.
_BLANKS = b" \t"
#: The body of a shaped part whose headers say no Content-Length: it runs to the part's end.
_TO_PART_END = -1
#: Header blocks one batch keeps the framing of: a bound on its memory.
_FRAMINGS = 256


class RequestReader:
    """Reads a batch request body delimited by ``boundary``, fed in chunks, into
    :class:`SubRequest` values.

    A part that is itself ``multipart/mixed`` is an OData changeset: an atomic group whose
    members are ``application/http`` requests, read once the changeset has arrived whole (its
    bytes are the body's: bounded by ``max_body_size``, and read again once, so the work stays
    linear). Every member counts as a request toward ``max_parts``, and a changeset holds at
    most ``max_group_size`` of them; an error inside one names the changeset's part and the
    member.
    """

    def __init__(self, boundary: str, limits: Limits, *, one_pass: bool = True) -> None:
        """``one_pass``: read the usual parts in one pass each (:meth:`_read_shaped`); False
        reads every part the general way, to the same requests (the tests and the fuzzer
        compare the two)."""
        self._limits = limits
        self._reader = MultipartReader(boundary, limits)
        self._requests: list[SubRequest] = []
        self._parts = 0  # parts of the body read (a changeset is one)
        self._member_limits: Limits | None = None  # a changeset's reader's: see _changeset
        self._nested_scanned = 0  # the work of the changesets' readers
        # The requests of a batch tend to repeat their headers: each block is read once.
        # Per batch, so that no batch can learn from timing what another one sent.
        self._seen_fields: dict[bytes, Headers] = {}
        # Of those blocks, the ones a shaped part may have: their fields and body length.
        self._framings: dict[bytes, tuple[Headers, int]] = {}
        one_pass = one_pass and limits.max_headers >= _SHAPED_FIELDS
        self._shape = _SHAPED_PART if one_pass else None

    @property
    def scanned(self) -> int:
        """The multipart readers' work meter (:attr:`MultipartReader.scanned`): the body's,
        and its changesets'."""
        return self._reader.scanned + self._nested_scanned

    def feed(self, data: bytes) -> None:
        self._reader.push(data)
        self._read_parts()

    def close(self) -> list[SubRequest]:
        """The body ended: every sub-request, in order, or the error that refuses the batch."""
        self._reader.end()
        self._read_parts()
        return self._requests

    def _read_parts(self) -> None:
        # One part at a time: a part's errors come before those of the parts after it.
        while True:
            if self._shape is not None:
                self._read_shaped(self._shape)
            part = self._reader.next_part()
            if part is None:
                return
            self._parts += 1
            index = self._parts
            # Once a changeset was read, its members count toward max_parts too.
            if self._member_limits is not None and len(self._requests) >= self._limits.max_parts:
                raise _too_many_requests(self._limits, index)
            content_type, content_id, depends_on = _mime_fields(part, index)
            if (
                content_type is not None
                and content_type.lower() != "application/http"  # the common case first
                and (boundary := changeset_boundary(content_type, index)) is not None
            ):
                self._changeset(part.content, boundary, index, depends_on)
                continue
            self._requests.append(self._request(part, index, content_id, depends_on))

    def _read_shaped(self, shape: re.Pattern[bytes]) -> None:
        """Read the next parts in one pass each while they have the usual shape
        (:data:`_SHAPED_PART`) and nothing about them needs a closer look, into the requests
        the general way reads from them, in one loop (:meth:`MultipartReader.read_whole_parts`).
        It stops, having read nothing of it, at a part the general way must read (to a
        request, or to the error that refuses it). ``tests/test_shaped_parts.py`` holds the
        two ways equal over every input of the parser's tests, the hostile ones and the
        fuzzer's corpus among them.
        """
        requests, framings, framing_of = self._requests, self._framings, self._framing
        append = requests.append

        def take(buffer: bytearray, match: re.Match[bytes], end: int) -> bool:
            body_start = match.end()
            if body_start > end:
                return False  # the HTTP head runs past the part: it has no blank line
            content_id, depends_on, method, target, version, block = match.group(2, 3, 4, 5, 6, 7)
            if version is not None and version not in SUPPORTED_VERSIONS:
                return False
            framing = framings.get(block) or framing_of(block)
            if framing is None:
                return False
            headers, length = framing
            if length == _TO_PART_END:
                body = bytes(buffer[body_start:end]) if body_start < end else b""
                if not body.strip(b"\r\n"):
                    body = b""  # blank lines alone are no body
            elif body_start + length == end:
                body = bytes(buffer[body_start:end])
            else:
                return False  # too long for its part, or followed by more bytes
            append(
                filled_tuple(
                    SubRequest,
                    (
                        method.decode("ascii"),
                        target.decode("ascii"),
                        headers,
                        body,
                        None
                        if content_id is None
                        else content_id.rstrip(_BLANKS).decode("latin-1"),
                        () if depends_on is None else _ids(depends_on.decode("latin-1")),
                        None,
                        None,
                    ),
                )
            )
            return True

        # Once a changeset was read, its members count toward max_parts too.
        most = (
            sys.maxsize if self._member_limits is None else self._limits.max_parts - len(requests)
        )
        self._parts += self._reader.read_whole_parts(shape, take, most)

    def _framing(self, block: bytes) -> tuple[Headers, int] | None:
        """The fields of a shaped part's HTTP header block, and its body's length (or
        :data:`_TO_PART_END`); None when the block needs the general way: a field over the
        limits, a Transfer-Encoding, Content-Lengths that differ or one that is not digits."""
        try:
            headers = parse_fields(block, self._limits, None, seen=self._seen_fields)
        except BatchError:
            return None
        lengths = set()
        for name, value in headers:
            lowered = name.lower()
            if lowered == "transfer-encoding":
                return None
            if lowered == "content-length":
                lengths.add(value)
        length = number(lengths.pop()) if len(lengths) == 1 else _TO_PART_END
        if lengths or length is None:  # several, or not a number: the general way says so
            return None
        framing = (headers, length)
        if len(self._framings) < _FRAMINGS:
            self._framings[block] = framing
        return framing

    def _request(
        self, part: Part, index: int, content_id: str | None, depends_on: tuple[str, ...]
    ) -> SubRequest:
        method, target, headers, body = parse_request(
            part.content, self._limits, index, seen=self._seen_fields
        )
        return SubRequest(method, target, headers, body, content_id, depends_on)

    def _changeset(
        self, content: bytes | bytearray, boundary: str, index: int, depends_on: tuple[str, ...]
    ) -> None:
        """Read the changeset at part ``index`` into its members (``depends_on``: what its
        own ``Depends-On`` names, which every member waits for)."""
        limits = self._limits
        if self._member_limits is None:  # the parts are counted here, members and all
            self._member_limits = dataclasses.replace(limits, max_parts=sys.maxsize)
        reader = MultipartReader(boundary, self._member_limits, "the changeset")
        first = len(self._requests)
        members: list[SubRequest] = []
        try:
            if isinstance(content, bytearray):
                reader.adopt(content)  # a large changeset: its buffer, not a copy of it
            else:
                reader.push(content)
            reader.end()
            while (part := reader.next_part()) is not None:
                member = len(members) + 1
                if member > limits.max_group_size:
                    raise LimitExceeded.of(
                        limits,
                        "max_group_size",
                        "the changeset has more than {value} requests",
                        part=member,
                    )
                if first + member > limits.max_parts:
                    raise _too_many_requests(limits, member)
                content_type, content_id, own = _mime_fields(part, member)
                if changeset_boundary(content_type, member) is not None:
                    raise MalformedBatch(
                        "a changeset cannot contain another changeset", part=member
                    )
                request = self._request(part, member, content_id, depends_on + own)
                if request.method in _READS:
                    raise MalformedBatch(
                        f"a changeset holds changes only: a {request.method} request goes "
                        "outside it, as its own part",
                        part=member,
                    )
                members.append(request)
        except BatchError as error:
            raise error.inside(index) from None
        finally:
            self._nested_scanned += reader.scanned
        group = Group(boundary, len(members), first)
        self._requests.extend(member._replace(group=group) for member in members)


def body_location(requests: Sequence[SubRequest], index: int) -> tuple[int, int | None]:
    """Where the request at ``index`` (from 0, each member of a changeset counted) is in a
    multipart body: its part (from 1) and, for a changeset's member, its place in it."""
    part, position = 0, 0
    while True:
        group = requests[position].group
        part += 1
        end = position + (1 if group is None else group.size)
        if index < end:
            return part, (None if group is None else index - position + 1)
        position = end


def _mime_fields(part: Part, index: int) -> tuple[str | None, str | None, tuple[str, ...]]:
    """A part's Content-Type, Content-ID and Depends-On ids (the first of a repeated header
    counts); refuses a Content-Transfer-Encoding other than the identity ones."""
    content_type: str | None = None
    content_id: str | None = None
    encoding: str | None = None
    depends_on: str | None = None
    for name, value in part.headers:
        lowered = name.lower()
        if lowered == "content-type":
            content_type = value if content_type is None else content_type
        elif lowered == "content-id":
            content_id = value if content_id is None else content_id
        elif lowered == "content-transfer-encoding":
            encoding = value if encoding is None else encoding
        elif lowered == "depends-on":
            depends_on = value if depends_on is None else depends_on
    if encoding is not None and encoding.strip().lower() not in _ACCEPTED_ENCODINGS:
        raise MalformedBatch(
            f"Content-Transfer-Encoding {encoding!r} is not supported: send binary", part=index
        )
    if not depends_on:
        return content_type, content_id, ()
    return content_type, content_id, _ids(depends_on)


def _ids(depends_on: str) -> tuple[str, ...]:
    """The ids a ``Depends-On`` value names."""
    return tuple(name.strip() for name in depends_on.split(",") if name.strip())


def _too_many_requests(limits: Limits, index: int) -> LimitExceeded:
    return LimitExceeded.of(
        limits,
        "max_parts",
        "the batch has more than {value} requests (each member of a changeset counts)",
        part=index,
    )


def read_requests(
    content_type: str | None, chunks: Iterable[bytes], limits: Limits
) -> list[SubRequest]:
    """Read a whole batch request body given as an iterable of chunks."""
    reader = RequestReader(boundary_of(content_type), limits)
    for chunk in chunks:
        reader.feed(chunk)
    return reader.close()


def changeset_boundary(content_type: str | None, index: int) -> str | None:
    """The boundary of a part that is a changeset (``multipart/mixed``), or None for a part
    carrying an HTTP message as Google and OData send it; refuses any other part."""
    if content_type is None or content_type.lower() == "application/http":
        return None
    try:
        media_type, params = parse_media_type(content_type)
        if media_type == "multipart/mixed":
            return boundary_param(params)
    except MalformedBatch as error:
        raise MalformedBatch(error.detail, part=index) from None
    if media_type != "application/http":
        raise MalformedBatch(
            "a part must be Content-Type: application/http (or multipart/mixed: a changeset), "
            f"not {media_type!r}",
            part=index,
        )
    return None


def _part_head(
    content_id: str | None, depends_on: tuple[str, ...] = (), *, member: bool = False
) -> bytes:
    """The MIME header lines of a request's part: the constant ones as they are, the
    Content-ID and Depends-On encoded and checked (no CR, LF or NUL)."""
    # As OData's clients write a changeset's members.
    head = _MEMBER_HEAD if member else _PART_HEAD
    if content_id is not None:
        head += b"Content-ID: " + encode_text(content_id, "Content-ID") + CRLF
    if depends_on:
        head += encode_field("Depends-On", ", ".join(depends_on)) + CRLF
    return head


_PART_HEAD = b"Content-Type: application/http\r\n"
_MEMBER_HEAD = _PART_HEAD + b"Content-Transfer-Encoding: binary\r\n"


def encode_request(
    request: SubRequest,
    boundary: str,
    *,
    opens_group: bool = False,
    closes_group: bool = False,
    seen: dict[Headers, bytes] | None = None,
) -> bytes:
    """One request as it goes in a batch body delimited by ``boundary`` (the client side).

    A member of an atomic group goes inside its group's changeset: a part of the batch that
    is itself ``multipart/mixed``, delimited by the group's name. The group's first member
    (``opens_group``) carries the changeset part's head, its last (``closes_group``) the
    changeset's close delimiter, so the members' bytes joined in order are the changeset part,
    and each member can be sized, and sent again, on its own. ``seen``: header blocks already
    encoded (:func:`~.http1.serialise_request`).
    """
    message = serialise_request(
        request.method, request.target, request.headers, request.body, seen=seen
    )
    group = request.group
    if group is None:
        return encode_part(boundary, _part_head(request.content_id, request.depends_on), message)
    head = b""
    if opens_group:
        delimiter = b"--" + boundary.encode("ascii") + CRLF
        head = delimiter + encode_fields((("Content-Type", multipart_type(group.name)),)) + CRLF
    member_head = _part_head(request.content_id, request.depends_on, member=True)
    member = encode_part(group.name, member_head, message)
    # The changeset's close delimiter; the CRLF after it begins the batch's next delimiter.
    tail = b"--" + group.name.encode("ascii") + b"--" + CRLF if closes_group else b""
    return head + member + tail


def encode_requests(requests: Iterable[SubRequest], boundary: str) -> bytes:
    """A batch request body (the client side): adjacent members of one group (the same
    :class:`~.model.Group` object) go in one changeset."""
    requests = list(requests)
    parts = []
    for index, request in enumerate(requests):
        group = request.group
        before = requests[index - 1].group if index else None
        after = requests[index + 1].group if index + 1 < len(requests) else None
        parts.append(
            encode_request(
                request,
                boundary,
                opens_group=group is not None and before is not group,
                closes_group=group is not None and after is not group,
            )
        )
    return b"".join(parts) + encode_close(boundary)
