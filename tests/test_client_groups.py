"""Atomic groups in the clients' core (``flask_batch.client._core``): how a run sends them,
reads their answers, retries them and refuses them.

Why: a group is atomic only if it reaches the server whole: never split across batches,
retried whole or not at all, refused before sending when the endpoint is known to refuse it.
And each member must get what the server said for it, in every shape servers answer a group
in (nested, one part for a failed changeset with or without the failing member's id, flat,
JSON with 424s). The core is driven here without I/O, the scripted endpoint
(``tests/fake_batch.py``) standing in for the server.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from flask_batch.client import Retry
from flask_batch.client._core.formats import Format, JsonFormat, MultipartFormat
from flask_batch.client._core.limits import KnownLimits
from flask_batch.client._core.model import Answered, Failed, Lost, Reply, Result
from flask_batch.client._core.pending import BatchResponse
from flask_batch.client._core.queueing import Changeset, Queue, grouped
from flask_batch.client._core.run import Run
from flask_batch.wire.model import Group, Limits, SubRequest
from flask_batch.wire.multipart_requests import encode_requests, read_requests
from tests.fake_batch import BATCH_URL, LOSE, REFUSE, FakeEndpoint, status, too_large
from tests.fake_batch import Lost as Dropped

JSON_TYPE = (("Content-Type", "application/json"),)


def put(path: str) -> SubRequest:
    return SubRequest("PUT", path, JSON_TYPE, b"{}")


def post(path: str) -> SubRequest:
    return SubRequest("POST", path, JSON_TYPE, b"{}")


def group(*members: SubRequest, name: str = "changeset_g", first: int = 0) -> list[SubRequest]:
    one = Group(name, len(members), first)
    return [member._replace(group=one) for member in members]


def exchange(
    run: Run[None], endpoint: FakeEndpoint, answers: Sequence[Reply[None] | Lost] = ()
) -> list[Result[None]]:
    """Run ``run`` to its end against ``endpoint`` (``answers``: what the first batches get
    instead, in turn), without sleeping."""
    scripted = list(answers)
    while not run.done:
        batch = run.next_batch()
        if batch is None:
            run.pause()
            run.waited()
            continue
        if scripted:
            run.feed(batch, scripted.pop(0))
            continue
        try:
            code, headers, body = endpoint.answer(
                "POST", BATCH_URL, {"Content-Type": batch.content_type}, batch.body
            )
        except Dropped as dropped:
            run.feed(batch, Lost(ConnectionError(dropped.kind), dropped.kind == "refuse"))
            continue
        content_type = dict(headers).get("Content-Type")
        run.feed(batch, Reply(code, "", content_type, None, body, None))
    return run.results()


def statuses(results: list[Result[None]]) -> list[int | str]:
    return [r.response.status if isinstance(r, Answered) else r.reason for r in results]


def no_discovery(max_parts: int | None = None) -> KnownLimits:
    return KnownLimits(discover=False, max_parts=max_parts)


# -- sending ----------------------------------------------------------------------------------


def test_a_batch_carries_a_group_as_one_changeset_exactly() -> None:
    requests = [put("/a"), *group(post("/people"), put("/people/1"), first=1), put("/b")]
    run: Run[None] = Run(requests, limits=no_discovery())
    batch = run.next_batch()
    assert batch is not None
    boundary = batch.content_type.partition("boundary=")[2]
    ids = [r.content_id for r in read_requests(batch.content_type, [batch.body], Limits())]
    named = [request._replace(content_id=i) for request, i in zip(requests, ids, strict=True)]
    assert batch.body == encode_requests(named, boundary)
    assert b"Content-Type: multipart/mixed; boundary=changeset_g\r\n\r\n--changeset_g\r\n" in (
        batch.body
    )


def test_a_group_is_never_split_across_batches() -> None:
    endpoint = FakeEndpoint()
    requests = [put("/a"), put("/b"), *group(put("/c"), put("/d"), put("/e"), first=2)]
    requests += [put("/f")]
    results = exchange(Run(requests, limits=no_discovery(max_parts=3)), endpoint)
    assert endpoint.batches == [["PUT /a", "PUT /b"], ["PUT /c", "PUT /d", "PUT /e"], ["PUT /f"]]
    assert statuses(results) == [200] * 6
    assert all(member.group is not None for member in endpoint.parts[1])


@pytest.mark.parametrize("format", [MultipartFormat, JsonFormat])
def test_a_group_larger_than_the_known_max_parts_is_refused_unsent(format: type[Format]) -> None:
    endpoint = FakeEndpoint()
    requests = [*group(put("/a"), put("/b"), put("/c")), put("/d")]
    run: Run[None] = Run(requests, format=format, limits=no_discovery(max_parts=2))
    results = exchange(run, endpoint)
    assert endpoint.batches == [["PUT /d"]]
    reason = (
        "3 requests of an atomic group cannot be split, and the batch endpoint takes at most "
        "2 parts"
    )
    assert statuses(results) == [reason, reason, reason, 200]


def test_a_group_larger_than_the_discovered_max_group_size_is_refused_with_its_dependents() -> None:
    endpoint = FakeEndpoint()
    requests = [*group(put("/a"), put("/b"), put("/c")), put("/d"), put("/e")]
    limits = KnownLimits()
    limits.discovered({"max_group_size": 2})
    run: Run[None] = Run(requests, [(), (), (), (1,), ()], limits=limits)
    results = exchange(run, endpoint)
    assert endpoint.batches == [["PUT /e"]]
    reason = (
        "an atomic group of 3 requests cannot be split, and the batch endpoint takes at most "
        "2 requests in a group"
    )
    assert statuses(results) == [
        reason,
        "a request of its atomic group cannot be sent: " + reason,
        "a request of its atomic group cannot be sent: " + reason,
        "it depends on a request that cannot be sent",
        200,
    ]


def test_an_endpoint_that_says_it_takes_no_groups_is_not_sent_one() -> None:
    endpoint = FakeEndpoint()
    limits = KnownLimits()
    limits.discovered({"groups": "refused"})
    results = exchange(Run([*group(put("/a")), put("/b")], limits=limits), endpoint)
    assert endpoint.batches == [["PUT /b"]]
    assert statuses(results) == [
        "the batch endpoint takes no atomic groups (its description says so)",
        200,
    ]


def test_a_queue_holding_a_group_asks_the_endpoint_first() -> None:
    """Whether it takes groups at all (a route that takes none refuses the whole batch), and
    how large."""
    assert Run([put("/a"), *group(put("/b"), first=1)]).needs_discovery()
    assert not Run([put("/a"), put("/b")]).needs_discovery()
    assert not Run(group(put("/a")), limits=no_discovery()).needs_discovery()


def test_a_413_naming_max_group_size_fails_the_group_and_sends_the_rest_again() -> None:
    endpoint = FakeEndpoint(outcomes=[too_large("max_group_size", 2, part=2)])
    requests = [put("/a"), *group(put("/b"), put("/c"), put("/d"), first=1), put("/e")]
    results = exchange(Run(requests, limits=no_discovery()), endpoint)
    assert endpoint.batches[1] == ["PUT /a", "PUT /e"]
    why = "the atomic group exceeds the batch endpoint's max_group_size (2): it cannot be split"
    mates = f"a request of its atomic group cannot be sent: {why}"
    assert statuses(results) == [200, why, mates, mates, 200]


def test_a_413_naming_a_member_fails_its_whole_group() -> None:
    """Multipart counts a changeset as one part: the problem names the member inside it."""
    endpoint = FakeEndpoint(outcomes=[too_large("max_part_size", 99, part=2)])
    problem = json.loads(endpoint.outcomes[0].body)
    problem["member"] = 2
    problem_type = ("Content-Type", "application/problem+json")
    endpoint.outcomes[0] = status(413, problem_type, body=json.dumps(problem).encode())
    requests = [put("/a"), *group(put("/b"), put("/c"), first=1)]
    results = exchange(Run(requests, limits=no_discovery()), endpoint)
    why = "the request exceeds the batch endpoint's max_part_size (99): it cannot be sent"
    assert statuses(results) == [200, f"a request of its atomic group cannot be sent: {why}", why]
    assert endpoint.batches[1] == ["PUT /a"]


# -- reading the answers ------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["nested", "flat"])
def test_a_group_that_succeeded_gives_each_member_its_answer(layout: str) -> None:
    endpoint = FakeEndpoint(group_layout=layout)
    results = exchange(Run([put("/a"), *group(put("/b"), post("/c"), first=1)]), endpoint)
    assert statuses(results) == [200, 200, 200]
    assert [r.response.body for r in results if isinstance(r, Answered)] == [
        b'{"method": "PUT", "path": "/a"}',
        b'{"method": "PUT", "path": "/b"}',
        b'{"method": "POST", "path": "/c"}',
    ]


def test_a_failed_changeset_answered_by_one_part_names_the_member_that_failed() -> None:
    """OData: one application/http part, the failing member's, with its Content-ID. That
    member gets it; the others get a 424 the client writes, naming it."""
    endpoint = FakeEndpoint()
    endpoint.fail("/c", 409)
    results = exchange(Run([*group(put("/a"), post("/b"), post("/c"), post("/d"))]), endpoint)
    assert statuses(results) == [424, 424, 409, 424]
    failed = results[2]
    assert isinstance(failed, Answered)
    assert failed.response.body == b"no"
    written = results[0]
    assert isinstance(written, Answered)
    assert json.loads(written.response.body) == {
        "type": "about:blank",
        "title": "Failed dependency",
        "status": 424,
        "detail": "not applied: its atomic group failed, at POST /c (409 Scripted), and the "
        "server answered the whole group with that answer",
    }
    assert ("Content-Type", "application/problem+json") in written.response.headers


def test_a_failed_changesets_single_part_without_an_id_stands_for_every_member() -> None:
    endpoint = FakeEndpoint(group_layout="anonymous")
    endpoint.fail("/b", 409)
    results = exchange(Run([put("/x"), *group(put("/a"), put("/b"), first=1)]), endpoint)
    assert statuses(results) == [200, 409, 409]
    assert [r.response.body for r in results[1:] if isinstance(r, Answered)] == [b"no", b"no"]


def test_answers_without_ids_are_matched_by_the_shape_of_the_batch() -> None:
    """A server that echoes no Content-ID: a nested changeset answer, member by member; one
    part where a changeset was, for all its members."""
    endpoint = FakeEndpoint()
    endpoint.fail("/d", 409)
    second = group(put("/c"), put("/d"), name="changeset_h", first=3)
    run: Run[None] = Run([put("/x"), *group(put("/a"), put("/b"), first=1), *second])
    batch = run.next_batch()
    assert batch is not None
    code, headers, body = endpoint.answer(
        "POST", BATCH_URL, {"Content-Type": batch.content_type}, batch.body
    )
    lines = body.splitlines(keepends=True)
    body = b"".join(line for line in lines if not line.startswith(b"Content-ID:"))
    run.feed(batch, Reply(code, "", dict(headers)["Content-Type"], None, body, None))
    assert statuses(run.results()) == [200, 200, 200, 409, 409]


def test_a_flat_failed_group_gives_each_member_what_the_server_said() -> None:
    endpoint = FakeEndpoint(group_layout="flat")
    endpoint.fail("/b", 409)
    results = exchange(Run([*group(put("/a"), put("/b"), put("/c"))]), endpoint)
    assert statuses(results) == [424, 409, 424]


def test_json_groups_say_their_group_and_a_failed_one_answers_424() -> None:
    endpoint = FakeEndpoint()
    endpoint.fail("/b", 409)
    run: Run[None] = Run([put("/x"), *group(put("/a"), put("/b"), first=1)], format=JsonFormat)
    results = exchange(run, endpoint)
    groups = [r.group.name if r.group else None for r in endpoint.parts[0]]
    assert groups == [None, "changeset_g", "changeset_g"]
    assert statuses(results) == [200, 424, 409]


# -- retries ------------------------------------------------------------------------------------


def test_a_group_that_failed_with_503_is_sent_again_whole() -> None:
    endpoint = FakeEndpoint()
    endpoint.fail("/b", 503)
    run: Run[None] = Run([put("/x"), *group(put("/a"), put("/b"), put("/c"), first=1)])
    results = exchange(run, endpoint)
    members = ["PUT /a", "PUT /b", "PUT /c"]
    assert endpoint.batches == [["PUT /x", *members], members]
    assert statuses(results) == [200] * 4
    assert [r.attempts for r in results] == [1, 2, 2, 2]


def test_a_group_is_retried_only_if_every_members_method_may_be() -> None:
    """The 503 member is a PUT, but re-sending the group re-sends its POST too."""
    endpoint = FakeEndpoint()
    endpoint.fail("/b", 503)
    results = exchange(Run([*group(post("/a"), put("/b"))]), endpoint)
    assert len(endpoint.batches) == 1
    assert statuses(results) == [424, 503]
    opted_in = FakeEndpoint()
    opted_in.fail("/b", 503)
    run: Run[None] = Run([*group(post("/a"), put("/b"))], retry=Retry(methods=None))
    assert statuses(exchange(run, opted_in)) == [200, 200]
    assert len(opted_in.batches) == 2


def test_a_group_that_failed_for_good_is_not_retried() -> None:
    endpoint = FakeEndpoint()
    endpoint.fail("/a", 409)
    results = exchange(Run([*group(put("/a"), put("/b"))]), endpoint)
    assert len(endpoint.batches) == 1
    assert statuses(results) == [409, 424]


def test_a_group_depending_on_a_retried_request_goes_along() -> None:
    endpoint = FakeEndpoint(group_layout="flat")
    endpoint.fail("/x", 503)
    run: Run[None] = Run([put("/x"), *group(post("/a"), post("/b"), first=1)], [(), (0,), ()])
    results = exchange(run, endpoint)
    assert endpoint.batches == [["PUT /x", "POST /a", "POST /b"]] * 2
    assert statuses(results) == [200, 200, 200]


@pytest.mark.parametrize(("members", "sent"), [((put, put), 2), ((put, post), 1)])
def test_a_lost_batch_sends_a_group_again_only_if_every_member_may_be(
    members: tuple[object, object], sent: int
) -> None:
    endpoint = FakeEndpoint(outcomes=[LOSE])
    requests = group(*(make(f"/{i}") for i, make in enumerate(members)))  # type: ignore[operator]
    results = exchange(Run(requests), endpoint)
    assert len(endpoint.batches) == sent
    if sent == 1:
        assert all(isinstance(r, Failed) for r in results)
    else:
        assert statuses(results) == [200, 200]


# -- names: ids, dependencies on groups, references ----------------------------------------------


@pytest.mark.parametrize("format", [MultipartFormat, JsonFormat])
def test_depending_on_a_group_names_the_group(format: type[Format]) -> None:
    endpoint = FakeEndpoint()
    requests = [*group(put("/a"), put("/b")), put("/c")]
    run: Run[None] = Run(requests, [(), (), (0, 1)], format=format)
    exchange(run, endpoint)
    assert endpoint.parts[0][2].depends_on == ("changeset_g",)


def test_a_requests_own_id_is_kept_and_no_made_id_takes_it() -> None:
    endpoint = FakeEndpoint()
    requests = [put("/a"), put("/b")._replace(content_id="1"), post("$1/items")]
    exchange(Run(requests, format=JsonFormat), endpoint)
    assert [(r.content_id, r.target) for r in endpoint.parts[0]] == [
        ("1-1", "/a"),
        ("1", "/b"),
        ("3", "$1/items"),
    ]
    with pytest.raises(ValueError, match="two requests have the same content_id"):
        Run([put("/a")._replace(content_id="x"), put("/b")._replace(content_id="x")])


def test_a_changeset_holds_no_read_in_multipart_but_json_groups_hold_any() -> None:
    read = SubRequest("GET", "/a", (), b"")
    with pytest.raises(ValueError, match="a GET request cannot be in a changeset"):
        Run(group(read))
    Run(group(read), format=JsonFormat)


def test_members_must_be_adjacent() -> None:
    one = Group("changeset_g", 2, 0)
    with pytest.raises(ValueError, match="one after another"):
        Run([put("/a")._replace(group=one), put("/b"), put("/c")._replace(group=one)])


def test_queued_changesets_become_one_wire_group_each() -> None:
    first, second = Changeset(), Changeset()
    names = iter(["g1", "g2"])
    made = grouped(
        [put("/a"), put("/b"), put("/c"), put("/d")],
        [first, first, None, second],
        lambda: next(names),
    )
    g1, g2 = Group("g1", 2, 0), Group("g2", 1, 3)
    assert [r.group for r in made] == [g1, g1, None, g2]
    assert made[0].group is made[1].group


def test_a_group_is_never_retried_where_groups_run_in_order_without_atomicity() -> None:
    """There the writes before a failure stayed applied: sent again, they would be made
    twice."""
    endpoint = FakeEndpoint(group_layout="flat")
    endpoint.fail("/b", 503)
    limits = KnownLimits()
    limits.discovered({"groups": "in-order"})
    results = exchange(Run(group(put("/a"), put("/b")), limits=limits), endpoint)
    assert len(endpoint.batches) == 1
    assert statuses(results) == [424, 503]
    lost = FakeEndpoint(outcomes=[LOSE])
    exchange(Run(group(put("/a"), put("/b")), limits=limits), lost)
    assert len(lost.batches) == 1
    refused = FakeEndpoint(outcomes=[REFUSE])  # the connection: nothing of it ran
    exchange(Run(group(put("/a"), put("/b")), limits=limits), refused)
    assert len(refused.batches) == 2


def test_a_reference_is_a_dependency_on_the_request_it_names_outside_its_group() -> None:
    queue: Queue[str, BatchResponse] = Queue()
    queue.add("create", BatchResponse(), content_id="a")
    queue.add("other", BatchResponse(), content_id="b")
    assert queue.referenced("$a/orders?x=1", ()) == [0]
    assert queue.referenced("$b", [("If-Match", "$a"), ("if-none-match", " $b ")]) == [1, 0, 1]
    assert queue.referenced("$unknown/x", [("If-Match", '"etag"')]) == []  # the server says
    assert queue.referenced("$ab", ()) == []  # a reference names a whole id
    with queue.changeset():
        queue.add("member", BatchResponse(), content_id="m")
        assert queue.referenced("$m/x", [("If-Match", "$a")]) == [0]  # a group goes whole
