"""Atomic groups run all or nothing, alike on every front end (docs/atomic-groups.md).

A group's members run in order in one thread (Flask, WSGI) or one task (ASGI), between the
transaction hook's ``begin`` and its ``commit`` (every member succeeded) or ``rollback`` (a
member failed or raised, the deadline passed, the client left); a route without a hook
refuses groups unless told to run them without atomicity. The hook here is the ledger's
(:mod:`.ledger`): a store whose writes wait in the transaction a context variable names.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest

from .conftest import Server
from .ledger import NO_BEGIN, NO_COMMIT, Event
from .wire import connect, head, post

JSON = "application/json"


def request(request_id: str, url: str, group: str | None = None, **more: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"id": request_id, "method": "POST", "url": url, **more}
    if group is not None:
        item["atomicityGroup"] = group
    return item


def encoded(*items: dict[str, Any]) -> bytes:
    return json.dumps({"requests": list(items)}).encode()


def send(server: Server, route: str, *items: dict[str, Any]) -> list[dict[str, Any]]:
    """POST a JSON batch of ``items``; its responses."""
    answer = post(server.base, route, encoded(*items), JSON)
    assert answer.status == 200, answer.body[:500]
    responses: list[dict[str, Any]] = json.loads(answer.body)["responses"]
    return responses


def statuses(responses: list[dict[str, Any]]) -> list[int]:
    return [response["status"] for response in responses]


def calls(server: Server) -> list[tuple[str, str]]:
    return [(event.what, event.about) for event in server.api.ledger.events]


def places(events: list[Event]) -> set[tuple[int, int | None]]:
    return {(event.thread, event.task) for event in events}


def test_a_group_commits_once_every_member_succeeded(server: Server) -> None:
    responses = send(
        server,
        "/batch/tx",
        request("0", "/ok"),
        request("1", "/set?key=a&value=1", "g"),
        request("2", "/set?key=b&value=2", "g"),
    )
    assert statuses(responses) == [200, 200, 200]
    # Every member's answer names its group (OData JSON 4.01, section 19.6).
    assert [r.get("atomicityGroup") for r in responses] == [None, "g", "g"]
    assert calls(server) == [("begin", "g"), ("member", "a"), ("member", "b"), ("commit", "a,b")]
    assert server.api.ledger.committed == {"a": "1", "b": "2"}
    events = server.api.ledger.events
    # One thread (WSGI) or one task (ASGI): what begin set, the members and commit saw.
    assert len(places(events)) == 1
    assert len({event.transaction for event in events}) == 1
    assert events[0].transaction is not None
    task = events[0].task
    assert (task is None) == (server.name != "asgi")


def test_a_part_is_told_its_place_in_the_batch_and_in_its_group(server: Server) -> None:
    """``flask_batch.part_index`` (from 0, each member counted) and, for a group's member,
    ``flask_batch.member_index``, in the part's environ or scope (what /place answers)."""
    responses = send(
        server,
        "/batch/tx",
        request("0", "/place"),
        request("1", "/place", "g"),
        request("2", "/place", "g"),
        request("3", "/place", "g"),
        request("4", "/place"),
    )
    assert [response["body"] for response in responses] == [
        [0, None],
        [1, 0],
        [2, 1],
        [3, 2],
        [4, None],
    ]
    # A request of its own has no place, whatever headers it sends.
    forged = [("Flask-Batch.Part-Index", "7"), ("Flask_Batch.Member_Index", "7")]
    direct = post(server.base, "/place", b"", None, forged, method="GET")
    assert json.loads(direct.body) == [None, None]


@pytest.mark.parametrize(
    ("failing", "status"),
    [("/status?code=409", 409), ("/raise", 500)],
    ids=["a-failed-status", "an-exception"],
)
def test_a_member_that_fails_rolls_the_group_back(
    server: Server, failing: str, status: int
) -> None:
    responses = send(
        server,
        "/batch/tx",
        request("1", "/set?key=a", "g"),
        request("2", failing, "g"),
        request("3", "/set?key=b", "g"),
        request("4", "/set?key=c"),
    )
    assert statuses(responses) == [424, status, 424, 200]
    assert [r.get("atomicityGroup") for r in responses] == ["g", "g", "g", None]
    assert "ran, then was rolled back: member 2 of the group 'g'" in responses[0]["body"]["detail"]
    assert "was not run: member 2" in responses[2]["body"]["detail"]
    assert calls(server) == [("begin", "g"), ("member", "a"), ("rollback", ""), ("member", "c")]
    assert server.api.ledger.committed == {"c": "1"}  # the part after the group still ran


def test_the_deadline_passing_inside_a_group_rolls_it_back(server: Server) -> None:
    # The route's deadline is 0.5 s: the second member outlasts it, the third never starts.
    responses = send(
        server,
        "/batch/tx-deadline",
        request("1", "/set?key=a", "g"),
        request("2", "/slow?s=0.7", "g"),
        request("3", "/set?key=b", "g"),
    )
    assert statuses(responses) == [424, 424, 503]
    assert calls(server) == [("begin", "g"), ("member", "a"), ("rollback", "")]
    assert server.api.ledger.committed == {}


def test_a_client_that_leaves_inside_a_group_rolls_it_back(server: Server) -> None:
    data = encoded(
        request("1", "/set?key=a", "g"),
        request("2", "/slow?s=0.5", "g"),
        request("3", "/set?key=b", "g"),
    )
    fields = [("Content-Type", JSON), ("Content-Length", str(len(data)))]
    ledger = server.api.ledger
    with connect(server.base) as sock:
        sock.sendall(head(server.base, "POST", "/batch/tx", fields) + data)
        deadline = time.monotonic() + 10
        while ("member", "a") not in calls(server) and time.monotonic() < deadline:
            time.sleep(0.005)
        sock.shutdown(socket.SHUT_RDWR)  # gone while the second member runs
    assert ledger.wait_for("rollback"), calls(server)
    assert calls(server) == [("begin", "g"), ("member", "a"), ("rollback", "")]
    assert ledger.committed == {}


def test_groups_run_beside_each_other_on_a_parallel_route(server: Server) -> None:
    # Each group's first member waits for the other's: they can only meet running at once.
    responses = send(
        server,
        "/batch/tx-parallel",
        request("1", "/meet?name=m&n=2", "g1"),
        request("2", "/set?key=a", "g1"),
        request("3", "/meet?name=m&n=2", "g2"),
        request("4", "/set?key=b", "g2"),
        request("5", "/ok"),
    )
    assert statuses(responses) == [200] * 5
    ledger = server.api.ledger
    assert ledger.committed == {"a": "1", "b": "1"}
    begun = {event.about: event.transaction for event in ledger.events if event.what == "begin"}
    assert set(begun) == {"g1", "g2"}
    assert begun["g1"] != begun["g2"]
    for group, key in (("g1", "a"), ("g2", "b")):
        mine = [event for event in ledger.events if event.transaction == begun[group]]
        assert [event.what for event in mine] == ["begin", "member", "commit"]
        assert ("member", key) in [(event.what, event.about) for event in mine]
        assert len(places(mine)) == 1
    assert places([e for e in ledger.events if e.transaction == begun["g1"]]) != places(
        [e for e in ledger.events if e.transaction == begun["g2"]]
    )


def test_a_commit_that_fails_fails_every_member(server: Server) -> None:
    responses = send(
        server,
        "/batch/tx",
        request("1", "/set?key=a", "g"),
        request("2", f"/set?key={NO_COMMIT}", "g"),
    )
    assert statuses(responses) == [500, 500]
    for response in responses:
        assert (
            "could not be committed; none of its requests was applied"
            in (response["body"]["detail"])
        )
    assert server.api.ledger.committed == {}
    assert ("rollback", "") not in calls(server)  # commit or rollback: never both


def test_a_transaction_that_cannot_begin_runs_no_member(server: Server) -> None:
    responses = send(
        server,
        "/batch/tx",
        request("1", "/set?key=a", NO_BEGIN),
        request("2", "/set?key=b", NO_BEGIN),
        request("3", "/ok"),
    )
    assert statuses(responses) == [500, 500, 200]
    assert "could not be begun" in responses[0]["body"]["detail"]
    assert calls(server) == []
    assert server.ran == ["POST /ok"]


def test_a_dependency_on_a_group_waits_for_its_outcome(server: Server) -> None:
    committed = send(
        server,
        "/batch/tx",
        request("1", "/set?key=a", "g"),
        request("2", "/set?key=b", "g"),
        request("3", "/set?key=c", dependsOn=["g"]),
    )
    assert statuses(committed) == [200, 200, 200]
    server.api.ledger.clear()
    failed = send(
        server,
        "/batch/tx",
        request("1", "/status?code=400", "g"),
        request("2", "/set?key=b", "g"),
        request("3", "/set?key=c", dependsOn=["g"]),
    )
    assert statuses(failed) == [400, 424, 424]
    assert server.api.ledger.committed == {}


def test_a_member_refused_before_the_group_begins_begins_nothing(server: Server) -> None:
    responses = send(
        server,
        "/batch/tx",
        request("1", "/status?code=500"),
        request("2", "/set?key=a", "g"),
        request("3", "/set?key=b", "g", dependsOn=["1"]),
    )
    assert statuses(responses) == [500, 424, 424]
    assert "member 2 of the group 'g' answered 424" in responses[1]["body"]["detail"]
    assert calls(server) == []


def test_without_a_hook_a_batch_holding_a_group_is_refused(server: Server) -> None:
    document = server.refused(
        encoded(request("1", "/ok"), request("2", "/set?key=a", "g")),
        422,
        content_type=JSON,
    )
    assert document["title"] == "Atomic groups not supported"
    assert document["part"] == 2
    assert "transaction option" in document["detail"]
    assert "non_atomic_groups=True" in document["detail"]


def test_a_route_may_run_groups_in_order_without_atomicity(server: Server) -> None:
    responses = send(
        server,
        "/batch/in-order",
        request("1", "/set?key=a", "g"),
        request("2", "/status?code=409", "g"),
        request("3", "/set?key=b", "g"),
    )
    # Each member's own status: the first write was applied, and says so.
    assert statuses(responses) == [200, 409, 424]
    assert "was not run: member 2 of the group 'g' answered 409" in (responses[2]["body"]["detail"])
    assert server.api.ledger.committed == {"a": "1"}
    assert calls(server) == [("member", "a")]


def test_members_of_a_json_group_that_are_not_adjacent_are_refused(server: Server) -> None:
    data = encoded(
        request("1", "/set?key=a", "g"), request("2", "/ok"), request("3", "/set?key=b", "g")
    )
    document = server.refused(data, route="/batch/tx", content_type=JSON)
    assert document["part"] == 3
    assert "the members of the atomicity group 'g' are not adjacent" in document["detail"]
    assert calls(server) == []


def test_a_json_group_of_more_than_max_group_size_members_is_refused(server: Server) -> None:
    data = encoded(*(request(str(i), "/set?key=a", "g") for i in range(3)))
    document = server.refused(data, 413, route="/batch/tx-small", content_type=JSON)
    assert (document["limit"], document["value"], document["part"]) == ("max_group_size", 2, 3)
