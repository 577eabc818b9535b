"""Each part of a batch is logged and signalled, alike on every front end: a record per part
on ``flask_batch.parts`` (batch id, place, id, method, path, status, duration) and a summary
per batch, and the blinker signals of :mod:`flask_batch.signals` with the same fields."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flask_batch import schedule, signals
from flask_batch.wire.json_requests import encode_json_requests
from flask_batch.wire.model import SubRequest
from flask_batch.wire.multipart_requests import encode_requests

from ..batching import sub
from .conftest import Server
from .wire import BOUNDARY, batch, post

PART_FIELDS = ("batch_id", "part", "part_id", "method", "path", "status", "duration")


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="flask_batch.parts")
    return caplog


def batch_records(
    caplog: pytest.LogCaptureFixture, batch_id: str | None = None
) -> tuple[list[logging.LogRecord], logging.LogRecord]:
    """The part records and the summary of the one batch logged (or of ``batch_id``); the
    summary follows the answer's last bytes, so it may come a moment after the client has
    read them."""
    for _ in range(500):
        mine = [
            r
            for r in caplog.records
            if r.name == "flask_batch.parts" and batch_id in (None, r.__dict__["batch_id"])
        ]
        summaries = [r for r in mine if hasattr(r, "parts")]
        if summaries:
            (summary,) = summaries
            return [r for r in mine if r is not summary], summary
        time.sleep(0.01)
    raise AssertionError("no summary was logged")


def fields(record: logging.LogRecord, names: tuple[str, ...] = PART_FIELDS) -> dict[str, Any]:
    return {name: record.__dict__[name] for name in names}


def test_each_part_is_logged_with_its_outcome_then_the_batch(
    server: Server, records: pytest.LogCaptureFixture
) -> None:
    answers = batch(
        server.base,
        "/batch",
        sub("GET", "/ok", content_id="a"),
        sub("DELETE", "/status?code=404", content_id="b"),
        sub("GET", "/raise"),
        headers=[("X-Request-ID", "req-42")],
    )
    assert [a.status for a in answers] == [200, 404, 500]
    parts, summary = batch_records(records)
    assert [fields(r) | {"duration": 0} for r in parts] == [
        {"batch_id": "req-42", "part": 1, "part_id": "a", "method": "GET", "path": "/ok",
         "status": 200, "duration": 0},
        {"batch_id": "req-42", "part": 2, "part_id": "b", "method": "DELETE",
         "path": "/status", "status": 404, "duration": 0},
        {"batch_id": "req-42", "part": 3, "part_id": None, "method": "GET", "path": "/raise",
         "status": 500, "duration": 0},
    ]  # fmt: skip
    assert all(r.levelno == logging.INFO and r.__dict__["duration"] > 0 for r in parts)
    assert parts[1].getMessage().startswith("batch req-42 part 2 (b): DELETE /status?code=404 404 ")
    assert fields(summary, ("batch_id", "parts", "failures", "batch_format")) == {
        "batch_id": "req-42",
        "parts": 3,
        "failures": 2,
        "batch_format": "multipart",
    }
    assert summary.__dict__["duration"] >= max(r.__dict__["duration"] for r in parts)
    assert summary.getMessage().startswith("batch req-42: 3 parts, 2 failed, ")


def test_a_batch_without_a_request_id_gets_one_of_its_own(
    server: Server, records: pytest.LogCaptureFixture
) -> None:
    for request_id in ([], [("X-Request-ID", "x" * 201)], [("X-Request-ID", "a\tb")]):
        records.clear()
        batch(
            server.base, "/batch/parallel", sub("GET", "/ok"), sub("GET", "/ok"), headers=request_id
        )
        parts, summary = batch_records(records)
        batch_id = summary.__dict__["batch_id"]
        assert len(batch_id) == 16
        assert int(batch_id, 16) >= 0
        assert sorted(r.__dict__["part"] for r in parts) == [1, 2]
        assert {r.__dict__["batch_id"] for r in parts} == {batch_id}


def test_parts_that_did_not_run_are_logged_with_what_they_answered(
    server: Server, records: pytest.LogCaptureFixture
) -> None:
    data = encode_requests([sub("GET", "/status?code=500"), sub("GET", "/ok")], BOUNDARY)
    post(server.base, "/batch", data, headers=[("Prefer", "continue-on-error=false")])
    parts, summary = batch_records(records)
    assert [(r.__dict__["status"], r.__dict__["duration"] > 0) for r in parts] == [
        (500, True),
        (424, False),  # skipped: it never ran
    ]
    assert (summary.__dict__["parts"], summary.__dict__["failures"]) == (2, 2)


def test_json_batches_log_their_ids_and_format(
    server: Server, records: pytest.LogCaptureFixture
) -> None:
    document = encode_json_requests([sub("GET", "/ok", content_id="first")])
    answer = post(server.base, "/batch", document, "application/json")
    assert json.loads(answer.body)["responses"][0]["status"] == 200
    (part,), summary = batch_records(records)
    assert part.__dict__["part_id"] == "first"
    assert summary.__dict__["batch_format"] == "json"


def test_nothing_is_logged_below_info(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="flask_batch.parts")
    batch(server.base, "/batch", sub("GET", "/ok"))
    assert [r for r in caplog.records if r.name == "flask_batch.parts"] == []


@pytest.fixture
def received() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """What the signals carried while the test ran."""
    seen: list[tuple[str, dict[str, Any]]] = []
    lock = threading.Lock()

    def on_part(sender: object, **fields: Any) -> None:
        with lock:
            seen.append(("part", fields))

    def on_batch(sender: object, **fields: Any) -> None:
        with lock:
            seen.append(("batch", fields))

    signals.part_answered.connect(on_part)
    signals.batch_answered.connect(on_batch)
    try:
        yield seen
    finally:
        signals.part_answered.disconnect(on_part)
        signals.batch_answered.disconnect(on_batch)


def test_signals_carry_each_part_and_the_batch(
    server: Server, received: list[tuple[str, dict[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_batch.parts")  # not logged: signalled
    batch(
        server.base,
        "/batch",
        sub("GET", "/ok", content_id="a"),
        sub("GET", "/nowhere"),
        headers=[("X-Request-ID", "signalled")],
    )
    for _ in range(500):
        if any(kind == "batch" for kind, _ in received):
            break
        time.sleep(0.01)
    mine = [(kind, f) for kind, f in received if f["batch_id"] == "signalled"]
    assert [(kind, f.get("status"), f.get("part_id")) for kind, f in mine] == [
        ("part", 200, "a"),
        ("part", 404, None),
        ("batch", None, None),
    ]
    assert set(mine[0][1]) == set(PART_FIELDS)
    assert (mine[2][1]["parts"], mine[2][1]["failures"]) == (2, 1)
    assert [r for r in caplog.records if r.name == "flask_batch.parts"] == []


# -- outcome at a glance: the Batch-Failures header -------------------------------------------


@pytest.mark.parametrize(
    ("requests", "failures"),
    [
        ([sub("GET", "/ok"), sub("GET", "/ok")], "0"),
        ([sub("GET", "/ok"), sub("GET", "/nowhere"), sub("GET", "/raise")], "2"),
    ],
)
def test_a_batch_answered_before_its_head_counts_its_failures_in_a_header(
    server: Server, requests: list[SubRequest], failures: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every part counts as quick, however long a loaded machine takes to log the exception of
    # /raise: the answers are all held, and the head goes with them (the servers run here).
    monkeypatch.setattr(schedule, "QUICK_PART", 60.0)
    answer = post(server.base, "/batch", encode_requests(requests, BOUNDARY))
    assert len(answer.parts()) == len(requests)
    assert answer.header("Batch-Failures") == failures


def test_parts_that_did_not_run_count_as_failures(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedule, "QUICK_PART", 60.0)  # held, however loaded the machine
    data = encode_requests([sub("GET", "/status?code=503"), sub("GET", "/ok")], BOUNDARY)
    answer = post(server.base, "/batch", data, headers=[("Prefer", "continue-on-error=false")])
    assert [r.status for r in answer.parts()] == [503, 424]
    assert answer.header("Batch-Failures") == "2"


def test_a_json_batch_gets_the_header_too(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule, "QUICK_PART", 60.0)  # held, however loaded the machine
    document = encode_json_requests([sub("GET", "/nowhere", content_id="1")])
    answer = post(server.base, "/batch", document, "application/json")
    assert answer.header("Batch-Failures") == "1"


@pytest.mark.parametrize(
    "requests",
    [
        # A slow part's answer goes out at once, before the next part runs.
        [sub("GET", "/slow?s=0.05"), sub("GET", "/nowhere")],
        # Quick answers go out sixteen at a time (schedule.HOLD_PARTS).
        [sub("GET", "/ok")] * 17,
        # A large answer goes out in slices as it is written, the rest after it.
        [sub("GET", "/sized?size=200000"), sub("GET", "/ok")],
    ],
    ids=["slow-part", "many-parts", "large-answer"],
)
def test_an_answer_that_streams_before_its_last_part_has_no_header(
    server: Server, requests: list[SubRequest]
) -> None:
    answer = post(server.base, "/batch", encode_requests(requests, BOUNDARY))
    assert len(answer.parts()) == len(requests)
    assert answer.header("Batch-Failures") is None
