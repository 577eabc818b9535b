"""How the answer streams: quick parts go out together, a slow part never waits for the next.

One chunk per part costs a WSGI server a send call and a chunked-encoding frame each (an
ASGI server, a message), so answers of quick parts are held back and sent together, within
bounds (schedule.HOLD_PARTS, HOLD_BYTES, QUICK_PART).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import pytest

from flask_batch import Execution, Limits, schedule
from flask_batch.options import Settings
from flask_batch.schedule import HOLD_BYTES, HOLD_PARTS
from flask_batch.wire.model import SubRequest
from flask_batch.wire.multipart_answers import read_responses
from flask_batch.wire.multipart_requests import encode_requests
from flask_batch.wsgi import BatchEndpoint

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

BOUNDARY = "streaming-boundary"


class Recorder:
    """Answers ``/quick``, ``/slow`` (30 ms, spent by ``pass_time``) and ``/big`` (10 KiB),
    and records each start."""

    def __init__(self, pass_time: Callable[[float], None] = time.sleep) -> None:
        self.started: list[str] = []
        self.pass_time = pass_time

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        self.started.append(path)
        if path == "/slow":
            self.pass_time(0.03)
        body = b"x" * 10_240 if path == "/big" else path.encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]


class Clock:
    """A :func:`time.perf_counter` that only moves when told: how long a part takes, as the
    engine measures it, is then the test's to say, however loaded the machine."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def answer_chunks(app: Recorder, paths: list[str], workers: int = 1) -> Iterator[bytes]:
    requests = [SubRequest("GET", path, (), b"", str(i)) for i, path in enumerate(paths)]
    body = encode_requests(requests, BOUNDARY)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/batch",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "localhost",
        "CONTENT_TYPE": f"multipart/mixed; boundary={BOUNDARY}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
    }
    execution = Execution(max_workers=workers, max_workers_per_request=workers)
    endpoint = BatchEndpoint(app, Settings(Limits(max_parts=1000), execution))
    answer = endpoint.answer(environ)
    assert answer.status == "200 OK"
    return iter(answer.body)


def answered(chunks: list[bytes]) -> list[tuple[str | None, str]]:
    """(Content-ID, body) of each part of the answer, in order."""
    answer = b"".join(chunks)
    boundary = answer[2 : answer.index(b"\r\n")].decode()
    return [
        (content_id, response.body.decode()[:6])
        for content_id, response in read_responses(f"multipart/mixed; boundary={boundary}", answer)
    ]


def test_quick_parts_go_out_together_and_the_answer_is_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every part counts as quick here, however loaded the machine: grouping is the point.
    monkeypatch.setattr(schedule, "QUICK_PART", 60.0)
    app = Recorder()
    paths = ["/quick"] * 40
    chunks = list(answer_chunks(app, paths))
    # 40 parts in chunks of HOLD_PARTS, the last one with the close delimiter.
    assert len(chunks) == -(-40 // HOLD_PARTS)
    assert answered(chunks) == [(str(i), "/quick") for i in range(40)]


def test_large_bodies_go_out_before_they_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every part takes no time here, however loaded the machine: the bytes are the point.
    monkeypatch.setattr(time, "perf_counter", Clock())
    app = Recorder()
    chunks = list(answer_chunks(app, ["/big"] * 20))
    per_chunk = [chunk.count(b"HTTP/1.1 200 OK") for chunk in chunks]
    assert answered(chunks) == [(str(i), "xxxxxx") for i in range(20)]
    held = -(-HOLD_BYTES // 10_240)  # parts whose bodies reach HOLD_BYTES
    assert per_chunk[0] == held
    assert max(len(chunk) for chunk in chunks) < HOLD_BYTES + 10_240 + 4096


def test_a_slow_part_is_sent_before_the_next_part_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()  # quick parts take no time, the slow one 30 ms
    monkeypatch.setattr(time, "perf_counter", clock)
    app = Recorder(pass_time=clock.advance)
    chunks = answer_chunks(app, ["/quick", "/quick", "/slow", "/quick", "/quick"])
    first = next(chunks)
    # The two quick answers waited for the slow one, and went out with it, before part 4.
    assert first.count(b"HTTP/1.1 200 OK") == 3
    assert app.started == ["/quick", "/quick", "/slow"]
    rest = list(chunks)
    assert app.started == ["/quick", "/quick", "/slow", "/quick", "/quick"]
    assert [body for _, body in answered([first, *rest])] == [
        "/quick",
        "/quick",
        "/slow",
        "/quick",
        "/quick",
    ]


def test_parallel_parts_are_answered_in_request_order() -> None:
    app = Recorder()
    paths = ["/slow", "/quick", "/slow", "/quick", "/quick"]
    chunks = list(answer_chunks(app, paths, workers=2))
    assert answered(chunks) == [(str(i), path) for i, path in enumerate(paths)]
