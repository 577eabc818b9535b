"""The answers of atomic groups, written: ``ResponseWriter`` and ``JsonResponseWriter``.

Why: strict OData clients parse a changeset's answer as OData's reference servers write it
(ASP.NET Core OData's ODataMultipartMixedBatchWriter, Apache Olingo's
BatchResponseSerializer): one ``multipart/mixed`` part whose unquoted boundary is
``changesetresponse_<uuid>``, each member an ``application/http`` part with
``Content-Transfer-Encoding: binary`` and its ``Content-ID``, then the close delimiter; the
bytes are pinned here, the random part of the boundary aside. A member's answer that cannot
be framed must leave the changeset whole; JSON answers name each member's group.
"""

from __future__ import annotations

import email
import email.policy
import json
import re

import pytest

from flask_batch.wire.json_answers import JsonResponseWriter
from flask_batch.wire.model import Group, SubRequest, SubResponse
from flask_batch.wire.multipart_answers import ResponseWriter

GROUP = Group("changeset_1", 2, 1)
REQUESTS = [
    SubRequest("GET", "/a", (), b"", "<a>"),
    SubRequest("POST", "/p", (), b"{}", "1", group=GROUP),
    SubRequest("PATCH", "/p/1", (), b"{}", None, group=GROUP),
    SubRequest("GET", "/b", (), b""),
]
CREATED = SubResponse(201, "Created", (("Location", "/p/1"),), b"{}")
NO_CONTENT = SubResponse(204, "No Content", (), b"")
OK = SubResponse(200, "OK", (("Content-Type", "text/plain"),), b"ok")
ANSWERS = [OK, CREATED, NO_CONTENT, OK]
UUID = re.compile(
    rb"changesetresponse_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
)


def written(writer: ResponseWriter | JsonResponseWriter, answers: list[SubResponse]) -> bytes:
    parts = [
        writer.part(answer, request) for answer, request in zip(answers, REQUESTS, strict=True)
    ]
    return writer.start() + b"".join(parts) + writer.close()


def test_a_changeset_is_written_as_the_reference_servers_write_it() -> None:
    body = written(ResponseWriter("b"), ANSWERS)
    assert len(set(UUID.findall(body))) == 1
    assert UUID.sub(b"changesetresponse_X", body) == (
        b"--b\r\nContent-Type: application/http\r\nContent-ID: <response-a>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok\r\n"
        b"--b\r\nContent-Type: multipart/mixed; boundary=changesetresponse_X\r\n\r\n"
        b"--changesetresponse_X\r\nContent-Type: application/http\r\n"
        b"Content-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nLocation: /p/1\r\nContent-Length: 2\r\n\r\n{}\r\n"
        b"--changesetresponse_X\r\nContent-Type: application/http\r\n"
        b"Content-Transfer-Encoding: binary\r\n\r\n"
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n\r\n"
        b"--changesetresponse_X--\r\n"
        b"--b\r\nContent-Type: application/http\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok\r\n"
        b"--b--\r\n"
    )


def test_the_standard_librarys_parser_reads_the_nesting() -> None:
    body = written(ResponseWriter("b"), ANSWERS)
    message = email.message_from_bytes(
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + body, policy=email.policy.HTTP
    )
    outer = list(message.iter_parts())
    assert [part.get_content_type() for part in outer] == [
        "application/http",
        "multipart/mixed",
        "application/http",
    ]
    members = list(outer[1].iter_parts())
    assert [part["Content-ID"] for part in members] == ["1", None]
    assert str(members[1].get_payload()).startswith("HTTP/1.1 204 No Content")


def test_every_changeset_has_a_boundary_of_its_own() -> None:
    other = Group("changeset_1", 1, 1)  # the same name: another changeset all the same
    writer = ResponseWriter("b")
    first = writer.part(NO_CONTENT, REQUESTS[1]._replace(group=Group("changeset_1", 1, 0)))
    second = writer.part(NO_CONTENT, REQUESTS[1]._replace(group=other))
    assert UUID.findall(first)[0] != UUID.findall(second)[0]
    assert first.endswith(b"--\r\n")
    assert second.endswith(b"--\r\n")


def test_flat_members_are_parts_of_the_batch() -> None:
    writer = ResponseWriter("b", flat=True)
    body = written(writer, ANSWERS)
    assert b"changesetresponse" not in body
    assert body.count(b"--b\r\nContent-Type: application/http\r\n") == 4
    # A failed changeset is one part however members are laid out (the schedule writes it).
    assert writer.collapses_failed_groups
    assert ResponseWriter().collapses_failed_groups


def test_an_answer_that_cannot_be_framed_leaves_the_changeset_whole() -> None:
    writer = ResponseWriter("b")
    bad = SubResponse(201, "Created", (("X", "a\r\nX-Evil: 1"),), b"")
    with pytest.raises(ValueError, match="X"):
        writer.part(bad, REQUESTS[1])
    # The schedule writes its 500 instead (schedule.Schedule.write): one changeset still.
    invalid = SubResponse(500, "Internal Server Error", (), b"")
    body = writer.part(invalid, REQUESTS[1]) + writer.part(NO_CONTENT, REQUESTS[2])
    assert len(UUID.findall(body)) == 4  # its Content-Type, two delimiters, the close
    assert body.count(b"multipart/mixed") == 1


def test_json_answers_name_each_members_group() -> None:
    document = json.loads(written(JsonResponseWriter(), ANSWERS))
    assert [list(item)[:2] for item in document["responses"]] == [
        ["id", "status"],
        ["id", "atomicityGroup"],
        ["id", "atomicityGroup"],
        ["id", "status"],
    ]
    assert [item.get("atomicityGroup") for item in document["responses"]] == [
        None,
        "changeset_1",
        "changeset_1",
        None,
    ]
    assert not JsonResponseWriter().collapses_failed_groups
