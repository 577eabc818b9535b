"""JSON atomicity groups, read: ``flask_batch.wire.json_groups`` and the dependencies on them.

Why: OData JSON 4.01 (section 19.1) makes ``atomicityGroup`` the JSON form of a changeset. Its
members must be adjacent, so a group that is split is refused naming the request that splits
it, not silently cut in two; its size is bounded like a changeset's; its name may stand in
``dependsOn`` for every member, so it must not be a request's id too.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from flask_batch.wire.dependencies import dependency_indices
from flask_batch.wire.errors import LimitExceeded, MalformedBatch
from flask_batch.wire.json_requests import JsonRequestReader, encode_json_requests
from flask_batch.wire.model import Group, Limits, SubRequest

LIMITS = Limits()


def request(request_id: str, group: str | None = None, **more: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"id": request_id, "method": "post", "url": "/people"}
    if group is not None:
        item["atomicityGroup"] = group
    item.update(more)
    return item


def read(*items: dict[str, Any], limits: Limits = LIMITS) -> list[SubRequest]:
    reader = JsonRequestReader(limits)
    reader.feed(json.dumps({"requests": list(items)}).encode())
    return reader.close()


def test_adjacent_members_share_one_group() -> None:
    requests = read(request("0"), request("1", "g"), request("2", "g"), request("3"))
    group = Group("g", size=2, first=1)
    assert [r.group for r in requests] == [None, group, group, None]
    assert requests[1].group is requests[2].group


def test_two_groups_one_after_the_other() -> None:
    requests = read(request("1", "a"), request("2", "b"), request("3", "b"))
    assert [r.group for r in requests] == [Group("a", 1, 0), Group("b", 2, 1), Group("b", 2, 1)]


def test_members_that_are_not_adjacent_are_refused_naming_the_request() -> None:
    with pytest.raises(MalformedBatch) as info:
        read(request("1", "g"), request("2"), request("3", "g"))
    assert info.value.part == 3
    assert "the members of the atomicity group 'g' are not adjacent" in str(info.value)


def test_max_group_size_bounds_a_group() -> None:
    limits = Limits(max_group_size=2)
    assert len(read(request("1", "g"), request("2", "g"), request("3", "h"), limits=limits)) == 3
    with pytest.raises(LimitExceeded) as info:
        read(request("1", "g"), request("2", "g"), request("3", "g"), limits=limits)
    assert (info.value.limit, info.value.value, info.value.part) == ("max_group_size", 2, 3)


@pytest.mark.parametrize(
    "items",
    [
        [request("g"), request("1", "g")],  # the id first
        [request("1", "g"), request("g")],  # the group first
        [request("g", "g")],  # its own
    ],
)
def test_a_group_named_like_an_id_is_refused(items: list[dict[str, Any]]) -> None:
    with pytest.raises(MalformedBatch, match="could not tell them apart"):
        read(*items)


@pytest.mark.parametrize("value", [1, None, "", ["g"]])
def test_a_group_that_is_not_a_name_is_refused(value: object) -> None:
    with pytest.raises(MalformedBatch, match="atomicityGroup") as info:
        read(request("1"), request("2", atomicityGroup=value))
    assert info.value.part == 2


def test_depends_on_a_group_is_every_member() -> None:
    requests = read(
        request("0"),
        request("1", "g", dependsOn=["0"]),
        request("2", "g", dependsOn=["1"]),
        request("3", dependsOn=["g"]),
    )
    assert dependency_indices(requests) == [(), (0,), (1,), (1, 2)]


@pytest.mark.parametrize(
    ("items", "says"),
    [
        ([request("1", "g"), request("2", "g", dependsOn=["g"])], "depends on its own group"),
        ([request("1", dependsOn=["g"]), request("2", "g")], "which comes later"),
        ([request("1", "g", dependsOn=["2"]), request("2", "g")], "which comes later"),
    ],
)
def test_impossible_dependencies_on_groups_are_refused(
    items: list[dict[str, Any]], says: str
) -> None:
    with pytest.raises(MalformedBatch, match=says):
        dependency_indices(read(*items))


def test_a_changeset_may_be_named_by_its_boundary_in_depends_on() -> None:
    group = Group("cs", 2, 0)
    members = [SubRequest("PATCH", "/p", (), b"", None, (), None, group)] * 2
    after = SubRequest("GET", "/p", (), b"", None, ("cs",))
    assert dependency_indices([*members, after]) == [(), (), (0, 1)]


def test_the_group_travels_in_what_the_clients_write() -> None:
    group = Group("g", 2, 0)
    sent = [
        SubRequest("POST", "/p", (), b"", "1", (), None, group),
        SubRequest("POST", "/p", (), b"", "2", (), None, group),
    ]
    reader = JsonRequestReader(LIMITS)
    reader.feed(encode_json_requests(sent))
    assert reader.close() == sent


def test_the_specifications_example_is_read() -> None:
    # OData JSON Format 4.01, section 19.1, example 91 (content-type headers added to the
    # bodies, which the text requires and the example leaves out).
    example = {
        "requests": [
            {"id": "0", "method": "get", "url": "/service/Customers('ALFKI')"},
            {
                "id": "1",
                "atomicityGroup": "group1",
                "dependsOn": ["0"],
                "method": "patch",
                "url": "/service/Customers('ALFKI')",
                "headers": {"Prefer": "return=minimal", "content-type": "application/json"},
                "body": {"CompanyName": "Alfreds"},
            },
            {
                "id": "2",
                "atomicityGroup": "group1",
                "method": "post",
                "url": "/service/Customers",
                "headers": {"content-type": "application/json"},
                "body": {"CustomerID": "POIUY"},
            },
            {"id": "3", "dependsOn": ["group1"], "method": "get", "url": "/service/Products"},
        ]
    }
    reader = JsonRequestReader(LIMITS)
    reader.feed(json.dumps(example).encode())
    requests = reader.close()
    group = Group("group1", 2, 1)
    assert [(r.method, r.content_id, r.group) for r in requests] == [
        ("GET", "0", None),
        ("PATCH", "1", group),
        ("POST", "2", group),
        ("GET", "3", None),
    ]
    assert dependency_indices(requests) == [(), (0,), (), (1, 2)]
