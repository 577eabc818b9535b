"""The answers of a JSON batch, both ways: :class:`JsonResponseWriter` (the server) writes
``{"responses": [{"id", "status", "headers", "body"}]}`` one response at a time, in request
order, spelling header names in the route's dialect; :func:`read_json_responses` (the
clients) reads one from its raw bytes, a JSON body byte for byte as the server wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from .errors import MalformedBatch, reason_phrase
from .fields import encode_fields
from .http1 import check_status, kept_fields
from .json_bodies import (
    MEDIA_TYPE,
    body_media_type,
    body_to_string,
    dumps_compact,
    is_base64url_type,
    is_json,
    json_value_span,
    loads_read,
    loads_strict,
    string_to_body,
)
from .jsontext import (
    OPEN_ARRAY,
    OPEN_OBJECT,
    STRING,
    STRINGS_OBJECT,
    InvalidJson,
    JsonText,
    Member,
    Span,
)
from .model import Headers, SubRequest, SubResponse, first_header

__all__ = [
    "JSON_DIALECTS",
    "JsonDialect",
    "JsonResponseWriter",
    "canonical_name",
    "read_json_responses",
]

#: How a JSON answer spells header names and carries binary bodies: "graph" as Microsoft
#: Graph writes them and its clients expect them (``Content-Type``, padded standard base64),
#: "odata" as OData JSON Format 4.01 (section 19.5) requires (``content-type``, base64url).
JsonDialect = Literal["graph", "odata"]
JSON_DIALECTS: tuple[JsonDialect, ...] = ("graph", "odata")


class JsonResponseWriter:
    """Writes ``{"responses": [...]}`` one response at a time, so it can be streamed.

    ``dialect`` (:data:`JsonDialect`) decides how binary bodies are encoded and how header
    names are spelt, whatever case the application used: ASGI applications send them in
    lower case, and Microsoft Graph's JavaScript client looks for ``"Content-Type"``. Names
    differing only in case are one header: their values make one list, in order.
    """

    content_type = MEDIA_TYPE
    #: A failed group's members are answered each in turn (OData JSON 4.01 section 19.6).
    collapses_failed_groups = False
    #: Nothing is sent ahead: the JSON format is read whole.
    next_opening = b""

    def __init__(self, dialect: JsonDialect = "graph") -> None:
        if dialect not in JSON_DIALECTS:
            raise ValueError(f"dialect must be one of {JSON_DIALECTS}, not {dialect!r}")
        self._spell: Callable[[str], str] = canonical_name if dialect == "graph" else str.lower
        self._graph = dialect == "graph"
        self._written = 0
        self._blocks: dict[Headers, _Block] = {}  # the answers' header blocks, worked out

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
        text or binary one is encoded into a string. The header block is worked out once
        per distinct block of the batch (:class:`_Block`): parts answer alike."""
        status = response.status
        check_status(status)
        block = self._block(response.headers)
        body = response.body
        if request.method == "HEAD" or status == 304:  # no body; the length it stands for
            given = block.given_length
            length = given if given and given.isascii() and given.isdigit() else str(len(body))
            body = b""
        else:
            length = str(len(body))
        group = request.group  # every member's answer names its group (OData 19.6)
        head = b'{"id":%s%s,"status":%d,"headers":%s%s"}' % (
            _json_string(request.content_id),
            b"" if group is None else b',"atomicityGroup":' + _json_string(group.name),
            status,
            block.encoded,
            length.encode("ascii"),
        )
        separator = b"," if self._written else b""
        if not body:
            self._written += 1
            return separator + head + b"}", b"", b""
        span = json_value_span(body) if block.json_body else None
        if span is not None:
            as_written = body if span == (0, len(body)) else body[span[0] : span[1]]
            self._written += 1
            return separator + head + b',"body":', as_written, b"}"
        binary = block.binary_body
        # Graph's binary bodies are padded standard base64; its Python client decodes no
        # other (base64url's "-" and "_" it drops, silently).
        text, encoded = body_to_string(
            body, block.content_type, standard_base64=self._graph and binary
        )
        # A body that is not what its type says (a JSON type's that is not JSON): say so.
        marker = b',"bodyEncoding":"base64url"' if encoded and not binary else b""
        tail = b',"body":' + dumps_compact(text) + marker + b"}"
        self._written += 1
        return separator + head + tail, b"", b""

    def _block(self, headers: Headers) -> _Block:
        """What every part answered with ``headers`` shares, worked out once per distinct
        block (bounded, per batch as the multipart writer's: no answer's header values
        outlive their batch); ValueError for a field that could inject."""
        try:
            block = self._blocks.get(headers)
        except TypeError:  # a list of fields: not a key, worked out each time
            return _Block(headers, self._spell)
        if block is None:
            block = _Block(headers, self._spell)
            if len(self._blocks) < _KNOWN_BLOCKS:
                self._blocks[headers] = block
        return block

    def close(self) -> bytes:
        return b"]}"


class _Block:
    """A header block of the answers, as a JSON answer carries it: checked as on the wire
    (no CR, LF or NUL: :func:`~.fields.encode_fields`), hop-by-hop fields and Content-Length
    dropped, names spelt in the dialect, repeated names made one list (several Set-Cookie:
    nothing is lost), encoded up to where each part's own Content-Length goes last; and what
    decides how a body goes: its Content-Type."""

    __slots__ = ("binary_body", "content_type", "encoded", "given_length", "json_body")

    def __init__(self, headers: Headers, spell: Callable[[str], str]) -> None:
        fields, self.given_length = kept_fields(headers)
        encode_fields(tuple(fields))  # ValueError: a field that could inject
        spelt: dict[str, str | list[str]] = {}
        for name, value in fields:
            key = spell(name)
            previous = spelt.get(key)
            spelt[key] = value if previous is None else [*_as_list(previous), value]
        spelt[spell("Content-Length")] = ""  # each part's own, written in its place
        self.encoded = dumps_compact(spelt)[:-2]  # up to its value: ...,"Content-Length":"
        self.content_type = first_header(tuple(fields), "content-type")
        self.json_body = is_json(body_media_type(self.content_type)[0])
        self.binary_body = is_base64url_type(self.content_type)


#: Distinct header blocks a writer remembers (a block past them is worked out each time).
_KNOWN_BLOCKS = 64
#: An id that JSON carries as it is, between quotes: printable ASCII but '"' and "\\".
_PLAIN_STRING = re.compile(r"[ !#-\[\]-~]*+")


def _json_string(value: str | None) -> bytes:
    """``value`` as a JSON string (null for None), as :func:`dumps_compact` writes it."""
    if value is not None and _PLAIN_STRING.fullmatch(value):
        return b'"' + value.encode("ascii") + b'"'
    return dumps_compact(value)


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


def read_json_responses(body: bytes) -> list[tuple[str | None, SubResponse]]:
    """A JSON batch answer as (id of the request it answers, response) pairs.

    Read as the server reads a batch (:class:`~.jsontext.JsonText`): a JSON body is taken as
    the server wrote it, byte for byte, and nothing is built for it. Each body may nest as
    deep as a request's may (:data:`~.jsontext.MAX_DEPTH`), wherever it sits in the answer.
    """
    try:
        text = JsonText(body)
        start = text.space(text.start)
        if text.byte(start) != OPEN_OBJECT:
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
    if text.byte(start) != OPEN_ARRAY:
        raise TypeError('"responses" is not an array')
    answers = []
    # Header blocks of this answer's responses, checked; what each Content-Type says.
    checked: set[Headers] = set()
    json_types: dict[str | None, bool] = {}
    more, position = text.first_element(start)
    while more:
        read = _usual_response(text, position)
        if read is None:  # another shape: member by member
            members, end = _members(text, position)
            read = _decoded(text, members), end
        decoded, end = read
        answers.append(_response(text, decoded, checked, json_types))
        more, position = text.next_element(end)
    return answers, position


#: A response as this package's server, Microsoft Graph and OData services write one: "id",
#: its "atomicityGroup" if any, "status" (an integer), "headers" (an object of strings), in
#: this order, then the end of the object (group 4) or "body" (its value follows).
_USUAL_HEAD = re.compile(
    rb'\{[ \t\n\r]*+"id"[ \t\n\r]*+:[ \t\n\r]*+(' + STRING + rb")[ \t\n\r]*+"
    rb'(?:,[ \t\n\r]*+"atomicityGroup"[ \t\n\r]*+:[ \t\n\r]*+' + STRING + rb"[ \t\n\r]*+)?+"
    rb',[ \t\n\r]*+"status"[ \t\n\r]*+:[ \t\n\r]*+(-?+(?:0|[1-9][0-9]*+))[ \t\n\r]*+'
    rb',[ \t\n\r]*+"headers"[ \t\n\r]*+:[ \t\n\r]*+(' + STRINGS_OBJECT + rb")[ \t\n\r]*+"
    rb'(?:(\})|,[ \t\n\r]*+"body"[ \t\n\r]*+:[ \t\n\r]*+)'
)
#: After the body's value: its "bodyEncoding" if any (group 1), and the end of the object.
_USUAL_TAIL = re.compile(
    rb'[ \t\n\r]*+(?:,[ \t\n\r]*+"bodyEncoding"[ \t\n\r]*+:[ \t\n\r]*+(' + STRING + rb")"
    rb"[ \t\n\r]*+)?+\}"
)

#: What a response says, decoded: status, headers, id, where its body is, and whether it is
#: marked base64url.
_Decoded = tuple[Any, Any, Any, Span | None, bool]


def _usual_response(text: JsonText, start: int) -> tuple[_Decoded, int] | None:
    """The response at ``start`` read in two matches and the body's, if it has the usual
    shape (:data:`_USUAL_HEAD`), and where it ends; None for any other shape. What it
    decodes is what :func:`_decoded` decodes of the same members."""
    head = text.match(_USUAL_HEAD, start, charge_failure=False)
    if head is None:
        return None
    body: Span | None = None
    marked = False
    end = head.end()
    if head.start(4) < 0:  # a body follows
        try:
            body_end = text.value_end(end)
        except InvalidJson:
            return None  # refused as the members are read, with the reason where it fails
        tail = text.match(_USUAL_TAIL, body_end, charge_failure=False)
        if tail is None:
            return None
        body, end = (end, body_end), tail.end()
        marked = tail.start(1) >= 0 and text.text(tail.start(1) + 1, tail.end(1) - 1) == "base64url"
    headers = loads_read(text.raw(*head.span(3)))
    request_id = text.text(head.start(1) + 1, head.end(1) - 1)
    return (int(head.group(2)), headers, request_id, body, marked), end


def _members(text: JsonText, start: int) -> tuple[dict[bytes, Span], int]:
    """The members of the object at ``start`` (name -> where its value is; the last of a
    repeated name), and where the object ends."""
    if text.byte(start) != OPEN_OBJECT:
        raise TypeError("a response is not an object")
    members: dict[bytes, Span] = {}
    member = text.member(start, first=True)
    while isinstance(member, Member):
        members[member.name] = member.start, member.end
        member = text.member(member.end, first=False)
    return members, member


def _decoded(text: JsonText, members: dict[bytes, Span]) -> _Decoded:
    """What the response of ``members`` (:func:`_members`) says, decoded as ``json`` does:
    status, headers, id, where its body is, whether it is marked base64url."""

    def value(name: bytes, default: Any = None) -> Any:
        span = members.get(name)
        return default if span is None else loads_strict(text.raw(*span))

    body = members.get(b"body")
    marked = body is not None and value(b"bodyEncoding") == "base64url"
    return value(b"status"), value(b"headers", {}), value(b"id"), body, marked


def _response(
    text: JsonText,
    decoded: _Decoded,
    checked: set[Headers],
    json_types: dict[str | None, bool],
) -> tuple[str | None, SubResponse]:
    """One response of an answer, from what it says (:data:`_Decoded`); an error for
    anything HTTP could not have carried. ``checked``: the header blocks found sound so far
    in this answer, and ``json_types``: whether each Content-Type seen is JSON's (both filled
    in, bounded)."""
    status, headers, request_id, span, marked = decoded
    if type(status) is not int or not 100 <= status <= 999:
        raise TypeError(f"status {status!r} is not an HTTP status")
    if not isinstance(headers, dict):
        raise TypeError('"headers" is not an object')
    fields = [
        (name, item)
        for name, values in headers.items()
        for item in (values if isinstance(values, list) else [values])
    ]
    if not all(isinstance(item, str) for _, item in fields):
        raise TypeError("a header value is not a string")
    block = tuple(fields)
    if block not in checked:
        encode_fields(block)  # ValueError: a name or value HTTP cannot carry
        if len(checked) < _CHECKED_BLOCKS:
            checked.add(block)
    content_type = first_header(block, "content-type")
    body = b""
    if span is not None:
        # No content-type means application/json in OData (JSON Format 4.01, 19.3); an
        # untyped string stays base64url, as Microsoft Graph sends binary bodies.
        untyped_json = content_type is None and text.byte(span[0]) != _QUOTE
        json_type = json_types.get(content_type)
        if json_type is None:
            json_type = is_json(body_media_type(content_type)[0])
            if len(json_types) < _CHECKED_BLOCKS:
                json_types[content_type] = json_type
        if not marked and (untyped_json or json_type):
            body = text.raw(*span)  # the JSON text itself, as the server wrote it
        else:
            body = string_to_body(loads_strict(text.raw(*span)), None if marked else content_type)
        # The length is that of the body that arrived (a JSON body may be spaced otherwise).
        fields = [f for f in fields if f[0].lower() != "content-length"]
        fields.append(("Content-Length", str(len(body))))
    return (
        None if request_id is None else str(request_id),
        SubResponse(status, reason_phrase(status), tuple(fields), body),
    )


_QUOTE = ord('"')


def _as_list(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


#: Distinct header blocks one answer's reading remembers as checked (past them, each is
#: checked again): a bound on its memory.
_CHECKED_BLOCKS = 64
