"""References between the requests of a batch (OData's ``$<id>``): found and checked before
anything runs, and the pure pieces of their resolution.

A request names an earlier one by its id (multipart ``Content-ID``, JSON ``id``) after a
``$``:

- as the first segment of its URL (``$1/Orders``): the entity the earlier request created
  or returned (OData 4.01 Part 1, section 11.7.4; JSON Format 4.01, section 19.1);
- as a string in a JSON body's ``@odata.bind`` or ``@odata.id`` member (``@bind``, ``@id``
  in 4.01's short form): the same, inside the body (section 11.7.4, "referencing within
  request bodies");
- as the whole value of ``If-Match`` or ``If-None-Match``: the ETag of the earlier answer
  (section 11.7.5).

Where an entity reference (URL, body) may point: an earlier member of the request's own
atomic group (a changeset: Part 1, section 11.7.7.2), or an earlier request it depends on,
directly or through that request's group (JSON Format 4.01, section 19.1; a multipart
part's ``Depends-On`` is this package's extension). An ETag reference may name any earlier
request (section 11.7.7.3's example names one outside any changeset). Every reference makes
its request depend on the one it names, so it runs after it, and only once it answered
``2xx``. The first segment names no request when it is a system resource (``$metadata``,
``$batch``...: section 11.7.4); any other ``$<id>`` that names no earlier request allowed
to it refuses the whole batch (400), before anything runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import NamedTuple

from .dependencies import request_key, request_names
from .errors import MalformedBatch
from .json_bodies import body_media_type, is_json, json_value_span
from .jsontext import STRING, STRINGS_ARRAY
from .model import Headers, SubRequest, first_header

__all__ = [
    "BODY",
    "ETAG_HEADERS",
    "MAX_REFERENCES",
    "SYSTEM_RESOURCES",
    "URL",
    "Reference",
    "plan_references",
    "remove_dot_segments",
    "rewrite_body",
    "url_reference",
]

#: OData's top-level system resources: a first segment naming one is no reference (OData
#: 4.01 Part 1, section 11.7.4), whatever the ids of the batch.
SYSTEM_RESOURCES = frozenset(
    {"$batch", "$crossjoin", "$all", "$entity", "$root", "$id", "$metadata"}
)
#: The most references one request may hold (a JSON body's bind arrays can hold many): each
#: costs a few microseconds and a hundred bytes while the batch is read.
MAX_REFERENCES = 1000
#: The headers whose whole value may be a reference to an earlier answer's ETag (lower case).
ETAG_HEADERS = frozenset({"if-match", "if-none-match"})
#: Where a reference is: the request's URL, its JSON body, or a header (its lower-case name).
URL = "url"
BODY = "body"


class Reference(NamedTuple):
    """One ``$<id>`` of a request, checked: where it is and the request it names."""

    #: ``"url"``, ``"body"``, or the lower-case name of the header it is the value of.
    place: str
    #: The request it names (its index in the batch, from 0).
    earlier: int
    #: What follows ``$<id>`` in a URL or a body's string (``/Orders?x=1``), as written.
    rest: str = ""
    #: In a body: where the JSON string holding it starts and ends.
    span: tuple[int, int] = (-1, -1)


def url_reference(url: str) -> tuple[str, str] | None:
    """The id a URL refers to and what follows it (``$1/Orders?x`` is ``("1", "/Orders?x")``),
    or None: the URL is no reference (it does not start with ``$<id>``, or its first segment
    is a system resource)."""
    if not url.startswith("$"):
        return None
    end = len(url)
    for separator in "/?":
        found = url.find(separator)
        if 0 <= found < end:
            end = found
    name = url[1:end]
    if not name or url[:end].partition("(")[0] in SYSTEM_RESOURCES:
        return None
    return name, url[end:]


def plan_references(
    requests: Sequence[SubRequest], dependencies: Sequence[tuple[int, ...]]
) -> tuple[list[tuple[int, ...]], list[tuple[Reference, ...]]] | None:
    """The dependencies once every reference is one too, and each request's references,
    checked; None when no request has any (the common case, decided with a glance at each).

    Refuses (400, naming the request) a reference to an unknown id, to the request itself, to
    a later one or to a group, and an entity reference to an earlier request outside its
    group that it does not depend on.
    """
    found: dict[int, list[_Found]] = {}
    # By the identity of a headers tuple (the readers share one among the requests whose
    # header blocks are the same): whether it may hold an ETag reference.
    glanced: dict[int, bool] = {}
    for index, request in enumerate(requests):
        headers = request.headers
        etag = glanced.get(id(headers))
        if etag is None:
            etag = glanced[id(headers)] = _holds_dollar(headers)
        # (find: a memchr, where "in" takes the slower path of any buffer)
        if etag or request.target[:1] == "$" or request.body.find(b"$") >= 0:
            in_request = _found(request, index)
            if in_request:
                found[index] = in_request
    if not found:
        return None
    names = request_names(requests)
    plan: list[tuple[int, ...]] = []
    references: list[tuple[Reference, ...]] = []
    for index, waits in enumerate(dependencies):
        checked = tuple(
            _checked(requests, names, index, waits, each) for each in found.get(index, ())
        )
        references.append(checked)
        named = {reference.earlier for reference in checked} - set(waits)
        plan.append(tuple(sorted({*waits, *named})) if named else waits)
    return plan, references


def _holds_dollar(headers: Headers) -> bool:
    """Whether a header's value holds a ``$`` (a plain loop: a generator costs twice)."""
    for _, value in headers:  # noqa: SIM110
        if "$" in value:
            return True
    return False


#: A reference as found, before it is checked: where, the id, what follows, the body span.
_Found = tuple[str, str, str, tuple[int, int]]


def _found(request: SubRequest, index: int) -> list[_Found]:
    """The references of request ``index``, unchecked; refuses more than
    :data:`MAX_REFERENCES` (before reading further)."""
    found: list[_Found] = []
    if request.target.startswith("$") and (named := url_reference(request.target)):
        found.append((URL, named[0], named[1], (-1, -1)))
    for name, value in request.headers:
        if "$" in value and name.lower() in ETAG_HEADERS and value.strip().startswith("$"):
            found.append((name.lower(), value.strip()[1:], "", (-1, -1)))
    body = request.body
    if b'"$' in body and b"@" in body:
        in_body = _body_references(request)
        for name, rest, span in islice(in_body, MAX_REFERENCES):
            found.append((BODY, name, rest, span))
        if len(found) >= MAX_REFERENCES and next(in_body, None) is not None:
            raise MalformedBatch(
                f"the request holds more than {MAX_REFERENCES} references", part=index + 1
            )
    return found


def _checked(
    requests: Sequence[SubRequest],
    names: dict[str, range],
    index: int,
    waits: tuple[int, ...],
    found: _Found,
) -> Reference:
    """A reference of request ``index`` (which waits for ``waits``), checked: MalformedBatch
    unless it names an earlier request allowed to it."""
    place, name, rest, span = found
    shown = f"${name}" if place in (URL, BODY) else f"{place}: ${name}"
    named = names.get(request_key(name))
    if named is None:
        raise MalformedBatch(
            f"{shown} refers to an unknown request {name!r}: no request of the batch has that id",
            part=index + 1,
        )
    earlier = named.start
    if request_key(requests[earlier].content_id or "") != request_key(name):
        raise MalformedBatch(
            f"{shown} names the atomic group {name!r}, not a request", part=index + 1
        )
    if earlier >= index:
        where = "the request itself" if earlier == index else "a later request"
        raise MalformedBatch(
            f"{shown} refers to {where}: a reference names an earlier request", part=index + 1
        )
    if place in (URL, BODY):
        group = requests[index].group
        same_group = group is not None and requests[earlier].group == group
        if not same_group and earlier not in waits:
            raise MalformedBatch(
                f"{shown} refers to {name!r}, which is neither an earlier member of its own "
                "atomic group (changeset) nor a request it depends on: name it in dependsOn "
                "(multipart: Depends-On)",
                part=index + 1,
            )
    return Reference(place, earlier, rest, span)


# A JSON body's references: the strings starting with "$" that are the value of a member
# named "<property>@odata.bind" (or "@bind") or "@odata.id" (or "@id"), or the elements of
# an array that is. Found by one match per member from where the last one ended: strings
# are skipped whole (so nothing inside a string is ever taken for a member), the rest byte
# runs at a time, every quantifier possessive; so the work is linear in the body.
_NAME = (
    rb'"(?:(?:[^"\\@]++|@(?!(?:odata\.)?bind"))*+@(?:odata\.)?bind|@(?:odata\.)?id)"'
)  # fmt: skip
_VALUE = rb'"\$' + STRING[1:] + rb"|" + STRINGS_ARRAY
_MEMBER = _NAME + rb"[ \t\n\r]*+:[ \t\n\r]*+"
_NEXT_MEMBER = re.compile(
    rb'(?:[^"]++|(?!' + _MEMBER + rb"(?:" + _VALUE + rb"))" + STRING + rb")*+"
    + _MEMBER + rb"(?P<value>" + _VALUE + rb")"
)  # fmt: skip
_STRING = re.compile(STRING)


def _body_references(request: SubRequest) -> Iterator[tuple[str, str, tuple[int, int]]]:
    """The references in a JSON body (id, what follows it, the span of its string); none in
    a body that is not JSON or not valid JSON, which goes to the application unchanged."""
    content_type = first_header(request.headers, "content-type")
    body = request.body
    if not is_json(body_media_type(content_type)[0]) or json_value_span(body) is None:
        return
    position = 0
    while (member := _NEXT_MEMBER.match(body, position)) is not None:
        start, end = member.span("value")
        strings = iter([(start, end)]) if body[start] == ord('"') else _strings(body, start, end)
        for span in strings:
            string = bytes(body[span[0] : span[1]])
            value = json.loads(string) if b"\\" in string else string[1:-1].decode()
            named = url_reference(value)
            if named is not None:
                yield named[0], named[1], span
        position = member.end()


def _strings(body: bytes | bytearray, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The spans of an array's strings that start with ``$``, one at a time."""
    for found in _STRING.finditer(body, start, end):
        if body[found.start() + 1] == ord("$"):
            yield found.span()


def rewrite_body(body: bytes | bytearray, urls: Sequence[tuple[tuple[int, int], str]]) -> bytes:
    """``body`` with each string at a span replaced by its URL (as a JSON string), in one
    pass; ``urls`` in the order of their spans."""
    pieces: list[bytes] = []
    position = 0
    for (start, end), url in urls:
        pieces.append(bytes(body[position:start]))
        pieces.append(json.dumps(url).encode("ascii"))
        position = end
    pieces.append(bytes(body[position:]))
    return b"".join(pieces)


def remove_dot_segments(path: str) -> str:
    """An absolute path without its ``.`` and ``..`` segments (RFC 3986, section 5.2.4); a
    segment spelt with ``%2e`` counts as a dot (the same segment: section 6.2.2.2)."""
    segments = path.split("/")[1:]
    kept: list[str] = []
    last = len(segments) - 1
    for position, segment in enumerate(segments):
        dots = segment.replace("%2e", ".").replace("%2E", ".") if "%" in segment else segment
        if dots in (".", ".."):
            if dots == ".." and kept:
                kept.pop()
            if position == last:  # "/a/b/.." is "/a/": the last segment is an empty one
                kept.append("")
        else:
            kept.append(segment)
    return "/" + "/".join(kept)
