"""Atomic groups on the wire, as clients write and read them (``flask_batch.wire``).

Why: a client's group is only atomic if the server reads it as one group, so the bytes a
client writes (a multipart changeset, JSON ``atomicityGroup`` members) are checked exactly
and read back with the server's own reader; and a client must read every shape a server
answers a group in, the OData specification's own examples first (OASIS OData Version 4.01
Part 1: Protocol, section 11.7.7.2; OData JSON Format Version 4.01, section 19.3), with
their placeholders filled in.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_batch.wire.errors import MalformedBatch
from flask_batch.wire.json_answers import read_json_responses
from flask_batch.wire.json_requests import JsonRequestReader, encode_json_requests
from flask_batch.wire.model import UNLIMITED, Group, Limits, SubRequest, SubResponse
from flask_batch.wire.multipart_answers import ReadAnswer, read_answers, read_responses
from flask_batch.wire.multipart_requests import encode_request, encode_requests, read_requests

from .properties import PROPERTY

GROUP = Group("changeset_77162fcd", 2, 1)
REQUESTS = [
    SubRequest("GET", "/service/Customers('ALFKI')", (("Host", "host"),), b"", "0"),
    SubRequest(
        "POST",
        "/service/Customers",
        (("Content-Type", "application/json"),),
        b'{"name":"Ada"}',
        "1",
        group=GROUP,
    ),
    SubRequest(
        "PATCH",
        "$1",
        (("Content-Type", "application/json"), ("If-Match", "xxxxx")),
        b"{}",
        "2",
        ("0",),
        group=GROUP,
    ),
]

#: What the client writes for REQUESTS: the members in one changeset part, as OData's
#: clients write them (Content-Transfer-Encoding: binary, a Content-ID each), a reference as
#: it was written, and the changeset's close delimiter right before the batch's next one.
MULTIPART = (
    b"--batch\r\n"
    b"Content-Type: application/http\r\n"
    b"Content-ID: 0\r\n"
    b"\r\n"
    b"GET /service/Customers('ALFKI') HTTP/1.1\r\n"
    b"Host: host\r\n"
    b"\r\n"
    b"\r\n"
    b"--batch\r\n"
    b"Content-Type: multipart/mixed; boundary=changeset_77162fcd\r\n"
    b"\r\n"
    b"--changeset_77162fcd\r\n"
    b"Content-Type: application/http\r\n"
    b"Content-Transfer-Encoding: binary\r\n"
    b"Content-ID: 1\r\n"
    b"\r\n"
    b"POST /service/Customers HTTP/1.1\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: 14\r\n"
    b"\r\n"
    b'{"name":"Ada"}\r\n'
    b"--changeset_77162fcd\r\n"
    b"Content-Type: application/http\r\n"
    b"Content-Transfer-Encoding: binary\r\n"
    b"Content-ID: 2\r\n"
    b"Depends-On: 0\r\n"
    b"\r\n"
    b"PATCH $1 HTTP/1.1\r\n"
    b"Content-Type: application/json\r\n"
    b"If-Match: xxxxx\r\n"
    b"Content-Length: 2\r\n"
    b"\r\n"
    b"{}\r\n"
    b"--changeset_77162fcd--\r\n"
    b"--batch--\r\n"
)


def test_a_group_is_written_as_one_changeset_part_exactly() -> None:
    assert encode_requests(REQUESTS, "batch") == MULTIPART


def test_the_members_bytes_joined_in_order_are_the_changeset_part() -> None:
    """The client sizes and re-sends each member on its own: the first carries the
    changeset's head, the last its close delimiter."""
    pieces = [
        encode_request(REQUESTS[0], "batch"),
        encode_request(REQUESTS[1], "batch", opens_group=True),
        encode_request(REQUESTS[2], "batch", closes_group=True),
    ]
    assert b"".join(pieces) + b"--batch--\r\n" == MULTIPART
    assert pieces[1].startswith(b"--batch\r\nContent-Type: multipart/mixed; boundary=")
    assert pieces[2].endswith(b"--changeset_77162fcd--\r\n")


@pytest.mark.parametrize("member", [False, True])
@pytest.mark.parametrize("field", ["content_id", "depends_on"])
def test_a_part_header_that_could_inject_a_line_is_refused(member: bool, field: str) -> None:
    # A part's MIME lines are written from constants, but its Content-ID and Depends-On are
    # the caller's: checked as every header is.
    value = "1\r\nX-Injected: yes"
    group = GROUP if member else None
    if field == "content_id":
        request = SubRequest("GET", "/x", (), b"", value, group=group)
    else:
        request = SubRequest("GET", "/x", (), b"", "1", depends_on=(value,), group=group)
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        encode_request(request, "batch", opens_group=member)


def test_the_server_reads_the_changeset_as_the_group_it_was() -> None:
    read = read_requests("multipart/mixed; boundary=batch", [MULTIPART], Limits())
    assert [(r.method, r.target, r.content_id, r.depends_on) for r in read] == [
        ("GET", "/service/Customers('ALFKI')", "0", ()),
        ("POST", "/service/Customers", "1", ()),
        ("PATCH", "$1", "2", ("0",)),
    ]
    assert read[0].group is None
    assert read[1].group == read[2].group == GROUP
    assert read[1].group is read[2].group


def test_json_members_say_their_group_and_the_server_reads_it() -> None:
    body = encode_json_requests(REQUESTS)
    document = json.loads(body)
    assert [r.get("atomicityGroup") for r in document["requests"]] == [
        None,
        "changeset_77162fcd",
        "changeset_77162fcd",
    ]
    assert document["requests"][2]["url"] == "$1"  # as written: the server resolves it
    reader = JsonRequestReader(Limits())
    reader.feed(body)
    read = reader.close()
    assert [r.group for r in read] == [None, GROUP, GROUP]


def _filled(example: str) -> bytes:
    """A specification example as bytes on the wire: CRLF line ends, each ``###`` length
    the real one (the length of the body the placeholder stands for)."""
    lines = example.strip("\n").split("\n")
    out, index = [], 0
    while index < len(lines):
        line = lines[index]
        if line == "Content-Length: ###":
            blank = lines.index("", index)
            body = lines[blank + 1]
            line = f"Content-Length: {len(body)}"
        out.append(line)
        index += 1
    return "\r\n".join(out).encode() + b"\r\n"


#: OData 4.01 Part 1, 11.7.7.2: the answer to its example batch (a query, a changeset of an
#: insert and an update, a second query) when all but the last query succeed. Its bodies are
#: placeholders ("<...>"), measured as they are; its closing delimiter ends in three dashes.
SPEC_ANSWER = """
--b_243234_25424_ef_892u748
Content-Type: application/http

HTTP/1.1 200 OK
Content-Type: application/json
Content-Length: ###

<JSON representation of the Customer entity with key ALFKI>
--b_243234_25424_ef_892u748
Content-Type: multipart/mixed; boundary=cs_12u7hdkin252452345eknd_383673037

--cs_12u7hdkin252452345eknd_383673037
Content-Type: application/http
Content-ID: 1

HTTP/1.1 201 Created
Content-Type: application/json
Location: http://host/service.svc/Customer('POIUY')
Content-Length: ###

<JSON representation of the new Customer entity>
--cs_12u7hdkin252452345eknd_383673037
Content-Type: application/http
Content-ID: 2

HTTP/1.1 204 No Content


--cs_12u7hdkin252452345eknd_383673037--
--b_243234_25424_ef_892u748
Content-Type: application/http

HTTP/1.1 404 Not Found
Content-Type: application/xml
Content-Length: ###

<Error message>
--b_243234_25424_ef_892u748---
"""
SPEC_TYPE = "multipart/mixed; boundary=b_243234_25424_ef_892u748"


def test_the_odata_specifications_answer_is_read_with_where_each_answer_came() -> None:
    answers = read_answers(SPEC_TYPE, _filled(SPEC_ANSWER))
    assert [(a.content_id, a.response.status, a.part, a.in_changeset) for a in answers] == [
        (None, 200, 1, False),
        ("1", 201, 2, True),
        ("2", 204, 2, True),
        (None, 404, 3, False),
    ]
    created = answers[1].response
    assert ("Location", "http://host/service.svc/Customer('POIUY')") in created.headers
    assert created.body == b"<JSON representation of the new Customer entity>"
    assert answers[3].response.body == b"<Error message>"
    assert read_responses(SPEC_TYPE, _filled(SPEC_ANSWER)) == [
        (a.content_id, a.response) for a in answers
    ]


#: The same batch, its changeset failed at the update: OData answers the changeset with one
#: application/http part, the failing request's answer, in its place.
FAILED_CHANGESET = """
--b_243234_25424_ef_892u748
Content-Type: application/http

HTTP/1.1 200 OK
Content-Type: application/json
Content-Length: ###

{"CustomerID": "ALFKI"}
--b_243234_25424_ef_892u748
Content-Type: application/http
Content-ID: 2

HTTP/1.1 412 Precondition Failed
Content-Type: application/json
Content-Length: ###

{"error": {"code": "412", "message": "the ETag does not match"}}
--b_243234_25424_ef_892u748--
"""


def test_a_failed_changesets_single_answer_is_read_where_the_changeset_was() -> None:
    answers = read_answers(SPEC_TYPE, _filled(FAILED_CHANGESET))
    assert [(a.content_id, a.response.status, a.part, a.in_changeset) for a in answers] == [
        (None, 200, 1, False),
        ("2", 412, 2, False),
    ]


def test_a_changeset_answer_echoes_request_ids_by_googles_rule() -> None:
    body = (
        b"--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n"
        b"--cs\r\nContent-Type: application/http\r\nContent-ID: <response-x+1>\r\n\r\n"
        b"HTTP/1.1 204 No Content\r\n\r\n\r\n"
        b"--cs--\r\n--b--\r\n"
    )
    (answer,) = read_answers("multipart/mixed; boundary=b", body)
    assert answer == ReadAnswer("<x+1>", SubResponse(204, "No Content", (), b""), 1, True)


@pytest.mark.parametrize(
    ("inner", "says"),
    [
        (
            b"--cs\r\nContent-Type: multipart/mixed; boundary=deeper\r\n\r\n--deeper--\r\n--cs--",
            "part 1, member 1: a changeset's answer cannot contain another changeset",
        ),
        (b"--cs\r\n\r\nnot HTTP\r\n--cs--", "part 1, member 1: invalid HTTP status line"),
        (
            b"--cs\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
            "part 1, member 1: the body ended inside the part",
        ),
    ],
)
def test_an_unreadable_changeset_answer_names_its_part_and_member(inner: bytes, says: str) -> None:
    body = b"--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n" + inner + b"\r\n--b--\r\n"
    with pytest.raises(MalformedBatch, match=f"^{says}"):
        read_answers("multipart/mixed; boundary=b", body)


#: OData JSON Format 4.01, 19.3: the answer to its example batch (a query, an atomicity group
#: of an update and an insert, a query depending on the group), all but the last succeeding;
#: bodies filled in where the example leaves placeholders.
JSON_SPEC_ANSWER = b"""{
  "responses": [
    {"id": "0", "status": 200, "body": {"CustomerID": "ALFKI"}},
    {"id": "1", "status": 204},
    {"id": "2", "status": 201,
     "headers": {"location": "http://host/service.svc/Customer('POIUY')"},
     "body": {"CustomerID": "POIUY"}},
    {"id": "3", "status": 404, "body": {"error": {"code": "404", "message": "no"}}}
  ]
}"""


def test_the_json_specifications_answer_is_read() -> None:
    read = read_json_responses(JSON_SPEC_ANSWER)
    assert [(request_id, r.status) for request_id, r in read] == [
        ("0", 200),
        ("1", 204),
        ("2", 201),
        ("3", 404),
    ]
    assert read[2][1].body == b'{"CustomerID": "POIUY"}'


def test_json_answers_that_say_their_group_are_read() -> None:
    """A failed group's members each say the group; the failing one has its own answer, the
    others 424 (OData JSON 4.01, 19.3)."""
    body = (
        b'{"responses":['
        b'{"id":"1","atomicityGroup":"g","status":424,"headers":{}},'
        b'{"id":"2","atomicityGroup":"g","status":409,'
        b'"headers":{"content-type":"text/plain"},"body":"taken"}'
        b"]}"
    )
    read = read_json_responses(body)
    assert [(request_id, r.status) for request_id, r in read] == [("1", 424), ("2", 409)]


MEMBER = st.builds(
    SubRequest,
    method=st.sampled_from(["POST", "PUT", "PATCH", "DELETE"]),
    target=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1),
    headers=st.just((("X-A", "1"),)),
    body=st.binary(max_size=100),
    content_id=st.one_of(st.none(), st.integers(0, 999).map(str)),
    depends_on=st.just(()),
    invalid_reason=st.none(),
    group=st.none(),
)


@PROPERTY
@given(
    units=st.lists(st.lists(MEMBER, min_size=1, max_size=4), min_size=1, max_size=5),
    grouped=st.lists(st.booleans(), min_size=5, max_size=5),
    size=st.integers(1, 300),
)
def test_groups_round_trip_through_the_servers_reader(
    units: list[list[SubRequest]], grouped: list[bool], size: int
) -> None:
    """Whatever the requests, groups and chunking, the server reads back each request and
    each group as written."""
    requests: list[SubRequest] = []
    for number, (unit, in_group) in enumerate(zip(units, grouped, strict=False)):
        if in_group:
            group = Group(f"changeset_{number}", len(unit), len(requests))
            requests += [member._replace(group=group) for member in unit]
        else:
            requests += unit
    body = encode_requests(requests, "round_trip")
    chunks = [body[start : start + size] for start in range(0, len(body), size)]
    read = read_requests("multipart/mixed; boundary=round_trip", chunks, UNLIMITED)
    assert [(r.method, r.target, r.body, r.content_id, r.group) for r in read] == [
        (r.method, r.target, r.body, r.content_id, r.group) for r in requests
    ]
