"""Faults: each failure stays in its own part (or refuses the batch in a defined way), and the
server answers the next batch normally.

Covered: views that raise or return invalid responses, WSGI-level misbehaviour, a stream that
fails midway, a ``teardown_request`` or ``after_request`` that raises, ``after_request`` hooks
that rewrite headers, a batch deadline, and clients that disconnect mid-upload or mid-answer
against a real server on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask, Response, request, stream_with_context

from flask_batch import add_batch_route
from flask_batch.client import Batching
from flask_batch.wire.model import SubResponse

from .batching import BOUNDARY, batch, header, sub
from .servers import live_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

PROBLEM_JSON = "application/problem+json"


def make_app(config: dict[str, Any] | None = None, **options: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config or {})
    ran: list[str] = []
    closed: list[str] = []
    app.config.update(ran=ran, closed=closed)

    @app.before_request
    def record() -> None:
        if request.endpoint != "batch":
            ran.append(request.full_path.rstrip("?"))

    @app.get("/ok")
    def ok() -> str:
        return "ok"

    @app.get("/raise")
    def raises() -> str:
        raise RuntimeError("secret internals")

    @app.get("/invalid/<kind>")
    def invalid(kind: str) -> Any:
        return {
            "none": None,
            "int": 42,
            "status": ("body", "not a status"),
            "json": {"value": object()},
        }[kind]

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            try:
                yield "first chunk, "
                if request.args.get("fail"):
                    raise OSError("the backing store went away")
                yield "second chunk"
            finally:
                closed.append(request.full_path)

        return Response(stream_with_context(chunks()), mimetype="text/plain")

    @app.get("/sleep")
    def sleep() -> str:
        time.sleep(float(request.args["s"]))
        return "slept"

    @app.teardown_request
    def teardown(error: BaseException | None) -> None:
        if request.path == "/teardown-raises":
            raise RuntimeError("teardown failed")

    app.route("/teardown-raises")(lambda: "the view itself succeeded")

    add_batch_route(app, **options)
    return app


def healthy(app: Flask) -> None:
    """The app still answers a batch normally."""
    answers = batch(app.test_client(), sub("GET", "/ok"), sub("GET", "/stream"))
    assert [(a.status, a.body) for a in answers] == [
        (200, b"ok"),
        (200, b"first chunk, second chunk"),
    ]


def assert_500_part(response: SubResponse) -> None:
    assert response.status == 500
    assert b"secret internals" not in response.body
    assert b"Traceback" not in response.body


@pytest.fixture(params=[False, True], ids=["handled-by-flask", "propagated"])
def propagate(request: pytest.FixtureRequest, app: Flask) -> bool:
    """Run with Flask's own 500 handler, and with exceptions escaping the app (TESTING)."""
    value: bool = request.param
    app.config["PROPAGATE_EXCEPTIONS"] = value
    return value


# Views and hooks that fail


def test_a_view_that_raises_is_a_500_part(
    app: Flask, propagate: bool, caplog: pytest.LogCaptureFixture
) -> None:
    before, failed, after = batch(
        app.test_client(), sub("GET", "/ok"), sub("GET", "/raise"), sub("GET", "/ok")
    )
    assert (before.status, after.status) == (200, 200)
    assert_500_part(failed)
    if propagate:
        assert header(failed, "Content-Type") == PROBLEM_JSON
        assert "part 2 (GET /raise) raised" in caplog.text
    healthy(app)


@pytest.mark.parametrize("kind", ["none", "int", "status", "json"])
def test_a_view_that_returns_an_invalid_response_is_a_500_part(
    app: Flask, propagate: bool, kind: str
) -> None:
    failed, after = batch(app.test_client(), sub("GET", f"/invalid/{kind}"), sub("GET", "/ok"))
    assert_500_part(failed)
    assert after.body == b"ok"
    healthy(app)


def test_a_stream_that_fails_midway_is_a_500_part_without_its_first_chunk(
    app: Flask, propagate: bool
) -> None:
    failed, after = batch(app.test_client(), sub("GET", "/stream?fail=1"), sub("GET", "/ok"))
    assert_500_part(failed)
    assert b"first chunk" not in failed.body  # no half answer
    assert after.body == b"ok"
    assert app.config["closed"] == ["/stream?fail=1"]  # the generator was closed
    healthy(app)


def test_a_teardown_that_raises_is_a_500_part(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    failed, after = batch(app.test_client(), sub("GET", "/teardown-raises"), sub("GET", "/ok"))
    assert_500_part(failed)
    assert after.body == b"ok"
    assert "part 1 (GET /teardown-raises) raised" in caplog.text
    healthy(app)


def _wsgi_fault(app: Flask, kind: str) -> None:
    inner = app.wsgi_app

    def faulty(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] != "/fault":
            return inner(environ, start_response)
        if kind == "no-start-response":
            return [b"body"]
        if kind == "str-body":
            start_response("200 OK", [])
            return ["text"]  # type: ignore[list-item]
        if kind == "bad-status":
            start_response("OK", [])
            return [b"body"]
        if kind == "close-raises":
            start_response("200 OK", [])
            return _ClosingBadly()
        raise AssertionError(kind)

    app.wsgi_app = faulty  # type: ignore[method-assign]


class _ClosingBadly:
    def __iter__(self) -> Iterator[bytes]:
        yield b"body"

    def close(self) -> None:
        raise RuntimeError("close failed")


@pytest.mark.parametrize("kind", ["no-start-response", "str-body", "bad-status", "close-raises"])
def test_a_misbehaving_wsgi_app_is_a_500_part(app: Flask, kind: str) -> None:
    _wsgi_fault(app, kind)
    failed, after = batch(app.test_client(), sub("GET", "/fault"), sub("GET", "/ok"))
    assert failed.status == 500
    assert header(failed, "Content-Type") == PROBLEM_JSON
    assert after.body == b"ok"
    healthy(app)


# after_request hooks


def test_after_request_hooks_that_rewrite_headers(app: Flask) -> None:
    @app.after_request
    def rewrite(response: Response) -> Response:
        response.headers["X-Path"] = request.path
        if request.path == "/ok":
            response.headers["Content-Length"] = "9999"  # a lie: the part says the truth
            response.headers["Connection"] = "close"  # hop-by-hop: not the part's business
            response.headers["Keep-Alive"] = "timeout=5"
            response.headers.add("Set-Cookie", "a=1")
            response.headers.add("Set-Cookie", "b=2")
        if request.path == "/stream":
            del response.headers["Content-Type"]
        return response

    client = app.test_client()
    answer = client.post(
        "/batch",
        data=(
            f"--{BOUNDARY}\r\nContent-Type: application/http\r\n\r\nGET /ok HTTP/1.1\r\n\r\n"
            f"--{BOUNDARY}\r\nContent-Type: application/http\r\n\r\nGET /stream HTTP/1.1\r\n\r\n"
            f"--{BOUNDARY}--\r\n"
        ),
        headers={"Content-Type": f"multipart/mixed; boundary={BOUNDARY}"},
    )
    assert answer.status_code == 200
    assert answer.headers["X-Path"] == "/batch"  # the hook ran for the batch request too
    assert answer.headers.get("Connection") != "close"
    ok, stream = batch(client, sub("GET", "/ok"), sub("GET", "/stream"))
    assert (ok.body, header(ok, "Content-Length"), header(ok, "X-Path")) == (b"ok", "2", "/ok")
    assert header(ok, "Connection") is None
    assert header(ok, "Keep-Alive") is None
    assert [v for k, v in ok.headers if k == "Set-Cookie"] == ["a=1", "b=2"]
    assert (stream.body, header(stream, "X-Path")) == (b"first chunk, second chunk", "/stream")
    assert header(stream, "Content-Type") is None


def test_an_after_request_hook_that_raises_is_a_500_part(app: Flask, propagate: bool) -> None:
    @app.after_request
    def explode(response: Response) -> Response:
        if request.path == "/ok" and request.args.get("explode"):
            raise RuntimeError("secret internals")
        return response

    failed, after = batch(app.test_client(), sub("GET", "/ok?explode=1"), sub("GET", "/ok"))
    assert_500_part(failed)
    assert after.body == b"ok"
    healthy(app)


# The deadline


def _slow_batch(app: Flask) -> list[SubResponse]:
    return batch(
        app.test_client(),
        sub("GET", "/sleep?s=0.8", content_id="<slow>"),
        sub("GET", "/ok", content_id="<late-1>"),
        sub("GET", "/ok", content_id="<late-2>"),
    )


def assert_past_deadline(response: SubResponse) -> None:
    assert response.status == 503
    assert header(response, "Retry-After") == "1"
    assert header(response, "Content-Type") == PROBLEM_JSON
    document = json.loads(response.body)
    assert document["status"] == 503
    assert "deadline" in document["detail"]


@pytest.mark.parametrize("configure", ["option", "config"])
def test_parts_not_started_by_the_deadline_are_503_parts(configure: str) -> None:
    config = {"BATCH_DEADLINE": 0.5} if configure == "config" else {}
    app = make_app(config, **({"deadline": 0.5} if configure == "option" else {}))
    slow, late_1, late_2 = _slow_batch(app)
    assert (slow.status, slow.body) == (200, b"slept")  # a started part runs to its end
    assert_past_deadline(late_1)
    assert_past_deadline(late_2)
    assert app.config["ran"] == ["/sleep?s=0.8"]
    healthy(app)  # the deadline is per batch


def test_the_503_parts_keep_their_content_ids() -> None:
    app = make_app(deadline=0.5)
    body = (
        f"--{BOUNDARY}\r\nContent-Type: application/http\r\nContent-ID: <slow>\r\n\r\n"
        f"GET /sleep?s=0.8 HTTP/1.1\r\n\r\n"
        f"--{BOUNDARY}\r\nContent-Type: application/http\r\nContent-ID: <late>\r\n\r\n"
        f"GET /ok HTTP/1.1\r\n\r\n"
        f"--{BOUNDARY}--\r\n"
    )
    answer = app.test_client().post(
        "/batch", data=body, headers={"Content-Type": f"multipart/mixed; boundary={BOUNDARY}"}
    )
    assert answer.status_code == 200
    data = answer.get_data()
    assert data.index(b"Content-ID: <response-slow>") < data.index(b"Content-ID: <response-late>")
    assert b"HTTP/1.1 503 Service Unavailable\r\n" in data


def test_without_a_deadline_every_part_runs(app: Flask) -> None:
    answers = batch(app.test_client(), sub("GET", "/sleep?s=0.3"), sub("GET", "/ok"))
    assert [a.status for a in answers] == [200, 200]


def test_a_generous_deadline_changes_nothing() -> None:
    app = make_app(deadline=30)
    answers = batch(app.test_client(), sub("GET", "/sleep?s=0.05"), sub("GET", "/ok"))
    assert [a.status for a in answers] == [200, 200]


@pytest.mark.parametrize("deadline", [0, -1, "5", float("inf"), float("nan")])
def test_an_invalid_deadline_is_refused_when_registering(deadline: object) -> None:
    with pytest.raises(ValueError, match="deadline"):
        add_batch_route(Flask(__name__), deadline=deadline)


def test_the_client_sees_a_503_part_as_a_retryable_response() -> None:
    app = make_app(deadline=0.5)
    # retries=0: by default the client retries that 503 (tests/test_client_retry.py).
    with live_server(app) as base, Batching(f"{base}/batch", retries=0) as s:
        slow = s.get(f"{base}/sleep?s=0.8")
        late = s.get(f"{base}/ok")
    assert slow.text == "slept"
    assert late.status_code == 503
    assert late.headers["Retry-After"] == "1"
    assert late.headers["Content-Type"] == PROBLEM_JSON


# Clients that go away


def _head(port: int, length: str | None, extra: str = "") -> bytes:
    framing = f"Content-Length: {length}\r\n" if length else "Transfer-Encoding: chunked\r\n"
    return (
        f"POST /batch HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/mixed; boundary={BOUNDARY}\r\n{framing}{extra}\r\n"
    ).encode()


FIRST_PART = (
    f"--{BOUNDARY}\r\nContent-Type: application/http\r\n\r\nGET /ok?upload=1 HTTP/1.1\r\n\r\n"
    f"--{BOUNDARY}\r\nContent-Type: application/http\r\n\r\nGET /ok?upl"
).encode()


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def _next_batch_works(base: str) -> None:
    with Batching(f"{base}/batch") as s:
        first = s.get(f"{base}/ok")
        second = s.get(f"{base}/stream")
    assert (first.text, second.text) == ("ok", "first chunk, second chunk")


def _wait_for(condition: Callable[[], object], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


# Werkzeug's access log line for the batch request, with the status it answered.
_LOGGED_STATUS = re.compile(r'POST /batch HTTP/1\.1\S*" (\d{3}) ')


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_client_that_disconnects_mid_upload(
    app: Flask, framing: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="werkzeug")
    with live_server(app) as base:
        port = _port(base)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            if framing == "content-length":
                raw.sendall(_head(port, "100000") + FIRST_PART)  # promises 100 kB, sends 170 B
            else:
                raw.sendall(_head(port, None) + b"4000\r\n" + FIRST_PART)  # a chunk cut short
        # The server notices the end of the body and refuses the batch: nothing runs.
        _wait_for(lambda: _LOGGED_STATUS.search(caplog.text))
        status = _LOGGED_STATUS.search(caplog.text)
        assert status is not None
        assert status.group(1).startswith("4"), caplog.text
        _next_batch_works(base)
    assert app.config["ran"] == ["/ok", "/stream"]  # only the next batch's parts
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_malformed_chunked_framing_of_the_batch_is_a_400(app: Flask) -> None:
    with live_server(app) as base:
        port = _port(base)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(_head(port, None, "Connection: close\r\n") + b"zz\r\n" + FIRST_PART)
            answer = _read_all(raw)
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 400 "), answer[:300]
        assert b"Content-Type: application/problem+json" in rest
        _next_batch_works(base)
    assert app.config["ran"] == ["/ok", "/stream"]


def test_a_client_that_disconnects_while_the_answer_streams(app: Flask) -> None:
    parts = "".join(
        f"--{BOUNDARY}\r\nContent-Type: application/http\r\n\r\nGET /sleep?s=0.02 HTTP/1.1\r\n\r\n"
        for _ in range(30)
    )
    data = (parts + f"--{BOUNDARY}--\r\n").encode()
    with live_server(app) as base:
        port = _port(base)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(_head(port, str(len(data))) + data)
            assert raw.recv(64).startswith(b"HTTP/1.1 200 ")  # the answer began; now hang up
        _next_batch_works(base)
        ran: list[str] = app.config["ran"]
        _wait_for(lambda: _settled(ran))
    # Once the server could not write to the client it closed the answer: the rest never ran.
    assert 1 <= ran.count("/sleep?s=0.02") < 30


def _settled(ran: list[str]) -> bool:
    before = len(ran)
    time.sleep(0.2)
    return len(ran) == before


def _read_all(raw: socket.socket) -> bytes:
    chunks = []
    while chunk := raw.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
