"""The answers of a multipart batch (the Google/OData format), both ways:
:class:`ResponseWriter` (the server) writes one ``application/http`` part per request as it
is answered, in the route's dialect (Google's or OData's spelling, changesets nested or
flat), and :func:`read_answers` (the clients) reads every answer back, with where it came
(a changeset's nested answer, or the one part of a failed changeset).

The requests are :mod:`.multipart_requests`; the JSON format's answers :mod:`.json_answers`.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import BatchError, MalformedBatch
from .fields import BLANK_LINE, CRLF, encode_text
from .http1 import (
    EncodedBlocks,
    ResponseHead,
    parse_response,
    parse_response_head,
    response_head,
)
from .media_type import boundary_of, multipart_type, new_boundary, odata_boundary
from .model import UNLIMITED, Group, Part, SubRequest, SubResponse
from .multipart import MultipartReader, encode_close
from .multipart_requests import changeset_boundary

__all__ = [
    "AnswerStream",
    "ReadAnswer",
    "ResponseWriter",
    "read_answers",
    "read_responses",
    "request_content_id",
    "response_content_id",
]


def response_content_id(request_id: str | None) -> str | None:
    """Google's rule: ``<X>`` is answered ``<response-X>``; a bare id is echoed as it is."""
    if request_id is None:
        return None
    if request_id.startswith("<") and request_id.endswith(">"):
        return f"<response-{request_id[1:-1]}>"
    return request_id


def request_content_id(response_id: str | None) -> str | None:
    """The request id a response id answers (the inverse of :func:`response_content_id`)."""
    if (
        response_id is not None
        and response_id.startswith("<response-")
        and response_id.endswith(">")
    ):
        return f"<{response_id[len('<response-') : -1]}>"
    return response_id


class ResponseWriter:
    """Writes the answer of a batch, one part at a time, so it can be streamed.

    The members of an atomic group are written as a changeset: one ``multipart/mixed`` part
    holding one ``application/http`` part per member, framed by a boundary of its own
    (``changesetresponse_<uuid>``, as OData's reference servers write it, each member with
    ``Content-Transfer-Encoding: binary``); the schedule writes a failed group as one part,
    the failing member's answer (:attr:`collapses_failed_groups`). With ``flat``, each member
    of a changeset that succeeded is a part of the batch's answer instead, as SharePoint's
    client reads them (a failed one is still one part: the client raises that answer). With
    ``odata``, the whole answer is spelt so: its boundary ``batchresponse_<uuid>``, every
    part binary.
    """

    def __init__(
        self, boundary: str | None = None, *, flat: bool = False, odata: bool = False
    ) -> None:
        self.boundary = boundary or (odata_boundary("batchresponse") if odata else new_boundary())
        #: A failed changeset is one part in its place (OData; SharePoint's client too).
        self.collapses_failed_groups = True
        self._flat = flat
        # Every part opens alike: delimiter and Content-Type, written once.
        self._delimiter = b"--%s\r\n" % self.boundary.encode()
        self._opening = self._delimiter + (
            _MEMBER_HEADERS if odata else b"Content-Type: application/http\r\n"
        )
        self._group: Group | None = None  # the changeset being written
        self._left = 0  # its members not written yet
        self._member_opening = b""  # its members' delimiter and headers
        self._changeset_close = b""  # its close delimiter
        self._encoded_blocks: EncodedBlocks = {}  # the answers' header blocks (response_head)

    @property
    def content_type(self) -> str:
        return multipart_type(self.boundary)

    @property
    def next_opening(self) -> bytes:
        """The delimiter line the next part begins with, outside a changeset: a reader knows a
        part has ended only once it has read the delimiter after it, so the schedule sends
        that line with the parts it flushes (``Schedule.flush``). Inside a changeset, the
        next member begins with the changeset's own: nothing is certain."""
        return self._delimiter if self._group is None else b""

    def start(self) -> bytes:
        return b""  # no preamble

    def part(self, response: SubResponse, request: SubRequest) -> bytes:
        """The part answering ``request``; raises ValueError if ``response`` cannot be sent."""
        head, body, tail = self.part_pieces(response, request)
        return b"".join((head, body, tail))

    def part_pieces(
        self, response: SubResponse, request: SubRequest
    ) -> tuple[bytes, bytes | bytearray, bytes]:
        """:meth:`part` as its head, the response's body itself (not copied) and its tail."""
        status_line, field_lines, body = response_head(
            response, head=request.method == "HEAD", seen=self._encoded_blocks
        )
        content_id = response_content_id(request.content_id)
        id_line = b""
        if content_id is not None:
            id_line = b"Content-ID: " + encode_text(content_id, "Content-ID") + CRLF
        group = request.group
        if group is None or self._flat:
            head = b"".join((self._opening, id_line, CRLF, status_line, field_lines, CRLF))
            return head, body, CRLF
        # Nothing above raised: the changeset's state may change now.
        opening = b""
        if group is not self._group:  # a changeset begins: a part holding a multipart body
            boundary = odata_boundary("changesetresponse").encode()
            opening = b"%sContent-Type: multipart/mixed; boundary=%s\r\n\r\n" % (
                self._delimiter,
                boundary,
            )
            self._group, self._left = group, group.size
            self._member_opening = b"--%s\r\n%s" % (boundary, _MEMBER_HEADERS)
            self._changeset_close = b"--%s--\r\n" % boundary
        self._left -= 1
        tail = CRLF
        if self._left == 0:
            tail += self._changeset_close
            self._group = None
        head = b"".join(
            (opening, self._member_opening, id_line, CRLF, status_line, field_lines, CRLF)
        )
        return head, body, tail

    def close(self) -> bytes:
        return encode_close(self.boundary)


#: A changeset member's part headers, as OData's reference servers write them.
_MEMBER_HEADERS = b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"


class ReadAnswer(NamedTuple):
    """One answer of a batch answer, as a client reads it, with where it came."""

    #: The id of the request it answers (its Content-ID, read by :func:`request_content_id`).
    content_id: str | None
    response: SubResponse
    #: The part of the batch answer it came in (1-based).
    part: int
    #: Whether it came inside a changeset's answer (a ``multipart/mixed`` part of the answer).
    in_changeset: bool


def read_answers(content_type: str | None, body: bytes) -> list[ReadAnswer]:
    """A batch answer body, every answer in it, in order (the client side).

    A part of the answer that is itself ``multipart/mixed`` answers a changeset that
    succeeded: one answer per member inside. Every other part is one answer, which may stand
    for a whole changeset that failed (OData answers it with the failing member's answer):
    which request an answer is for is the caller's to decide, by :attr:`ReadAnswer.content_id`,
    :attr:`~ReadAnswer.part` and :attr:`~ReadAnswer.in_changeset`.
    """
    body_boundary = boundary_of(content_type)
    if type(body) is bytes:
        plain = _read_plain(body_boundary, body)
        if plain is not None:
            return plain
    reader = MultipartReader(body_boundary, UNLIMITED)
    answers: list[ReadAnswer] = []
    for index, part in enumerate(reader.feed(body) + reader.close(), start=1):
        answers += _answers_in(part, index, None)
    return answers


#: The longest part header block the one pass over an arriving answer looks for: a longer
#: one (a Content-ID of hundreds of bytes) is read the general way.
_PLAIN_HEADERS_MOST = 1024


class AnswerStream:
    """:func:`read_answers` as the body arrives: :meth:`feed` takes each piece and gives the
    answers whose parts it completed, so that a client reads an answer while the server is
    still writing the next ones (docs/performance.md, "Answers read as they arrive").

    An answer shaped as this package's server writes one is read in one pass, as
    :func:`_read_plain` reads it whole; at the first part of another shape (or with an
    error), the general reader takes over from that part's delimiter. Nothing is raised
    while feeding: an error stops the reading, and :meth:`close` raises it (the same
    :class:`~.errors.BatchError`, at the first part the body is wrong in; the whole-body
    :func:`read_answers` names a framing error first). Every search resumes where the last
    one stopped, so the work stays linear in the body, however it is cut.
    """

    def __init__(self, content_type: str | None) -> None:
        """``BatchError`` at once if ``content_type`` names no multipart boundary."""
        self._boundary = boundary_of(content_type)
        self._delimiter = b"\n--" + self._boundary.encode("ascii")
        # The one pass: the bytes from the start of the part it reads next (the whole body
        # until the opening delimiter line is read), where its headers end (0: not found
        # yet) and where the searches for their end and for the part's end resume.
        self._buffer = bytearray()
        self._opened = False
        self._content_id: bytes | None = None  # the part's, as its headers give it
        self._content_start = 0
        self._header_scan = 0
        self._scan = 0
        self._ended = False  # the one pass read the close delimiter: what follows is epilogue
        #: The general reading, once it took over; the parts read before it did.
        self._reader: MultipartReader | None = None
        self._before = 0
        self._parts = 0
        self._heads: dict[bytes, ResponseHead] = {}
        self._error: BatchError | None = None
        self._looked_at = 0  # the bytes the one pass's searches looked at
        #: Every answer read so far, in order.
        self.answers: list[ReadAnswer] = []

    @property
    def scanned(self) -> int:
        """The work meter (as :attr:`MultipartReader.scanned`): the one pass's searches and
        the general reading's work."""
        return self._looked_at + (0 if self._reader is None else self._reader.scanned)

    def feed(self, data: bytes) -> list[ReadAnswer]:
        """Take the next bytes of the body; the answers they completed."""
        read = len(self.answers)
        if self._error is not None or self._ended:
            return []
        if self._reader is None:
            self._buffer += data
            if not self._one_pass():  # the general reading reads the rest
                self._take_over()
        else:
            self._reader.push(data)
        if self._reader is not None:
            self._general()
        return self.answers[read:]

    def close(self) -> list[ReadAnswer]:
        """The body ended: every answer in it (:attr:`answers`), or its error."""
        if self._error is None and not self._ended:
            if self._reader is None:  # cut before the close delimiter: the general reading says so
                self._take_over()
            assert self._reader is not None
            self._reader.end()
            self._general()
        if self._error is not None:
            raise self._error
        return self.answers

    def _one_pass(self) -> bool:
        """Read the parts the buffer completes into :attr:`answers`, as :func:`_read_plain`
        reads them; False at the first part of another shape, where the general reading is
        to take over."""
        buffer, delimiter = self._buffer, self._delimiter
        while not self._ended:
            if not self._opened:  # the body opens with a delimiter line, no preamble
                opening = delimiter[1:] + CRLF
                if len(buffer) < len(opening) and opening.startswith(buffer):
                    return True
                if not buffer.startswith(opening):
                    return False
                del buffer[: len(opening)]
                self._opened = True
            if not self._content_start:  # the part's headers end with a blank line
                blank = buffer.find(b"\r\n\r\n", self._header_scan, _PLAIN_HEADERS_MOST)
                self._looked_at += (blank + 4 if blank >= 0 else len(buffer)) - self._header_scan
                if blank < 0:
                    self._header_scan = max(0, len(buffer) - 3)
                    return len(buffer) < _PLAIN_HEADERS_MOST
                headers = _PLAIN_PART_HEADERS.match(buffer)
                if headers is None or headers.end() != blank + 4:
                    return False
                self._content_start, self._content_id = headers.end(), headers.group(1)
                self._scan = self._content_start - 1  # its LF may begin an empty part's end
            at = buffer.find(delimiter, self._scan)
            self._looked_at += (at + len(delimiter) if at >= 0 else len(buffer)) - self._scan
            if at < 0:
                self._scan = max(self._scan, len(buffer) - len(delimiter) + 1)
                return True
            after = at + len(delimiter)
            if len(buffer) < after + 2:  # what follows the boundary decides what it is
                self._scan = at
                return True
            closes = buffer.startswith(b"--", after)
            if not closes and not buffer.startswith(CRLF, after):
                return False
            content = bytes(buffer[self._content_start : at])
            try:
                answer = _plain_answer(
                    content,
                    0,
                    len(content),
                    content_id=self._content_id,
                    index=self._parts + 1,
                    heads=self._heads,
                )
            except MalformedBatch:  # the general reading says what is wrong, in body order
                return False
            self._parts += 1
            self.answers.append(answer)
            if closes:  # what follows is epilogue
                self._ended = True
                buffer.clear()
            else:
                del buffer[: after + 2]  # up to the next part's headers
                self._content_start = self._header_scan = self._scan = 0
        return True

    def _take_over(self) -> None:
        """The general reading goes on from the part the one pass stopped at: its delimiter
        line (as the one pass read it) and what came after it."""
        reader = MultipartReader(self._boundary, UNLIMITED)
        if self._opened:
            reader.push(self._delimiter[1:] + CRLF)
        reader.push(bytes(self._buffer))
        self._buffer = bytearray()
        self._reader, self._before = reader, self._parts

    def _general(self) -> None:
        """Read the parts the general reading completes into :attr:`answers` (an error stops
        the reading)."""
        assert self._reader is not None
        try:
            while True:
                try:
                    part = self._reader.next_part()
                except BatchError as error:  # it counts from the part it took over at
                    if error.part is not None:
                        error.at(error.part + self._before, error.member)
                    raise
                if part is None:
                    return
                self._parts += 1
                self.answers += _answers_in(part, self._parts, self._heads)
        except BatchError as error:
            self._error = error


def _answers_in(
    part: Part, index: int, heads: dict[bytes, ResponseHead] | None
) -> list[ReadAnswer]:
    """The answers part ``index`` of a batch answer holds: one, or a changeset's members
    (``heads``: the response heads read so far, see :func:`_plain_response`; None: each head
    read in full, as the general reading does)."""
    boundary = _answered_changeset(part, index)
    if boundary is None:
        content = part.content
        if heads is not None and type(content) is bytes:
            response = _plain_response(content, 0, len(content), index, heads)
        else:  # a large one, in the reader's buffer: read as it is, not copied to bytes
            response = parse_response(content, index)
        return [ReadAnswer(_answered_id(part), response, index, False)]
    answers: list[ReadAnswer] = []
    nested = MultipartReader(boundary, UNLIMITED, "the changeset answer")
    try:
        if isinstance(part.content, bytearray):
            nested.adopt(part.content)  # a large one: its buffer, not a copy of it
        else:
            nested.push(part.content)
        nested.end()
        member = 0
        while (inner := nested.next_part()) is not None:
            member += 1
            if _answered_changeset(inner, member) is not None:
                raise MalformedBatch(
                    "a changeset's answer cannot contain another changeset", part=member
                )
            response = parse_response(inner.content, member)
            answers.append(ReadAnswer(_answered_id(inner), response, index, True))
    except BatchError as error:
        raise error.inside(index) from None
    return answers


#: The part headers of an answer as this package's server writes it (and OData's, with the
#: binary coding): a part whose headers are exactly these lines holds one response.
_PLAIN_PART_HEADERS = re.compile(
    rb"Content-Type: application/http\r\n"
    rb"(?:Content-Transfer-Encoding: binary\r\n)?"
    rb"(?:Content-ID: ([^\x00\r\n \t](?:[^\x00\r\n]*[^\x00\r\n \t])?)\r\n)?"
    rb"\r\n"
)
#: Response heads one batch answer's reading remembers (:func:`_read_plain`): a bound on its
#: memory.
_KNOWN_HEADS = 256


def _read_plain(boundary: str, body: bytes) -> list[ReadAnswer] | None:
    """:func:`read_answers` in one pass, for the answer this package's server writes: no
    preamble, each part one response under :data:`_PLAIN_PART_HEADERS`, each delimiter line
    ending in CRLF. None for any other body, or one with an error: the general reader reads
    it then (a second pass at most), and says what is wrong where it says it.

    The answers are the general reader's, found with less work: a part's headers matched at
    once, its end searched once, and its response's head read once per batch (answers repeat
    their heads, as requests repeat theirs: :func:`~.fields.parse_fields`), the body sliced
    once. Every search stays within its part, so the work stays linear in the body.
    """
    delimiter = b"\n--" + boundary.encode("ascii")
    start = len(delimiter) + 1  # past the first delimiter line, which opens the body
    if not body.startswith(delimiter[1:] + CRLF):
        return None
    heads: dict[bytes, ResponseHead] = {}
    answers: list[ReadAnswer] = []
    index = 0
    try:
        while True:
            index += 1
            part_headers = _PLAIN_PART_HEADERS.match(body, start)
            if part_headers is None:
                return None
            content_start = part_headers.end()
            # The blank line's LF may begin the delimiter of an empty part.
            found = body.find(delimiter, content_start - 1)
            after = found + len(delimiter)
            closes = body.startswith(b"--", after)
            if found < 0 or not (closes or body.startswith(CRLF, after)):
                return None
            content_id = part_headers.group(1)
            answers.append(
                _plain_answer(
                    body, content_start, found, content_id=content_id, index=index, heads=heads
                )
            )
            if closes:
                return answers
            start = after + 2
    except MalformedBatch:
        return None


def _plain_answer(
    body: bytes,
    start: int,
    delimiter: int,
    *,
    content_id: bytes | None,
    index: int,
    heads: dict[bytes, ResponseHead],
) -> ReadAnswer:
    """The answer of part ``index``, whose content starts at ``start`` and ends where the
    delimiter found at ``delimiter`` begins (with the CR before it), under ``content_id``
    (as its part headers give it)."""
    end = delimiter - 1 if delimiter > start and body[delimiter - 1] == 0x0D else delimiter
    response = _plain_response(body, start, max(end, start), index, heads)
    answered = request_content_id(None if content_id is None else content_id.decode("latin-1"))
    return ReadAnswer(answered, response, index, False)


def _plain_response(
    body: bytes, start: int, end: int, index: int, heads: dict[bytes, ResponseHead]
) -> SubResponse:
    """The response in ``body[start:end]``, as :func:`~.http1.parse_response` reads it; a
    head ending in a blank line is looked up in ``heads`` by its bytes (and kept there)."""
    blank = BLANK_LINE.search(body, start, end)
    if blank is None or body[start] in CRLF:  # no head of its own, or one that parses apart
        return parse_response(body[start:end], index)
    body_start = blank.end()
    key = body[start:body_start]
    head = heads.get(key)
    if head is None:
        head = parse_response_head(key, index)[0]
        if len(heads) < _KNOWN_HEADS:
            heads[key] = head
    stop = end if head.length is None else min(end, body_start + head.length)
    return SubResponse(head.status, head.reason, head.headers, body[body_start:stop])


def _answered_changeset(part: Part, index: int) -> str | None:
    """The boundary of an answer's part that is a changeset's answer, or None. Any other
    part is read as an HTTP response, whatever its Content-Type says (as servers vary)."""
    content_type = part.header("Content-Type")
    if content_type is None or not content_type.lstrip().lower().startswith("multipart/"):
        return None
    return changeset_boundary(content_type, index)


def _answered_id(part: Part) -> str | None:
    return request_content_id(part.header("Content-ID"))


def read_responses(content_type: str | None, body: bytes) -> list[tuple[str | None, SubResponse]]:
    """A batch response body as (Content-ID of the request it answers, response) pairs (the
    members of a changeset's answer each one pair): :func:`read_answers`, without where each
    came."""
    return [(answer.content_id, answer.response) for answer in read_answers(content_type, body)]
