"""The error policy: continue on error (the default), or stop when the client prefers it.

Why: Google's batches run every part whatever the others return; OData and Graph clients may
send ``Prefer: continue-on-error=false`` (or ``odata.continue-on-error=false``) to stop
starting parts after the first one that answers >= 400. The parts not run are answered ``424``
saying they were skipped, so the answer still has exactly one response per request, and
``Preference-Applied`` says the preference was honoured. Also here: stop-on-error with parallel
workers, and the deadline with dependencies.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.datastructures import Headers

from flask_batch.wire.model import SubRequest
from flask_batch.wire.multipart_answers import read_responses
from flask_batch.wire.multipart_requests import encode_requests

from .batching import BOUNDARY, MULTIPART, post
from .batching import header as part_header
from .json_batching import item, responses_of, send
from .steps import Step, steps_app
from .tracking import Tracker

FORMATS = ["json", "multipart"]

make_app = steps_app  # the app of the app fixture (tests/conftest.py)


class Answered:
    """A batch answer: its own headers, and (status, body, headers) for each part."""

    def __init__(self, headers: Headers, parts: list[tuple[int, dict[str, Any], dict[str, str]]]):
        self.headers = headers
        self.parts = parts

    @property
    def statuses(self) -> list[int]:
        return [status for status, _, _ in self.parts]

    def detail(self, index: int) -> str:
        detail: str = self.parts[index][1]["detail"]
        return detail


def send_steps(
    client: FlaskClient, fmt: str, *steps: Step, prefer: str | list[str] | None = None
) -> Answered:
    headers: list[tuple[str, str]] = []
    for value in [prefer] if isinstance(prefer, str) else prefer or []:
        headers.append(("Prefer", value))
    targets = [f"/step/{s.name}" + (f"?{s.query}" if s.query else "") for s in steps]
    if fmt == "json":
        requests = [
            item(s.name, "GET", target, dependsOn=list(s.deps))
            for s, target in zip(steps, targets, strict=True)
        ]
        answer = client.post(
            "/batch",
            data=json.dumps({"requests": requests}),
            headers=[("Content-Type", "application/json"), *headers],
        )
        items = responses_of(answer)
        assert [entry["id"] for entry in items] == [s.name for s in steps]
        parts = [
            (
                entry["status"],
                entry.get("body") or {},
                {k.lower(): v for k, v in entry["headers"].items()},
            )
            for entry in items
        ]
        return Answered(answer.headers, parts)
    subs = [
        SubRequest("GET", target, (), b"", f"<{s.name}>", tuple(f"<{d}>" for d in s.deps))
        for s, target in zip(steps, targets, strict=True)
    ]
    answer = client.post(
        "/batch",
        data=encode_requests(subs, BOUNDARY),
        headers=[("Content-Type", MULTIPART), *headers],
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    pairs = read_responses(answer.headers["Content-Type"], answer.get_data())
    assert [content_id for content_id, _ in pairs] == [f"<{s.name}>" for s in steps]
    return Answered(
        answer.headers,
        [
            (r.status, json.loads(r.body) if r.body else {}, {k.lower(): v for k, v in r.headers})
            for _, r in pairs
        ],
    )


FIVE = (
    Step("p1"),
    Step("p2", query="status=404"),
    Step("p3"),
    Step("p4", query="status=500"),
    Step("p5"),
)


def assert_skipped(answered: Answered, index: int) -> None:
    status, body, headers = answered.parts[index]
    assert status == 424
    assert headers["content-type"] == "application/problem+json"
    assert body["status"] == 424
    assert "skip" in body["detail"].lower() or "skip" in body.get("title", "").lower(), body


def applied(answered: Answered) -> tuple[str, str | None] | None:
    """The Preference-Applied header as (name, value), or None."""
    values = answered.headers.getlist("Preference-Applied")
    if not values:
        return None
    assert len(values) == 1, values
    match = re.fullmatch(r"\s*([^=\s]+)\s*(?:=\s*\"?([^\"]*)\"?)?\s*", values[0])
    assert match is not None, values
    return match.group(1).lower(), None if match.group(2) is None else match.group(2).lower()


# --------------------------------------------------------------------------------------
# The default: every part runs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_by_default_every_part_runs(client: FlaskClient, calls: Tracker, fmt: str) -> None:
    answered = send_steps(client, fmt, *FIVE)
    assert answered.statuses == [200, 404, 200, 500, 200]
    assert calls.names == ["p1", "p2", "p3", "p4", "p5"]
    assert applied(answered) is None


# --------------------------------------------------------------------------------------
# continue-on-error=false: stop starting parts after the first >= 400
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefer", "name"),
    [
        ("continue-on-error=false", "continue-on-error"),
        ("odata.continue-on-error=false", "odata.continue-on-error"),
        ("Continue-On-Error=FALSE", "continue-on-error"),
        ('continue-on-error="false"', "continue-on-error"),
        ("continue-on-error = false", "continue-on-error"),
        ("respond-async, continue-on-error=false", "continue-on-error"),
        ("return=minimal; x=y, odata.continue-on-error=false; z", "odata.continue-on-error"),
        (["wait=10", "continue-on-error=false"], "continue-on-error"),  # two header lines
    ],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_stop_on_error(
    client: FlaskClient, calls: Tracker, fmt: str, prefer: str | list[str], name: str
) -> None:
    answered = send_steps(client, fmt, *FIVE, prefer=prefer)
    assert answered.statuses == [200, 404, 424, 424, 424]  # one answer for each request
    for index in (2, 3, 4):
        assert_skipped(answered, index)
    assert calls.names == ["p1", "p2"]
    assert applied(answered) == (name, "false")


@pytest.mark.parametrize(
    ("prefer", "name"),
    [
        ("continue-on-error=true", "continue-on-error"),
        ("continue-on-error", "continue-on-error"),
        ("continue-on-error=", "continue-on-error"),  # RFC 7240: an empty value is no value
        ("odata.continue-on-error", "odata.continue-on-error"),
        ("odata.continue-on-error=true", "odata.continue-on-error"),
        ("respond-async, odata.continue-on-error", "odata.continue-on-error"),
    ],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_continue_on_error_true_is_applied(
    client: FlaskClient, calls: Tracker, fmt: str, prefer: str, name: str
) -> None:
    answered = send_steps(client, fmt, *FIVE, prefer=prefer)
    assert answered.statuses == [200, 404, 200, 500, 200]
    assert len(calls.names) == 5
    preference = applied(answered)
    assert preference is not None
    assert preference[0] == name
    assert preference[1] in (None, "true")


@pytest.mark.parametrize(
    "prefer",
    [
        "return=minimal",
        "respond-async, wait=5",
        "continue-on-error=maybe",
        "x-continue-on-error=false",
        "odata.continue-on-errors=false",
        "handling=strict",
        "",
    ],
)
def test_unknown_preferences_are_ignored(client: FlaskClient, calls: Tracker, prefer: str) -> None:
    answered = send_steps(client, "json", *FIVE, prefer=prefer)
    assert answered.statuses == [200, 404, 200, 500, 200]
    assert len(calls.names) == 5
    assert applied(answered) is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_first_part_failing_skips_all_the_others(
    client: FlaskClient, calls: Tracker, fmt: str
) -> None:
    answered = send_steps(
        client, fmt, Step("p1", query="status=503"), Step("p2"), Step("p3"), prefer=STOP
    )
    assert answered.statuses == [503, 424, 424]
    assert calls.names == ["p1"]


STOP = "continue-on-error=false"


@pytest.mark.parametrize("fmt", FORMATS)
def test_redirects_and_successes_do_not_stop(client: FlaskClient, calls: Tracker, fmt: str) -> None:
    answered = send_steps(
        client,
        fmt,
        Step("p1", query="status=302"),
        Step("p2", query="status=204"),
        Step("p3", query="status=304"),
        Step("p4", query="status=399"),
        Step("p5"),
        prefer=STOP,
    )
    assert answered.statuses == [302, 204, 304, 399, 200]
    assert len(calls.names) == 5


def test_a_refused_part_stops_the_batch_too(client: FlaskClient, calls: Tracker) -> None:
    """A part answered 400 without running (a body with no Content-Type) is a failure."""
    answer = send(
        client,
        {
            "requests": [
                item("ok", "GET", "/step/ok"),
                item("no-type", "POST", "/step/no-type", "body"),
                item("after", "GET", "/step/after"),
            ]
        },
        route="/batch",
        headers={"Prefer": STOP},
    )
    ok, refused, after = responses_of(answer)
    assert (ok["status"], refused["status"], after["status"]) == (200, 400, 424)
    assert "skip" in (after["body"]["title"] + after["body"]["detail"]).lower()
    assert calls.names == ["ok"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_stop_on_error_with_dependencies(client: FlaskClient, calls: Tracker, fmt: str) -> None:
    answered = send_steps(
        client,
        fmt,
        Step("first", query="status=500"),
        Step("second", ("first",)),
        Step("third"),
        prefer=STOP,
    )
    assert answered.statuses == [500, 424, 424]
    assert "first" in answered.detail(1)  # failed dependency, named
    assert_skipped(answered, 2)
    assert calls.names == ["first"]


# --------------------------------------------------------------------------------------
# Stop-on-error with parallel workers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_parallel_stop_lets_running_parts_finish_and_starts_no_more(fmt: str) -> None:
    calls = Tracker()
    client = make_app(calls, max_workers=3).test_client()
    answered = send_steps(
        client,
        fmt,
        # `fails` fails once `after-quick` (started when `quick` is done) runs, and the two
        # others end well after it: the driver has seen the failure when a thread is free.
        Step("slow-1", query="until_ended=fails&sleep=0.2"),
        Step("fails", query="status=500&until_started=after-quick"),
        Step("quick"),
        Step("after-quick", query="until_ended=fails&sleep=0.2"),
        Step("waits-1"),
        Step("waits-2"),
        Step("waits-3", query="sleep=0.1"),
        prefer=STOP,
    )
    assert answered.statuses == [200, 500, 200, 200, 424, 424, 424]
    for index in (4, 5, 6):
        assert_skipped(answered, index)
    assert sorted(calls.names) == ["after-quick", "fails", "quick", "slow-1"]
    failed_at = calls.spans["fails"][1]
    # The parts already running finished (after the failure); none started after it.
    assert calls.spans["slow-1"][1] > failed_at
    assert calls.spans["after-quick"][1] > failed_at
    assert all(start < failed_at for start, _ in calls.spans.values())


def test_parallel_without_stop_runs_everything() -> None:
    calls = Tracker()
    client = make_app(calls, max_workers=3).test_client()
    answered = send_steps(
        client,
        "json",
        Step("a", query="sleep=0.05"),
        Step("b", query="status=500"),
        Step("c"),
        Step("d"),
    )
    assert answered.statuses == [200, 500, 200, 200]
    assert len(calls.names) == 4


# --------------------------------------------------------------------------------------
# The deadline still answers 503 with dependencies
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_deadline_with_dependencies(fmt: str) -> None:
    calls = Tracker()
    client = make_app(calls, deadline=0.15).test_client()
    answered = send_steps(
        client,
        fmt,
        Step("slow", query="sleep=0.25"),
        Step("needs-slow", ("slow",)),
        Step("needs-needs", ("needs-slow",)),
        Step("free"),
    )
    assert answered.statuses == [200, 503, 424, 503]
    for index in (1, 3):
        assert answered.parts[index][2]["retry-after"] == "1"
        assert answered.parts[index][2]["content-type"] == "application/problem+json"
    assert "needs-slow" in answered.detail(2)
    assert calls.names == ["slow"]


def test_deadline_with_dependencies_in_parallel() -> None:
    calls = Tracker()
    client = make_app(calls, deadline=0.15, max_workers=2).test_client()
    answered = send_steps(
        client,
        "json",
        Step("slow", query="sleep=0.3"),
        Step("needs-slow", ("slow",)),
        Step("quick"),
        Step("needs-quick", ("quick",)),
    )
    assert answered.statuses == [200, 503, 200, 200]
    assert sorted(calls.names) == ["needs-quick", "quick", "slow"]


def test_the_deadline_holds_for_parts_waiting_for_the_shared_pool() -> None:
    """The pool is shared by every batch of the endpoint: a part of one batch may wait for a
    thread while another batch's parts run. A part that only gets a thread after its batch's
    deadline has not started by then, so it is answered 503 instead of running late."""
    calls = Tracker()
    app = make_app(calls, deadline=0.2, max_workers=2)
    first: list[Answered] = []
    busy = threading.Thread(
        target=lambda: first.append(
            send_steps(
                app.test_client(),
                "json",
                Step("a1", query="sleep=0.5"),
                Step("a2", query="sleep=0.5"),
            )
        )
    )
    busy.start()
    give_up = time.monotonic() + 5
    while len(calls.names) < 2 and time.monotonic() < give_up:  # both threads are busy now
        time.sleep(0.005)
    second = send_steps(app.test_client(), "json", Step("b1"), Step("b2"))
    busy.join(timeout=10)
    assert first[0].statuses == [200, 200]
    assert second.statuses == [503, 503], calls.names
    assert sorted(calls.names) == ["a1", "a2"]


def test_multipart_skipped_parts_keep_their_content_ids(client: FlaskClient) -> None:
    subs = [
        SubRequest("GET", "/step/a?status=500", (), b"", "<a>"),
        SubRequest("GET", "/step/b", (), b"", "7"),
        SubRequest("GET", "/step/c", (), b""),
    ]
    answer = post(client, encode_requests(subs, BOUNDARY), headers={"Prefer": STOP})
    pairs = read_responses(answer.headers["Content-Type"], answer.get_data())
    assert [(cid, r.status) for cid, r in pairs] == [("<a>", 500), ("7", 424), (None, 424)]
    assert part_header(pairs[1][1], "Content-Type") == "application/problem+json"
    assert answer.headers["Preference-Applied"] == STOP
