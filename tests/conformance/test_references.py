"""References (``$<id>``) between the requests of a batch, alike on every front end
(docs/references.md).

A URL starting with ``$<id>`` goes where the earlier request's answer says (its
``Location``, else its own target), a JSON body's ``@odata.bind`` and ``@odata.id`` strings
become that entity's URL, and ``If-Match: $<id>`` the earlier answer's ``ETag``. A
reference is confined as any target is, within the service root (``/service/`` for the
batch at ``/service/$batch``); one that names no earlier request allowed to it refuses the
whole batch before anything runs. The service is :meth:`.api.Api.items`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from flask_batch.wire.model import Group, SubRequest, SubResponse

from .conftest import Server
from .wire import MULTIPART, Answer, multipart, post

ROUTE = "/service/$batch"
PARALLEL = "/service/$batch-parallel"
JSON = "application/json"
JSON_TYPE = (("Content-Type", JSON),)


def request(request_id: str, method: str, url: str, **more: Any) -> dict[str, Any]:
    """A request of a JSON batch."""
    return {"id": request_id, "method": method, "url": url, **more}


def order(body: Any) -> dict[str, Any]:
    """Request 2 of a JSON batch: ``body`` posted to /service/Orders, after request 1."""
    return request(
        "2", "POST", "/service/Orders", dependsOn=["1"], headers={"Content-Type": JSON}, body=body
    )


def send_json(server: Server, *items: dict[str, Any], route: str = ROUTE) -> Answer:
    return post(server.base, route, json.dumps({"requests": list(items)}).encode(), JSON)


def responses(answer: Answer) -> list[dict[str, Any]]:
    assert answer.status == 200, answer.body[:500]
    found: list[dict[str, Any]] = json.loads(answer.body)["responses"]
    return found


def statuses(found: list[dict[str, Any]]) -> list[int]:
    return [response["status"] for response in found]


def sub(
    method: str, target: str, content_id: str | None = None, body: bytes = b"", **more: Any
) -> SubRequest:
    headers = JSON_TYPE if body else ()
    return SubRequest(method, target, headers + more.pop("headers", ()), body, content_id, **more)


def changeset(*members: SubRequest, first: int = 0) -> list[SubRequest]:
    group = Group("changeset_refs", len(members), first)
    return [member._replace(group=group) for member in members]


def send_multipart(server: Server, *requests: SubRequest, route: str = ROUTE) -> Answer:
    return post(server.base, route, multipart(*requests), MULTIPART)


def seen(response: SubResponse) -> dict[str, Any]:
    """What the service saw (its answer to anything but creating an item)."""
    document: dict[str, Any] = json.loads(response.body)
    return document


def origin(server: Server) -> str:
    return f"http://{urlsplit(server.base).netloc}"


def ran_nothing_at_admin(server: Server) -> bool:
    return not any("/admin" in line for line in server.ran)


def test_members_of_a_changeset_refer_to_what_an_earlier_member_created(server: Server) -> None:
    answer = send_multipart(
        server,
        *changeset(
            sub("POST", "/service/Items?id=7", "1", b'{"name": "a"}'),
            sub("PATCH", "$1", "2", b'{"name": "b"}'),
            sub("POST", "$1/Parts?x=1", "3", b'{"Item@bind": "$1"}'),
        ),
    )
    ((_, members),) = answer.tree()
    assert isinstance(members, list)
    assert [response.status for _, response in members] == [201, 200, 200]  # type: ignore[union-attr]
    assert server.ran == [
        "POST /service/Items?id=7",
        "PATCH /service/Items(7)",
        "POST /service/Items(7)/Parts?x=1",
    ]
    third = seen(members[2][1])  # type: ignore[arg-type]
    assert json.loads(third["body"]) == {"Item@bind": f"{origin(server)}/service/Items(7)"}
    # One transaction: the members referring to each other ran in it, in order.
    ledger = server.api.ledger
    assert [event.what for event in ledger.events] == ["begin", *["member"] * 3, "commit"]
    assert len({event.transaction for event in ledger.events}) == 1
    assert set(ledger.committed) == {
        "POST /service/Items",
        "PATCH /service/Items(7)",
        "POST /service/Items(7)/Parts",
    }


@pytest.mark.parametrize(
    ("location", "path"),
    [
        ("relative", "/service/Items(7)/Parts"),  # Items(7), against /service/Items
        ("path", "/service/Items(7)/Parts"),
        ("absolute", "/service/Items(7)/Parts"),  # on this origin
        ("none", "/service/Items/Parts"),  # no Location: the request's own target
    ],
)
def test_a_reference_goes_where_the_location_says(server: Server, location: str, path: str) -> None:
    found = responses(
        send_json(
            server,
            request("1", "POST", f"/service/Items?id=7&location={location}"),
            request("2", "GET", "$1/Parts?deep=1", dependsOn=["1"]),
            request("3", "GET", "$2/More", dependsOn=["2"]),  # a reference to a reference
        )
    )
    assert statuses(found) == [201, 200, 200]
    assert (found[1]["body"]["path"], found[1]["body"]["query"]) == (path, "deep=1")
    assert found[2]["body"]["path"] == path + "/More"  # what 2 went to; its query dropped


def test_bind_and_id_strings_of_a_json_body_become_the_entitys_url(server: Server) -> None:
    body = {
        "Item@odata.bind": "$1",
        "Lines@odata.bind": ["$1/Parts", "Items(9)"],
        "Note": "$1 stays: not a bind",
        "Nested": {"@odata.id": "$1"},
    }
    found = responses(
        send_json(
            server,
            request("1", "POST", "/service/Items?id=7"),
            order(body),
        )
    )
    assert statuses(found) == [201, 200]
    entity = f"{origin(server)}/service/Items(7)"
    assert json.loads(found[1]["body"]["body"]) == {
        "Item@odata.bind": entity,
        "Lines@odata.bind": [f"{entity}/Parts", "Items(9)"],
        "Note": "$1 stays: not a bind",
        "Nested": {"@odata.id": entity},
    }


def test_if_match_refers_to_the_etag_an_earlier_part_answered(server: Server) -> None:
    # OData's own example: two parts outside any changeset, no dependency declared.
    answer = send_multipart(
        server,
        sub("GET", "/service/Items(5)", "1"),
        sub("PATCH", "/service/Items(5)", "2", b"{}", headers=(("If-Match", "$1"),)),
    )
    first, second = answer.parts()
    assert (first.status, second.status) == (200, 200)
    assert seen(second)["headers"]["if-match"] == '"seen"'


def test_a_reference_reads_an_answer_written_long_before(server: Server) -> None:
    # A written answer is let go (its status kept) unless a reference names it: 40 parts
    # between the two, more than the answers held back before one chunk goes out.
    between = [request(f"g{k}", "GET", f"/service/Items({k})") for k in range(40)]
    found = responses(
        send_json(
            server,
            request("1", "POST", "/service/Items?id=9"),
            *between,
            request("2", "GET", "$1", headers={"If-Match": "$1"}, dependsOn=["1"]),
        )
    )
    assert statuses(found) == [201] + [200] * 41
    assert found[-1]["body"]["path"] == "/service/Items(9)"
    assert found[-1]["body"]["headers"]["if-match"] == '"item-9"'


def test_if_none_match_refers_to_the_etag_of_a_created_entity(server: Server) -> None:
    found = responses(
        send_json(
            server,
            request("1", "POST", "/service/Items?id=7"),
            request("2", "GET", "$1", headers={"If-None-Match": "$1"}, dependsOn=["1"]),
        )
    )
    assert found[1]["body"]["headers"]["if-none-match"] == '"item-7"'


@pytest.mark.parametrize(
    ("location", "url", "says"),
    [
        ("relative", "$1/../../admin", "outside the service root /service/"),
        ("relative", "$1/%2e%2e/%2E%2E/admin", "outside the service root /service/"),
        ("relative", "$1/..%2F..%2Fadmin", "whose percent-encoding hides dot segments"),
        ("outside", "$1", "outside the service root /service/"),
        ("elsewhere", "$1/Parts", "is not on this batch's origin"),
    ],
    ids=["dot-segments", "encoded-dots", "encoded-slashes", "location-outside", "other-origin"],
)
def test_a_reference_that_leaves_the_service_is_a_400_for_that_request(
    server: Server, location: str, url: str, says: str
) -> None:
    found = responses(
        send_json(
            server,
            request("1", "POST", f"/service/Items?id=7&location={location}"),
            request("2", "GET", url, dependsOn=["1"]),
            request("3", "GET", "/service/Orders"),
        )
    )
    assert statuses(found) == [201, 400, 200]
    assert found[1]["body"]["title"] == "Invalid reference"
    assert says in found[1]["body"]["detail"]
    assert ran_nothing_at_admin(server)
    assert server.ran[1:] == ["GET /service/Orders"]


def test_a_changeset_whose_reference_escapes_rolls_back(server: Server) -> None:
    answer = send_multipart(
        server,
        *changeset(
            sub("POST", "/service/Items?id=7", "1", b"{}"),
            sub("DELETE", "$1/../../admin", "2"),
        ),
    )
    ((content_id, failure),) = answer.tree()
    assert content_id == "2"
    assert isinstance(failure, SubResponse)
    assert failure.status == 400
    assert server.api.ledger.committed == {}
    assert [event.what for event in server.api.ledger.events] == ["begin", "member", "rollback"]
    assert ran_nothing_at_admin(server)


def test_a_reference_to_a_request_that_failed_is_answered_424(server: Server) -> None:
    found = responses(
        send_json(
            server,
            request("1", "POST", "/status?code=409"),
            request("2", "PATCH", "$1", dependsOn=["1"]),
            request("3", "PATCH", "/service/Orders", headers={"If-Match": "$1"}),
        )
    )
    assert statuses(found) == [409, 424, 424]
    assert server.ran == ["POST /status?code=409"]


def test_members_of_a_json_group_refer_to_each_other(server: Server) -> None:
    found = responses(
        send_json(
            server,
            request("1", "POST", "/service/Items?id=7", atomicityGroup="g"),
            request("2", "PATCH", "$1", atomicityGroup="g"),  # its own group: no dependsOn
            request("3", "GET", "$1/Parts", dependsOn=["g"]),  # through the group
        )
    )
    assert statuses(found) == [201, 200, 200]
    assert [found[1]["body"]["path"], found[2]["body"]["path"]] == [
        "/service/Items(7)",
        "/service/Items(7)/Parts",
    ]
    assert set(server.api.ledger.committed) == {"POST /service/Items", "PATCH /service/Items(7)"}


def test_a_multipart_part_refers_across_changesets_through_depends_on(server: Server) -> None:
    answer = send_multipart(
        server,
        *changeset(sub("POST", "/service/Items?id=7", "1", b"{}")),
        sub("GET", "$1/Parts", "2", depends_on=("1",)),
    )
    created, parts = answer.parts()
    assert (created.status, parts.status) == (201, 200)
    assert seen(parts)["path"] == "/service/Items(7)/Parts"


def test_a_reference_makes_its_request_wait_on_a_parallel_route(server: Server) -> None:
    # No dependency declared: the ETag reference alone makes 2 wait for the slow 1.
    found = responses(
        send_json(
            server,
            request("1", "POST", "/service/Items?id=7&s=0.2"),
            request("2", "PATCH", "/service/Items(7)", headers={"If-Match": "$1"}),
            route=PARALLEL,
        )
    )
    assert statuses(found) == [201, 200]
    assert found[1]["body"]["headers"]["if-match"] == '"item-7"'


def json_batch(*items: dict[str, Any]) -> bytes:
    return json.dumps({"requests": list(items)}).encode()


@pytest.mark.parametrize(
    ("data", "content_type", "where", "says"),
    [
        (
            multipart(*changeset(sub("POST", "/service/Items", "1", b"{}"), sub("PATCH", "$9"))),
            MULTIPART,
            {"part": 1, "member": 2},
            "$9 refers to an unknown request '9'",
        ),
        (
            multipart(*changeset(sub("PATCH", "$2", "1"), sub("POST", "/service/Items", "2"))),
            MULTIPART,
            {"part": 1, "member": 1},
            "$2 refers to a later request",
        ),
        (
            multipart(sub("POST", "/service/Items", "1", b"{}"), sub("GET", "$1/Parts", "2")),
            MULTIPART,
            {"part": 2},
            "neither an earlier member of its own atomic group (changeset) nor a request it "
            "depends on",
        ),
        (
            multipart(sub("PATCH", "/service/Orders", "1", headers=(("If-Match", "$1"),))),
            MULTIPART,
            {"part": 1},
            "if-match: $1 refers to the request itself",
        ),
        (
            json_batch(request("1", "GET", "/ok"), request("2", "GET", "$3")),
            JSON,
            {"part": 2},
            "$3 refers to an unknown request '3'",
        ),
        (
            json_batch(request("1", "GET", "$2/x"), request("2", "POST", "/service/Items")),
            JSON,
            {"part": 1},
            "$2 refers to a later request",
        ),
        (
            json_batch(request("1", "POST", "/service/Items"), request("2", "PATCH", "$1")),
            JSON,
            {"part": 2},
            "name it in dependsOn",
        ),
        (
            json_batch(
                request("1", "POST", "/service/Items"),
                order({"I@odata.bind": "$7"}),
            ),
            JSON,
            {"part": 2},
            "$7 refers to an unknown request '7'",
        ),
    ],
    ids=[
        "multipart-unknown",
        "multipart-forward",
        "multipart-other-part",
        "etag-itself",
        "json-unknown",
        "json-forward",
        "json-no-dependency",
        "json-body-unknown",
    ],
)
def test_a_reference_to_no_earlier_request_refuses_the_batch_before_anything_runs(
    server: Server, data: bytes, content_type: str, where: dict[str, int], says: str
) -> None:
    document = server.refused(data, route=ROUTE, content_type=content_type)
    assert {key: document.get(key) for key in where} == where
    assert says in document["detail"]
    assert server.api.ledger.events == []


def test_a_json_url_that_spells_its_dollar_as_an_escape_is_a_reference(server: Server) -> None:
    """The JSON reader decodes ``\\u0024``: the URL is ``$1/Parts`` all the same (and the
    endpoint, which looks for references only in a batch holding a ``$`` or a ``\\``, looks)."""
    items = [
        request("1", "POST", "/service/Items?id=7"),
        request("2", "GET", "$1/Parts", dependsOn=["1"]),
    ]
    data = json.dumps({"requests": items}).replace('"$1/Parts"', '"\\u00241/Parts"')
    assert "$" not in data
    found = responses(post(server.base, ROUTE, data.encode(), JSON))
    assert statuses(found) == [201, 200]
    assert found[1]["body"]["path"] == "/service/Items(7)/Parts"


def test_a_system_resource_is_no_reference(server: Server) -> None:
    found = responses(send_json(server, request("metadata", "GET", "$metadata")))
    assert statuses(found) == [404]  # /service/$metadata, which this service has not
    assert server.ran == ["GET /service/$metadata"]


def test_a_header_names_the_etag_only_of_an_answer_that_has_one(server: Server) -> None:
    found = responses(
        send_json(
            server,
            request("1", "GET", "/ok"),  # answered without an ETag
            request("2", "PATCH", "/service/Orders", headers={"If-Match": "$1"}),
        )
    )
    assert statuses(found) == [200, 400]
    assert "which has none" in found[1]["body"]["detail"]
