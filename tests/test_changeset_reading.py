"""OData changesets in the multipart format, read: ``flask_batch.wire.multipart_requests``.

Why: a changeset is an atomic group, so what the reader makes of one decides what the
execution layer makes atomic. Its members must become requests that know their group (name,
size, first index) and keep their Content-IDs (optional, as V2 clients omit them); what
cannot be a changeset (a read, a changeset inside one, an empty one, too many members) is
refused before anything runs, naming the changeset's part and the member; every limit counts
members as it counts parts; and the result never depends on how the body was chunked.
"""

from __future__ import annotations

import pytest

from flask_batch.wire.errors import BatchError, LimitExceeded, MalformedBatch
from flask_batch.wire.model import KIB, Group, Limits, SubRequest
from flask_batch.wire.multipart_requests import RequestReader, read_requests

CONTENT_TYPE = "multipart/mixed; boundary=batch"
LIMITS = Limits()


def member(message: bytes, *headers: bytes) -> bytes:
    """One member of a changeset: its MIME headers, a blank line and its message."""
    return (
        b"Content-Type: application/http\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + (b"\r\n" + message)
    )


def changeset(*members: bytes, boundary: bytes = b"cs", headers: bytes = b"") -> bytes:
    """A changeset part: its Content-Type, then the members framed by ``boundary``."""
    dash = b"--" + boundary
    inner = b"".join(dash + b"\r\n" + m + b"\r\n" for m in members) + dash + b"--"
    return (
        b"Content-Type: multipart/mixed; boundary="
        + boundary
        + b"\r\n"
        + headers
        + (b"\r\n" + inner)
    )


def body(*parts: bytes) -> bytes:
    return b"".join(b"--batch\r\n" + part + b"\r\n" for part in parts) + b"--batch--\r\n"


def read(*parts: bytes, limits: Limits = LIMITS) -> list[SubRequest]:
    return read_requests(CONTENT_TYPE, [body(*parts)], limits)


GET = member(b"GET /a HTTP/1.1\r\n\r\n")
POST = b"POST /people HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
PATCH = b"PATCH /people/1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n"


def test_members_are_requests_that_know_their_group() -> None:
    requests = read(
        GET,
        changeset(member(POST, b"Content-ID: 1"), member(PATCH), boundary=b"changeset_7"),
        GET,
    )
    assert [(r.method, r.target, r.content_id) for r in requests] == [
        ("GET", "/a", None),
        ("POST", "/people", "1"),
        ("PATCH", "/people/1", None),  # V2 clients send no Content-ID: kept as None
        ("GET", "/a", None),
    ]
    group = Group("changeset_7", size=2, first=1)
    assert [r.group for r in requests] == [None, group, group, None]
    assert requests[1].group is requests[2].group  # one object: members know their group
    assert requests[1].body == b"{}"


def test_two_changesets_with_one_boundary_are_two_groups() -> None:
    requests = read(changeset(member(PATCH)), changeset(member(PATCH), member(PATCH)))
    assert [r.group for r in requests] == [
        Group("cs", 1, 0),
        Group("cs", 2, 1),
        Group("cs", 2, 1),
    ]


def test_the_changesets_depends_on_applies_to_every_member() -> None:
    requests = read(
        member(b"GET /a HTTP/1.1\r\n\r\n", b"Content-ID: a"),
        changeset(member(PATCH), member(PATCH, b"Depends-On: x"), headers=b"Depends-On: a\r\n"),
    )
    assert [r.depends_on for r in requests] == [(), ("a",), ("a", "x")]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_read_in_a_changeset_is_refused_naming_part_and_member(method: str) -> None:
    read_member = member(f"{method} /people/1 HTTP/1.1\r\n\r\n".encode())
    with pytest.raises(MalformedBatch) as info:
        read(GET, changeset(member(PATCH), read_member))
    error = info.value
    assert (error.part, error.member) == (2, 2)
    assert f"a changeset holds changes only: a {method} request goes outside it" in str(error)
    assert str(error).startswith("part 2, member 2: ")
    assert error.problem()["part"] == 2
    assert error.problem()["member"] == 2


def test_a_changeset_inside_a_changeset_is_refused() -> None:
    inner = changeset(member(PATCH), boundary=b"inner")
    with pytest.raises(MalformedBatch, match="cannot contain another changeset") as info:
        read(changeset(member(PATCH), inner, boundary=b"outer"))
    assert (info.value.part, info.value.member) == (1, 2)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"--cs--", "the changeset has no parts"),
        (b"", "the changeset body is empty"),
        (b"just a preamble", "never occurs"),
    ],
)
def test_an_empty_changeset_is_refused(content: bytes, says: str) -> None:
    part = b"Content-Type: multipart/mixed; boundary=cs\r\n\r\n" + content
    with pytest.raises(MalformedBatch, match=says) as info:
        read(GET, part)
    assert (info.value.part, info.value.member) == (2, None)


def test_a_changeset_without_a_boundary_is_refused() -> None:
    part = b"Content-Type: multipart/mixed\r\n\r\n--cs\r\n\r\n"
    with pytest.raises(MalformedBatch, match="no boundary") as info:
        read(part)
    assert info.value.part == 1


def test_max_group_size_bounds_the_members_of_a_changeset() -> None:
    limits = Limits(max_group_size=2)
    assert len(read(changeset(member(PATCH), member(PATCH)), limits=limits)) == 2
    with pytest.raises(LimitExceeded) as info:
        read(changeset(member(PATCH), member(PATCH), member(PATCH)), limits=limits)
    error = info.value
    assert (error.limit, error.value, error.part, error.member) == ("max_group_size", 2, 1, 3)
    assert error.status == 413
    assert "more than 2 requests" in error.detail


def test_members_count_toward_max_parts() -> None:
    limits = Limits(max_parts=3)
    assert len(read(GET, changeset(member(PATCH), member(PATCH)), limits=limits)) == 3
    with pytest.raises(LimitExceeded) as info:
        read(GET, changeset(member(PATCH), member(PATCH), member(PATCH)), limits=limits)
    assert (info.value.limit, info.value.part, info.value.member) == ("max_parts", 2, 3)
    with pytest.raises(LimitExceeded) as info:  # a part after a full changeset
        read(changeset(member(PATCH), member(PATCH), member(PATCH)), GET, limits=limits)
    assert (info.value.limit, info.value.part, info.value.member) == ("max_parts", 2, None)


def test_a_changeset_is_bounded_by_the_body_its_members_by_max_part_size() -> None:
    limits = Limits(max_part_size=200)
    small = member(b"PATCH /p HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + b"x" * 100)
    requests = read(changeset(small, small, small), limits=limits)  # ~550 bytes in all
    assert [len(r.body) for r in requests] == [100, 100, 100]
    large = member(b"PATCH /p HTTP/1.1\r\nContent-Length: 300\r\n\r\n" + b"x" * 300)
    with pytest.raises(LimitExceeded) as info:
        read(changeset(small, large), limits=limits)
    assert (info.value.limit, info.value.part, info.value.member) == ("max_part_size", 1, 2)


@pytest.mark.parametrize(
    ("limits", "limit"),
    [(Limits(max_headers=2), "max_headers"), (Limits(max_header_size=60), "max_header_size")],
)
def test_header_limits_apply_to_members(limits: Limits, limit: str) -> None:
    head = b"PATCH /p HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nX-Long: " + b"a" * 40
    crowded = member(head + b"\r\n\r\n")
    with pytest.raises(LimitExceeded) as info:
        read(changeset(member(PATCH), crowded), limits=limits)
    assert (info.value.limit, info.value.part, info.value.member) == (limit, 1, 2)


def test_a_malformed_member_names_part_and_member() -> None:
    with pytest.raises(MalformedBatch) as info:
        read(GET, GET, changeset(member(PATCH), member(b"PATCH /p HTTP/9.9\r\n\r\n")))
    assert (info.value.part, info.value.member) == (3, 2)
    assert "part 3, member 2: " in str(info.value)


def test_a_large_changeset_is_read_from_the_buffer_it_arrived_in() -> None:
    # A part of 64 KiB or more is handed over by the reader, not copied: so is a changeset.
    payload = b"x" * (80 * KIB)
    large = member(b"PATCH /p HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
    requests = read(changeset(large, member(PATCH)), GET)
    assert [len(r.body) for r in requests] == [len(payload), 0, 0]
    assert requests[0].body == payload
    assert requests[0].group == requests[1].group == Group("cs", 2, 0)


def test_the_result_does_not_depend_on_the_chunking() -> None:
    data = body(GET, changeset(member(POST, b"Content-ID: 1"), member(PATCH)), GET)
    whole = read_requests(CONTENT_TYPE, [data], LIMITS)
    for size in (1, 3, 17):
        reader = RequestReader("batch", LIMITS)
        for start in range(0, len(data), size):
            reader.feed(data[start : start + size])
        assert reader.close() == whole


def test_a_bare_lf_changeset_is_read() -> None:
    inner = b"--cs\nContent-Type: application/http\n\nPATCH /p HTTP/1.1\n\n\n--cs--\n"
    data = b"--batch\nContent-Type: multipart/mixed; boundary=cs\n\n" + inner + b"--batch--\n"
    (request,) = read_requests(CONTENT_TYPE, [data], LIMITS)
    assert (request.method, request.group) == ("PATCH", Group("cs", 1, 0))


def test_the_changesets_work_is_metered() -> None:
    data = body(changeset(*[member(PATCH)] * 50))
    plain = body(*[member(PATCH)] * 50)
    nested, flat = RequestReader("batch", LIMITS), RequestReader("batch", LIMITS)
    nested.feed(data)
    flat.feed(plain)
    assert len(nested.close()) == len(flat.close()) == 50
    # Read once as the batch's part, once as the changeset's members: about twice the work.
    assert flat.scanned < nested.scanned <= 3 * flat.scanned


def test_refusals_are_batch_errors_with_a_4xx_status() -> None:
    with pytest.raises(BatchError) as info:
        read(changeset())
    assert 400 <= info.value.status < 500
