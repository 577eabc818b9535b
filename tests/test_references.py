"""References between requests, found and checked before anything runs (the protocol core's
half: ``flask_batch.wire.references``; on real servers: tests/conformance/test_references.py).

Why: a reference is only safe to resolve if what it names was checked while nothing had run
(an unknown, later or unrelated request refuses the whole batch), if its resolved path can
never climb out by dot segments, and if a JSON body is read for references only where OData
puts them, in time linear in the body, and never taken apart when it is not JSON.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_batch.wire.errors import MalformedBatch
from flask_batch.wire.model import Group, SubRequest
from flask_batch.wire.references import (
    BODY,
    MAX_REFERENCES,
    URL,
    Reference,
    plan_references,
    remove_dot_segments,
    rewrite_body,
    url_reference,
)

from .properties import PROPERTY

JSON_TYPE = (("Content-Type", "application/json"),)


def req(
    target: str, content_id: str | None = None, body: bytes = b"", **more: object
) -> SubRequest:
    headers = JSON_TYPE if body else ()
    extra = more.pop("headers", ())
    assert isinstance(extra, tuple)
    return SubRequest("POST", target, headers + extra, body, content_id, **more)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("$1", ("1", "")),
        ("$1/Orders?x=1", ("1", "/Orders?x=1")),
        ("$new?x", ("new", "?x")),
        ("$a.b~c/d", ("a.b~c", "/d")),
        ("$metadata", None),  # OData's system resources (4.01 Part 1, 11.7.4)
        ("$batch", None),
        ("$crossjoin(Products,Sales)", None),
        ("$entity?$id=x", None),
        ("$", None),
        ("$/x", None),
        ("/service/$1", None),
        ("Items(1)", None),
    ],
)
def test_a_url_refers_by_its_first_segment(url: str, expected: tuple[str, str] | None) -> None:
    assert url_reference(url) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/b/c/./../../g", "/a/g"),  # RFC 3986, section 5.2.4
        ("/mid/content=5/../6", "/mid/6"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/..", "/"),
        ("/../../x", "/x"),
        ("/a//b/../c", "/a//c"),
        ("/s/Items(1)/%2e%2E/%2E/x", "/s/x"),  # the same segments, percent-encoded
        ("/s/a..b/.c/..d", "/s/a..b/.c/..d"),  # dots inside a segment are no dot segment
    ],
)
def test_dot_segments_are_removed(path: str, expected: str) -> None:
    assert remove_dot_segments(path) == expected


@PROPERTY
@given(st.lists(st.sampled_from(["a", ".", "..", "%2e", "%2E%2e", "", "b%2f"]), max_size=12))
def test_no_dot_segment_survives_and_removing_again_changes_nothing(
    segments: list[str],
) -> None:
    resolved = remove_dot_segments("/" + "/".join(segments))
    dots = resolved.lower().replace("%2e", ".")
    assert not re.search(r"/\.\.?(/|$)", dots)
    assert remove_dot_segments(resolved) == resolved


def test_a_plain_batch_is_decided_with_a_glance() -> None:
    assert plan_references([req("/a", "1"), req("$metadata", "2")], [(), ()]) is None


def test_references_become_dependencies() -> None:
    group = Group("cs", 2, 1)
    requests = [
        req("/service/Items", "0"),
        req("/service/Items", "1", group=group),
        req("$1/Parts", "2", group=group),  # the same changeset: no declaration needed
        req("/x", "3", headers=(("If-Match", " $0 "),)),  # an ETag: any earlier request
        req("$2", "4", depends_on=("cs",)),  # through its group
    ]
    dependencies = [(), (), (), (), (1, 2)]
    plan = plan_references(requests, dependencies)
    assert plan is not None
    waits, references = plan
    assert waits == [(), (), (1,), (0,), (1, 2)]
    assert references == [
        (),
        (),
        (Reference(URL, 1, "/Parts"),),
        (Reference("if-match", 0),),
        (Reference(URL, 2, ""),),
    ]


@pytest.mark.parametrize(
    ("requests", "dependencies", "part", "says"),
    [
        ([req("/a", "1"), req("$2")], [(), ()], 2, "$2 refers to an unknown request '2'"),
        ([req("$1", "1")], [()], 1, "$1 refers to the request itself"),
        ([req("$2", "1"), req("/a", "2")], [(), ()], 1, "$2 refers to a later request"),
        ([req("/a", "1"), req("$1")], [(), ()], 2, "nor a request it depends on"),
        (
            [req("/a", "1", group=Group("g", 1, 0)), req("$g")],
            [(), (0,)],
            2,
            "names the atomic group 'g', not a request",
        ),
        ([req("/a", "1"), req("/b", "1"), req("$1")], [(), (), ()], 2, "used twice"),
        (
            [req("/a", "1"), req("/b", headers=(("If-None-Match", "$x"),))],
            [(), ()],
            2,
            "if-none-match: $x refers to an unknown request 'x'",
        ),
    ],
    ids=["unknown", "itself", "later", "unrelated", "a-group", "ambiguous", "etag-unknown"],
)
def test_a_reference_to_no_allowed_request_refuses_the_batch(
    requests: list[SubRequest], dependencies: list[tuple[int, ...]], part: int, says: str
) -> None:
    with pytest.raises(MalformedBatch) as refused:
        plan_references(requests, dependencies)
    assert refused.value.status == 400
    assert refused.value.part == part
    assert says in refused.value.detail


def body_references(body: bytes, headers: tuple[tuple[str, str], ...] = JSON_TYPE) -> list[str]:
    """The strings of ``body`` planned as references (a request naming "1" first)."""
    request = SubRequest("POST", "/o", headers, body, "2", ("1",))
    plan = plan_references([req("/a", "1"), request], [(), (0,)])
    if plan is None:
        return []
    return [body[r.span[0] : r.span[1]].decode() for r in plan[1][1] if r.place == BODY]


def test_only_bind_and_id_members_of_a_json_body_hold_references() -> None:
    body = json.dumps(
        {
            "A@odata.bind": "$1",
            "B@bind": ["$1/x", "Items(2)", "$1?y"],
            "@odata.id": "$1",
            "C": {"@id": "$1", "D": ["$1"]},
            "E": "$1",
            "F@odata.bind": 5,
            "text": '"G@odata.bind": "$1"',  # inside a string: no member at all
            "H@odata.bindx": "$1",
        }
    ).encode()
    assert body_references(body) == ['"$1"', '"$1/x"', '"$1?y"', '"$1"', '"$1"']


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"A@odata.bind": "$1"', JSON_TYPE),  # not valid JSON: it goes unchanged
        (b'{"A@odata.bind": "$1"}', (("Content-Type", "text/plain"),)),
        (b'{"A@odata.bind": "$1"}', ()),
        (b'{"A\\u0040odata.bind": "$1"}', JSON_TYPE),  # a name spelt with escapes
        (b'{"A@odata.bind": "\\u00241"}', JSON_TYPE),  # a "$" spelt as an escape
    ],
)
def test_a_body_that_is_not_json_or_spells_otherwise_holds_none(
    body: bytes, headers: tuple[tuple[str, str], ...]
) -> None:
    assert body_references(body, headers) == []


def test_a_body_is_rewritten_in_one_pass() -> None:
    body = b'{"A@odata.bind": "$1", "B@bind": ["x", "$1/y"]}'
    first, second = body.index(b'"$1"'), body.index(b'"$1/y"')
    spans = [(first, first + 4), (second, second + 6)]
    rewritten = rewrite_body(bytearray(body), [(spans[0], "http://h/I(1)"), (spans[1], 'q"')])
    assert json.loads(rewritten) == {"A@odata.bind": "http://h/I(1)", "B@bind": ["x", 'q"']}


def test_a_body_of_near_misses_holds_none() -> None:
    near_misses = b"{" + b",".join(b'"x%d@odata.bin": "$1"' % i for i in range(2000)) + b"}"
    assert body_references(near_misses) == []


def test_a_request_holds_at_most_max_references() -> None:
    """Each reference costs a few microseconds and a hundred bytes while the batch is read:
    a bind array of a million of them (an 8 MiB body) would cost seconds and 150 MB."""
    most = b'{"A@odata.bind": [' + b",".join([b'"$1"'] * MAX_REFERENCES) + b"]}"
    assert len(body_references(most)) == MAX_REFERENCES
    too_many = b'{"A@odata.bind": [' + b",".join([b'"$1"'] * (MAX_REFERENCES + 1)) + b"]}"
    with pytest.raises(MalformedBatch, match=f"holds more than {MAX_REFERENCES} references"):
        body_references(too_many)
