"""OData changesets in the multipart format, answered alike on every front end.

A changeset that succeeds is answered by one ``multipart/mixed`` part of its own (boundary
``changesetresponse_<uuid>``, unquoted, as OData's reference servers write it) holding one
``application/http`` part per member, in order, each echoing its Content-ID; a changeset that
fails by one ``application/http`` part in its place, carrying the failing member's answer
(OData 4.01 Part 1, section 11.7.7.3); a route may answer members flat, as SharePoint's client
reads them. The protocol's own example batch is read and answered as the specification shows.
"""

from __future__ import annotations

import re

import pytest

from flask_batch.wire.model import SubResponse, first_header

from .conftest import Server
from .ledger import NO_COMMIT
from .wire import Tree, post

BOUNDARY = "batch_36522ad7-fc75-4b56-8c71-56071383e77b"
CONTENT_TYPE = f"multipart/mixed; boundary={BOUNDARY}"
CHANGESET_TYPE = re.compile(
    rb"\r\nContent-Type: multipart/mixed; boundary=(changesetresponse_"
    rb"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})\r\n\r\n"
)


def message(method: str, target: str, body: bytes = b"", *headers: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def part(content: bytes, *headers: str, boundary: str = BOUNDARY) -> bytes:
    fields = "".join(f"{h}\r\n" for h in ("Content-Type: application/http", *headers))
    return f"--{boundary}\r\n{fields}\r\n".encode() + content + b"\r\n"


def changeset(*members: bytes, boundary: str = "changeset_77162fcd") -> bytes:
    inner = b"".join(members) + f"--{boundary}--".encode()
    return (
        f"--{BOUNDARY}\r\nContent-Type: multipart/mixed; boundary={boundary}\r\n\r\n".encode()
        + inner
        + b"\r\n"
    )


def member(content: bytes, content_id: str | None = None) -> bytes:
    headers = () if content_id is None else (f"Content-ID: {content_id}",)
    return part(content, *headers, boundary="changeset_77162fcd")


def batch(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def send(server: Server, route: str, data: bytes) -> Tree:
    answer = post(server.base, route, data, CONTENT_TYPE)
    return answer.tree()


def shape(tree: Tree) -> list[object]:
    """Each part's (Content-ID, status), a changeset's as a list."""
    return [
        shape(item) if isinstance(item, list) else (content_id, item.status)
        for content_id, item in tree
    ]


SET_A = member(message("POST", "/set?key=a"), "1")
SET_B = member(message("POST", "/set?key=b"), "3")
OK = part(message("GET", "/ok"))
INNER_CHANGESET = (
    b"--changeset_77162fcd\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n"
    + part(message("POST", "/ok"), boundary="inner")
    + b"--inner--\r\n"
)


def test_the_protocols_example_batch_is_answered_as_the_specification_shows(
    server: Server,
) -> None:
    # OData 4.01 Part 1, section 11.7.7.1: a query, a changeset (insert, update), a query;
    # the lengths filled in, the bodies JSON. Its answer is the example of 11.7.7.3.
    new_customer = b'{"CustomerID": "POIUY"}'
    changes = b'{"CompanyName": "Alfreds"}'
    example = batch(
        part(b"GET /service/Customers('ALFKI')\r\nHost: host\r\n\r\n"),
        changeset(
            member(
                message(
                    "POST",
                    "/service/Customers",
                    new_customer,
                    "Host: host",
                    "Content-Type: application/json",
                ),
                "1",
            ),
            member(
                message(
                    "PATCH",
                    "/service/Customers('ALFKI')",
                    changes,
                    "Host: host",
                    "Content-Type: application/json",
                    "If-Match: xxxxx",
                    "Prefer: return=minimal",
                ),
                "2",
            ),
        ),
        part(b"GET /service/Products HTTP/1.1\r\nHost: host\r\n\r\n"),
    )
    answer = post(server.base, "/batch/tx", example, CONTENT_TYPE, [("OData-Version", "4.0")])
    assert answer.status == 200
    assert answer.header("OData-Version") == "4.0"
    tree = answer.tree()
    assert shape(tree) == [(None, 200), [("1", 201), ("2", 204)], (None, 404)]
    created = tree[1][1]
    assert isinstance(created, list)
    response = created[0][1]
    assert isinstance(response, SubResponse)
    assert response.body == new_customer
    assert first_header(response.headers, "Location") == "http://host/service.svc/Customer('POIUY')"


def test_a_changeset_is_one_part_holding_its_members(server: Server) -> None:
    answer = post(server.base, "/batch/tx", batch(OK, changeset(SET_A, SET_B), OK), CONTENT_TYPE)
    assert shape(answer.tree()) == [(None, 200), [("1", 200), ("3", 200)], (None, 200)]
    assert server.api.ledger.committed == {"a": "1", "b": "1"}
    # As OData's reference servers write it: the boundary's name, unquoted; each member
    # with Content-Transfer-Encoding, its Content-ID among its part's headers.
    (boundary,) = CHANGESET_TYPE.findall(answer.body)
    member_head = b"--%s\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    assert answer.body.count(member_head % boundary + b"Content-ID: 1\r\n\r\nHTTP/1.1 200 ") == 1
    assert answer.body.count(b"--%s--\r\n--" % boundary) == 1


def test_members_without_content_id_are_answered_in_order(server: Server) -> None:
    data = batch(changeset(member(message("POST", "/set?key=a")), member(message("POST", "/ok"))))
    assert shape(send(server, "/batch/tx", data)) == [[(None, 200), (None, 200)]]


def test_a_failed_changeset_is_one_part_with_the_failing_members_answer(server: Server) -> None:
    failing = member(message("POST", "/status?code=409"), "2")
    tree = send(server, "/batch/tx", batch(OK, changeset(SET_A, failing, SET_B), OK))
    assert shape(tree) == [(None, 200), ("2", 409), (None, 200)]
    assert server.api.ledger.committed == {}
    assert server.ran == ["GET /ok", "POST /set?key=a", "POST /status?code=409", "GET /ok"]


def test_a_changeset_that_cannot_commit_is_one_500_part(server: Server) -> None:
    data = batch(changeset(SET_A, member(message("POST", f"/set?key={NO_COMMIT}"), "2")))
    ((content_id, response),) = send(server, "/batch/tx", data)
    assert content_id is None
    assert isinstance(response, SubResponse)
    assert response.status == 500
    assert b"could not be committed" in response.body


def test_a_route_may_answer_members_flat(server: Server) -> None:
    ok = send(server, "/batch/tx-flat", batch(changeset(SET_A, SET_B), OK))
    assert shape(ok) == [("1", 200), ("3", 200), (None, 200)]
    failing = member(message("POST", "/status?code=409"), "2")
    failed = send(server, "/batch/tx-flat", batch(changeset(SET_A, failing, SET_B), OK))
    assert shape(failed) == [("2", 409), (None, 200)]  # one part, as nested


def test_without_atomicity_every_member_answers_its_own_status(server: Server) -> None:
    failing = member(message("POST", "/status?code=409"), "2")
    tree = send(server, "/batch/in-order", batch(changeset(SET_A, failing, SET_B)))
    assert shape(tree) == [[("1", 200), ("2", 409), ("3", 424)]]
    assert server.api.ledger.committed == {"a": "1"}


# Refused before anything runs


@pytest.mark.parametrize(
    ("members", "says", "where"),
    [
        ((SET_A, member(message("GET", "/ok"))), "a GET request goes outside it", 2),
        ((SET_A, member(message("HEAD", "/ok"))), "a HEAD request goes outside it", 2),
        ((SET_A, INNER_CHANGESET), "cannot contain another changeset", 2),
        ((), "the changeset has no parts", None),
    ],
    ids=["get", "head", "nested", "empty"],
)
def test_what_a_changeset_cannot_hold_is_refused(
    server: Server, members: tuple[bytes, ...], says: str, where: int | None
) -> None:
    document = server.refused(
        batch(OK, changeset(*members)), route="/batch/tx", content_type=CONTENT_TYPE
    )
    assert says in document["detail"]
    assert document["part"] == 2
    assert document.get("member") == where


def test_a_changeset_of_more_than_max_group_size_members_is_refused(server: Server) -> None:
    data = batch(changeset(SET_A, SET_B, SET_A))  # the route's max_group_size is 2
    document = server.refused(data, 413, route="/batch/tx-small", content_type=CONTENT_TYPE)
    assert (document["limit"], document["value"]) == ("max_group_size", 2)
    assert (document["part"], document["member"]) == (1, 3)


def test_members_count_toward_max_parts(server: Server) -> None:
    data = batch(OK, changeset(SET_A, SET_B), OK, OK)  # five requests; max_parts is 4
    document = server.refused(data, 413, route="/batch/tx-small", content_type=CONTENT_TYPE)
    assert (document["limit"], document["part"]) == ("max_parts", 4)


def test_a_changeset_on_a_route_without_a_hook_is_refused_naming_its_part(
    server: Server,
) -> None:
    document = server.refused(
        batch(OK, OK, changeset(SET_A, SET_B)), 422, content_type=CONTENT_TYPE
    )
    assert document["part"] == 3
    assert "member" not in document
    assert "changeset_77162fcd" in document["detail"]
