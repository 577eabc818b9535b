"""Dependencies between the parts of a batch, in both formats.

Why: a part that depends on others runs only after each of them answered 2xx; otherwise it is
answered ``424 Failed Dependency`` naming the failed dependency, without running, and the
failure propagates along chains. JSON says it with ``dependsOn`` (or ``depends_on``), multipart
with a ``Depends-On: <content-id>, ...`` part header. These tests count the view calls, so a
part that must not run is seen not to run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

from flask_batch.wire.model import SubRequest
from flask_batch.wire.multipart_answers import read_responses
from flask_batch.wire.multipart_requests import encode_requests

from .batching import BOUNDARY, header, post, problem
from .json_batching import item, responses_of, send
from .steps import Step, steps_app
from .tracking import Tracker

FORMATS = ["json", "multipart", "multipart-bare", "multipart-mixed"]

make_app = steps_app  # the app of the app fixture (tests/conftest.py)


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict[str, Any]
    content_type: str | None


def run_steps(client: FlaskClient, fmt: str, *steps: Step, **kwargs: Any) -> list[Outcome]:
    """Send ``steps`` as one batch in format ``fmt``; each answer, in order."""
    target = {
        step.name: f"/step/{step.name}" + (f"?{step.query}" if step.query else "") for step in steps
    }
    if fmt == "json":
        items = responses_of(
            send(
                client,
                {
                    "requests": [
                        item(step.name, "GET", target[step.name], dependsOn=list(step.deps))
                        for step in steps
                    ]
                },
                route="/batch",
                **kwargs,
            )
        )
        assert [entry["id"] for entry in items] == [step.name for step in steps]
        return [
            Outcome(entry["status"], entry.get("body") or {}, _json_type(entry)) for entry in items
        ]
    # The multipart spellings: <id> everywhere, bare ids everywhere, or <id> and bare mixed.
    content_id = (lambda n: n) if fmt == "multipart-bare" else (lambda n: f"<{n}>")
    dependency = (lambda n: f"<{n}>") if fmt == "multipart" else (lambda n: n)
    subs = [
        SubRequest(
            "GET",
            target[step.name],
            (),
            b"",
            content_id(step.name),
            tuple(dependency(name) for name in step.deps),
        )
        for step in steps
    ]
    answer = post(client, encode_requests(subs, BOUNDARY), **kwargs)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    parts = read_responses(answer.headers["Content-Type"], answer.get_data())
    assert [content for content, _ in parts] == [sub.content_id for sub in subs]
    return [
        Outcome(r.status, json.loads(r.body) if r.body else {}, header(r, "Content-Type"))
        for _, r in parts
    ]


def _json_type(entry: dict[str, Any]) -> str | None:
    return next((v for k, v in entry["headers"].items() if k.lower() == "content-type"), None)


def assert_failed_dependency(outcome: Outcome, names: str, not_names: tuple[str, ...] = ()) -> None:
    """A 424 problem document that names ``names`` (and none of ``not_names``)."""
    assert outcome.status == 424, outcome
    assert outcome.content_type == "application/problem+json"
    assert outcome.body["status"] == 424
    detail = outcome.body["detail"]
    assert names in detail, detail
    for other in not_names:
        assert other not in detail, detail


# --------------------------------------------------------------------------------------
# Chains, diamonds, propagation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_chain_runs_in_order(client: FlaskClient, calls: Tracker, fmt: str) -> None:
    outcomes = run_steps(
        client, fmt, Step("step-c0"), Step("step-c1", ("step-c0",)), Step("step-c2", ("step-c1",))
    )
    assert [o.status for o in outcomes] == [200, 200, 200]
    assert [o.body["name"] for o in outcomes] == ["step-c0", "step-c1", "step-c2"]
    assert calls.names == ["step-c0", "step-c1", "step-c2"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failure_propagates_through_a_chain(
    client: FlaskClient, calls: Tracker, fmt: str
) -> None:
    first, second, third = run_steps(
        client,
        fmt,
        Step("step-a", query="status=500"),
        Step("step-b", ("step-a",)),
        Step("step-c", ("step-b",)),
    )
    assert first.status == 500
    assert_failed_dependency(second, "step-a")
    assert_failed_dependency(third, "step-b", not_names=("step-a",))
    assert calls.names == ["step-a"]  # the dependent parts did not run


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_diamond_runs_the_join_after_both_branches(
    client: FlaskClient, calls: Tracker, fmt: str
) -> None:
    outcomes = run_steps(
        client,
        fmt,
        Step("root"),
        Step("left", ("root",)),
        Step("right", ("root",)),
        Step("join", ("left", "right")),
    )
    assert [o.status for o in outcomes] == [200] * 4
    assert calls.names[0] == "root"
    assert calls.names[-1] == "join"
    assert sorted(calls.names) == ["join", "left", "right", "root"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failed_branch_of_a_diamond_fails_the_join(
    client: FlaskClient, calls: Tracker, fmt: str
) -> None:
    root, left, right, join = run_steps(
        client,
        fmt,
        Step("root"),
        Step("left", ("root",), "status=409"),
        Step("right", ("root",)),
        Step("join", ("right", "left")),
    )
    assert (root.status, left.status, right.status) == (200, 409, 200)
    assert_failed_dependency(join, "left", not_names=("right",))
    assert sorted(calls.names) == ["left", "right", "root"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failed_root_fails_the_whole_diamond_but_not_independent_parts(
    client: FlaskClient, calls: Tracker, fmt: str
) -> None:
    outcomes = run_steps(
        client,
        fmt,
        Step("root", query="status=503"),
        Step("free-1"),
        Step("left", ("root",)),
        Step("right", ("root",)),
        Step("join", ("left", "right")),
        Step("free-2", ("free-1",)),
    )
    assert [o.status for o in outcomes] == [503, 200, 424, 424, 424, 200]
    assert_failed_dependency(outcomes[2], "root")
    assert_failed_dependency(outcomes[3], "root")
    assert_failed_dependency(outcomes[4], "left")  # the first failed dependency it lists
    assert calls.names == ["root", "free-1", "free-2"]


@pytest.mark.parametrize(
    ("query", "runs"),
    [
        ("status=200", True),
        ("status=201", True),
        ("status=204", True),
        ("status=299", True),
        ("status=302", False),  # only a 2xx lets a dependent part run
        ("status=304", False),
        ("status=400", False),
        ("status=404", False),
        ("status=424", False),
        ("status=500", False),
    ],
)
@pytest.mark.parametrize("fmt", ["json", "multipart"])
def test_only_a_2xx_dependency_lets_a_part_run(
    client: FlaskClient, calls: Tracker, fmt: str, query: str, runs: bool
) -> None:
    dependency, dependent = run_steps(
        client, fmt, Step("dependency", query=query), Step("dependent", ("dependency",))
    )
    assert dependency.status == int(query.removeprefix("status="))
    if runs:
        assert dependent.status == 200
        assert calls.names == ["dependency", "dependent"]
    else:
        assert_failed_dependency(dependent, "dependency")
        assert calls.names == ["dependency"]


@pytest.mark.parametrize("fmt", ["json", "multipart"])
def test_several_dependencies_all_must_succeed(
    client: FlaskClient, calls: Tracker, fmt: str
) -> None:
    outcomes = run_steps(
        client,
        fmt,
        Step("one"),
        Step("two", query="status=500"),
        Step("three"),
        Step("needs-one-three", ("one", "three")),
        Step("needs-all", ("one", "two", "three")),
    )
    assert [o.status for o in outcomes] == [200, 500, 200, 200, 424]
    assert_failed_dependency(outcomes[4], "two", not_names=("'one'", "'three'", "<one>"))
    assert "needs-all" not in calls.names


def test_json_depends_on_synonym(client: FlaskClient, calls: Tracker) -> None:
    answers = responses_of(
        send(
            client,
            {
                "requests": [
                    item("ok", "GET", "/step/ok"),
                    item("bad", "GET", "/step/bad?status=500"),
                    item("after-ok", "GET", "/step/after-ok", depends_on=["ok"]),
                    item("after-bad", "GET", "/step/after-bad", depends_on=["bad"]),
                ]
            },
            route="/batch",
        )
    )
    assert [a["status"] for a in answers] == [200, 500, 200, 424]
    assert [a["id"] for a in answers] == ["ok", "bad", "after-ok", "after-bad"]
    assert "bad" in answers[3]["body"]["detail"]
    assert calls.names == ["ok", "bad", "after-ok"]


def test_json_dependency_on_a_refused_part_is_424(client: FlaskClient, calls: Tracker) -> None:
    """A part answered 400 without running (a body with no Content-Type) fails its dependents."""
    answers = responses_of(
        send(
            client,
            {
                "requests": [
                    item("no-type", "POST", "/step/no-type", {"a": 1}),
                    item("after", "GET", "/step/after", dependsOn=["no-type"]),
                ]
            },
            route="/batch",
        )
    )
    assert [a["status"] for a in answers] == [400, 424]
    assert "no-type" in answers[1]["body"]["detail"]
    assert calls.names == []


def test_an_empty_dependency_list_is_no_dependency(client: FlaskClient, calls: Tracker) -> None:
    answers = responses_of(
        send(
            client,
            {
                "requests": [
                    item("a", "GET", "/step/a?status=500"),
                    item("b", "GET", "/step/b", dependsOn=[]),
                ]
            },
            route="/batch",
        )
    )
    assert [a["status"] for a in answers] == [500, 200]


# --------------------------------------------------------------------------------------
# Multipart: the Depends-On part header
# --------------------------------------------------------------------------------------


def raw_part(content_id: str | None, depends_on: str | None, target: str) -> bytes:
    head = "Content-Type: application/http\r\n"
    if content_id is not None:
        head += f"Content-ID: {content_id}\r\n"
    if depends_on is not None:
        head += f"Depends-On: {depends_on}\r\n"
    return f"--{BOUNDARY}\r\n{head}\r\nGET {target} HTTP/1.1\r\n\r\n".encode()


def raw_batch(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def multipart_statuses(
    client: FlaskClient, body: bytes
) -> list[tuple[str | None, int, bytes | bytearray]]:
    answer = post(client, body)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return [
        (content_id, r.status, r.body)
        for content_id, r in read_responses(answer.headers["Content-Type"], answer.get_data())
    ]


def test_depends_on_header_as_raw_bytes(client: FlaskClient, calls: Tracker) -> None:
    """Written by hand: several ids, spaces, angle brackets or bare, case of the header name."""
    body = raw_batch(
        raw_part("<a>", None, "/step/a"),
        raw_part("b", None, "/step/b?status=404"),
        raw_part("<c>", "<a>", "/step/c"),
        raw_part("<d>", " a ,c ", "/step/d"),
        raw_part("<e>", "<a>, <b>", "/step/e"),
        raw_part(None, "<d>", "/step/f"),
    ).replace(b"Depends-On: <a>, <b>", b"depends-on:<a>,<b>")
    answers = multipart_statuses(client, body)
    assert [(cid, status) for cid, status, _ in answers] == [
        ("<a>", 200),
        ("b", 404),
        ("<c>", 200),
        ("<d>", 200),
        ("<e>", 424),
        (None, 200),
    ]
    assert b"b" in json.loads(answers[4][2])["detail"].encode()
    assert calls.names == ["a", "b", "c", "d", "f"]


def test_duplicate_content_ids_are_fine_without_dependencies(
    client: FlaskClient, calls: Tracker
) -> None:
    body = raw_batch(
        raw_part("<same>", None, "/step/one"),
        raw_part("<same>", None, "/step/two"),
        raw_part("same", None, "/step/three"),
    )
    answers = multipart_statuses(client, body)
    assert [status for _, status, _ in answers] == [200, 200, 200]
    assert calls.names == ["one", "two", "three"]


@pytest.mark.parametrize(
    ("parts", "part", "mentions"),
    [
        pytest.param(
            [("<same>", None), ("<same>", None), ("<x>", "<same>")], 2, "same", id="duplicate"
        ),
        pytest.param(
            [("<same>", None), ("same", None), ("<x>", "same")], 2, "same", id="duplicate-bare"
        ),
        pytest.param([("<a>", None), ("<b>", "<nowhere>")], 2, "nowhere", id="unknown"),
        pytest.param([("<a>", "<b>"), ("<b>", None)], 1, "b", id="later"),
        pytest.param([("<a>", None), ("<b>", "<b>")], 2, "b", id="self"),
        pytest.param([("<a>", "<b>"), ("<b>", "<a>")], 1, "b", id="cycle"),
        pytest.param([(None, None), ("<b>", "<a>")], 2, "a", id="no-such-id"),
    ],
)
def test_an_invalid_multipart_dependency_refuses_the_batch(
    client: FlaskClient,
    calls: Tracker,
    parts: list[tuple[str | None, str | None]],
    part: int,
    mentions: str,
) -> None:
    body = raw_batch(
        *(raw_part(cid, deps, f"/step/p{i}") for i, (cid, deps) in enumerate(parts, 1))
    )
    answer = post(client, body)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    refusal = problem(answer)
    assert refusal["part"] == part
    assert mentions in refusal["detail"]
    assert calls.names == []


def test_the_multipart_answer_echoes_content_ids_with_dependencies(
    client: FlaskClient,
) -> None:
    answer = post(
        client,
        raw_batch(
            raw_part("<item1:x@example.com>", None, "/step/a"),
            raw_part("<item2>", "<item1:x@example.com>", "/step/b"),
        ),
    )
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("multipart/mixed")
    body = answer.get_data()
    assert b"Content-ID: <response-item1:x@example.com>\r\n" in body
    assert b"Content-ID: <response-item2>\r\n" in body
    assert b"Depends-On" not in body
