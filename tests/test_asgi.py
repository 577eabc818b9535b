"""The ASGI middleware, against a bare ASGI application: scopes, streaming intake, refusals,
per-part isolation, concurrency on the event loop.

Oracle for what a part's scope must hold: uvicorn (a direct request and a batch part to the
same target must produce the same scope). What every front end answers alike (refusals, the
description of the endpoint) is asserted in tests/conformance/.
"""

from __future__ import annotations

import asyncio
import contextvars
import gzip
import http.client
import json
import logging
import zlib
from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any

import pytest

from flask_batch import asgi, asgi_parts, schedule
from flask_batch.asgi import BatchMiddleware, route_path
from flask_batch.asgi_parts import Parts
from flask_batch.schedule import HOLD_PARTS
from flask_batch.targets import PartRefused
from flask_batch.wire.json_requests import encode_json_requests
from flask_batch.wire.model import SubRequest
from flask_batch.wire.multipart_requests import encode_requests

from .frameworks.driving import (
    BOUNDARY,
    MULTIPART,
    Exchange,
    batch,
    http_scope,
    lifespan,
    part_header,
    part_json,
    request,
    run,
    sub,
)
from .frameworks.raw_asgi import REQUEST_VAR, RawApp
from .frameworks.serving import asgi_server, hypercorn_server


def _body(*requests: SubRequest) -> bytes:
    return encode_requests(requests, BOUNDARY)


def _post(app: BatchMiddleware, body: bytes | list[bytes], **kwargs: Any) -> Exchange:
    headers = kwargs.pop("headers", [("content-type", MULTIPART)])
    return run(request(app, "POST", "/batch", headers=headers, body=body, **kwargs))


# --------------------------------------------------------------------------------------
# The scope of a part: what uvicorn builds for the same request sent directly
# --------------------------------------------------------------------------------------


def _exchange(connection: http.client.HTTPConnection, method: str, target: str, **kw: Any) -> bytes:
    connection.request(method, target, **kw)
    answer = connection.getresponse()
    data = answer.read()
    assert answer.status == 200, data
    return data


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
@pytest.mark.parametrize("root_path", ["", "/api"])
def test_a_part_scope_is_what_the_server_builds_for_the_same_request(
    server: str, root_path: str
) -> None:
    """uvicorn puts root_path in path, hypercorn does not: a part follows its server."""
    raw = RawApp()
    targets = ["/people/alice", "/a%2Fb/c%20d?x=1&y=%2F", "/caf%C3%A9?q=%C3%A9", "/"]
    serving = asgi_server if server == "uvicorn" else hypercorn_server
    with serving(BatchMiddleware(raw), root_path=root_path) as base:
        port = int(base.rsplit(":", 1)[1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"X-Trace": "t", "Authorization": "Bearer outer"}
        for target in targets:  # a proxy stripped root_path: uvicorn adds it back
            _exchange(connection, "GET", target, headers=headers)
        parts = [sub("GET", root_path + target) for target in targets]
        parts.append(sub("GET", f"http://127.0.0.1:{port}{root_path}{targets[1]}"))  # absolute
        body = _body(*parts)
        answer = _exchange(
            connection,
            "POST",
            "/batch",
            body=body,
            headers={**headers, "Content-Type": MULTIPART, "Accept-Encoding": "identity"},
        )
        connection.close()
    assert answer.count(b"HTTP/1.1 200 OK") == len(parts)
    direct, in_batch = raw.seen[: len(targets)], raw.seen[len(targets) :]
    assert len(in_batch) == len(parts)
    for index, (expected, got) in enumerate(zip([*direct, direct[1]], in_batch, strict=True)):
        assert got.pop("flask_batch.part") is True
        assert got.pop("flask_batch.part_index") == index
        assert sorted(got["headers"]) == sorted(expected["headers"])
        assert {k: v for k, v in got.items() if k != "headers"} == {
            k: v for k, v in expected.items() if k != "headers"
        }
    assert in_batch[0]["state"] == {"pool": "the pool"}  # the server's copy of lifespan state
    in_path = root_path if server == "uvicorn" else ""
    assert in_batch[1]["raw_path"] == (in_path + "/a%2Fb/c%20d").encode()
    assert in_batch[2]["path"] == in_path + "/café"


def test_without_root_path_in_path_parts_follow_the_same_convention() -> None:
    """hypercorn leaves ``root_path`` out of ``path``: so do the parts."""
    raw = RawApp()
    scope = http_scope("POST", "/batch", [("content-type", MULTIPART)], root_path="/a%pi")
    scope["root_path"] = "/ap i"
    parts = [sub("GET", "/ap%20i/x%2Fy?z=1"), sub("GET", "x"), sub("GET", "/x")]
    answers = run(batch(BatchMiddleware(raw), *parts, scope=scope))
    assert [a.status for a in answers] == [200, 200, 400]
    assert [(s["root_path"], s["path"], s["raw_path"]) for s in raw.seen] == [
        ("/ap i", "/x/y", b"/x%2Fy"),
        ("/ap i", "/x", b"/x"),
    ]
    assert b"outside this application's root /ap i" in answers[2].body


@pytest.mark.parametrize(
    ("target", "path", "raw_path", "query"),
    [
        ("/plain/x?q=1", "/plain/x", b"/plain/x", b"q=1"),  # nothing to decode
        ("/a%20b/c%2Fd", "/a b/c/d", b"/a%20b/c%2Fd", b""),
        ("/caf\xe9/x?q=\xe9", "/caf\xe9/x", b"/caf\xe9/x", b"q=\xe9"),  # sent unencoded
    ],
)
def test_a_part_path_is_its_raw_path_decoded(
    target: str, path: str, raw_path: bytes, query: bytes
) -> None:
    scope = _scope_of(http_scope("POST", "/batch"), sub("GET", target))
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == (path, raw_path, query)


def test_route_path_follows_the_servers_convention() -> None:
    assert route_path({"path": "/api/batch", "root_path": "/api"}) == "/batch"
    assert route_path({"path": "/batch", "root_path": "/api"}) == "/batch"
    assert route_path({"path": "/apix/batch", "root_path": "/api"}) == "/apix/batch"


def _scope_of(outer: dict[str, Any], part: SubRequest) -> dict[str, Any]:
    return dict(Parts(RawApp(), outer).scope(part, 0))


def test_outer_headers_are_inherited_except_content_and_hop_by_hop() -> None:
    outer = http_scope(
        "POST",
        "/batch",
        [
            ("Authorization", "Bearer outer"),
            ("Cookie", "s=1"),
            ("X-Trace", "t"),
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "h"),
            ("Content-Type", MULTIPART),
            ("Content-Encoding", "identity"),
            ("Content-Length", "10"),
            ("Expect", "100-continue"),
            ("Proxy-Authorization", "secret"),
            ("Upgrade", "h2c"),
            ("Transfer-Encoding", "chunked"),
            ("Forwarded", "for=1.2.3.4"),
            ("X-Forwarded-For", "1.2.3.4"),
        ],
    )
    scope = _scope_of(outer, sub("GET", "/x"))
    assert scope["headers"] == [
        (b"host", b"testserver"),
        (b"authorization", b"Bearer outer"),
        (b"cookie", b"s=1"),
        (b"x-trace", b"t"),
        (b"forwarded", b"for=1.2.3.4"),
        (b"x-forwarded-for", b"1.2.3.4"),
    ]


def test_part_headers_replace_the_outer_ones_and_cannot_move_the_origin() -> None:
    outer = http_scope(
        "POST",
        "/batch",
        [("Authorization", "Bearer outer"), ("Accept", "text/html"), ("X-Real-IP", "9.9.9.9")],
    )
    part = sub(
        "POST",
        "/x",
        b"{}",
        (
            ("authorization", "Bearer mine"),
            ("Accept", "a/b"),
            ("Accept", "c/d"),
            ("Host", "evil.example"),
            ("X_User", "root"),
            ("Cookie", "a=1"),
            ("Cookie", "b=2"),
            ("Content-Length", "999"),
            ("Content-Type", "application/json"),
        ),
    )
    scope = _scope_of(outer, part)
    assert scope["headers"] == [
        (b"host", b"testserver"),
        (b"x-real-ip", b"9.9.9.9"),
        (b"authorization", b"Bearer mine"),
        (b"accept", b"a/b"),
        (b"accept", b"c/d"),
        (b"content-type", b"application/json"),
        (b"cookie", b"a=1; b=2"),
        (b"content-length", b"2"),
    ]


def test_parts_with_the_same_headers_each_get_their_own_scope_headers() -> None:
    # A batch works out each distinct header block once; every part still gets a list of its
    # own, its own Content-Length, and a pinned header refuses every part that sends it.
    parts = Parts(RawApp(), http_scope("POST", "/batch", [("Accept", "text/html")]))
    block = (("Accept", "a/b"), ("Content-Type", "application/json"))
    first = parts.scope(sub("PATCH", "/x", b"{}", block), 0)
    first["headers"].append((b"x-added", b"by the application"))
    second = parts.scope(sub("PATCH", "/y", b"[1]", block), 1)
    empty = parts.scope(sub("PATCH", "/z", b"", block), 2)
    said = parts.scope(sub("PATCH", "/z", b"", (*block, ("Content-Length", "0"))), 3)
    own = [(b"host", b"testserver"), (b"accept", b"a/b"), (b"content-type", b"application/json")]
    assert second["headers"] == [*own, (b"content-length", b"3")]
    assert empty["headers"] == own
    assert said["headers"] == [*own, (b"content-length", b"0")]
    pinned = sub("GET", "/x", b"", (("X-Forwarded-User", "admin"),))
    for index in range(2):
        with pytest.raises(PartRefused, match="X-Forwarded-User"):
            parts.scope(pinned, index)
    for index in range(asgi_parts._MERGED_BLOCKS + 1):  # a batch of many distinct blocks
        scope = parts.scope(sub("GET", "/x", b"", (("X-N", str(index)),)), index)
        assert scope["headers"][-1] == (b"x-n", str(index).encode())
    assert len(parts._merged) <= asgi_parts._MERGED_BLOCKS


def test_parts_answering_alike_each_get_their_own_answer_headers() -> None:
    # A batch decodes each distinct header block of its answers once (bounded); a block that
    # cannot be a key (pairs as lists, a bytearray value) is decoded each time.
    shapes: list[list[Any]] = [
        [(b"content-type", b"text/plain"), (b"x-n", b"same")],
        [[b"content-type", b"text/plain"], [b"x-n", b"list"]],
        [(b"content-type", bytearray(b"text/plain")), (b"x-n", b"mutable")],
    ]

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        index = scope["flask_batch.part_index"]
        headers = shapes[index] if index < len(shapes) else [(b"x-n", b"%d" % index)]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    parts = Parts(app, http_scope("POST", "/batch"))

    async def answers() -> list[Any]:
        count = asgi_parts._MERGED_BLOCKS + 10
        return [await parts(sub("GET", "/x"), index) for index in [*range(count), 0, 1, 2]]

    found = run(answers())
    expected = [("content-type", "text/plain")]
    assert [answer.headers for answer in found[:3]] == [
        (*expected, ("x-n", "same")),
        (*expected, ("x-n", "list")),
        (*expected, ("x-n", "mutable")),
    ]
    assert found[-3:] == found[:3]
    assert all(a.status == 201 and a.reason == "Created" for a in found)
    assert [a.headers for a in found[3:-3]] == [
        (("x-n", str(index)),) for index in range(3, asgi_parts._MERGED_BLOCKS + 10)
    ]
    assert len(parts._decoded) <= asgi_parts._MERGED_BLOCKS


def test_a_scope_without_host_takes_the_server_address() -> None:
    outer = http_scope("POST", "/batch", server=("example.com", 8080))
    outer["headers"] = []
    scope = _scope_of(outer, sub("GET", "http://example.com:8080/x"))
    assert scope["headers"] == [(b"host", b"example.com:8080")]
    assert scope["path"] == "/x"


def test_only_connection_facts_of_the_batch_scope_reach_a_part() -> None:
    outer = http_scope(
        "POST",
        "/batch",
        scheme="https",
        http_version="2",
        extensions={"tls": {"client_cert_chain": []}, "http.response.pathsend": {}},
        state={"pool": "p"},
        app="the application",
        user="the batch's user",
        session={"id": 1},
    )
    outer["headers"] = [(b"host", b"testserver")]
    scope = _scope_of(outer, sub("DELETE", "https://testserver/x?a=1"))
    assert scope == {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "2",
        "scheme": "https",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "extensions": {"tls": {"client_cert_chain": []}},
        "app": "the application",
        "flask_batch.part": True,
        "flask_batch.part_index": 0,
        "method": "DELETE",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"a=1",
        "headers": [(b"host", b"testserver")],
        "state": {"pool": "p"},
    }
    assert scope["state"] is not outer["state"]


# --------------------------------------------------------------------------------------
# Streaming intake: limits while the body arrives
# --------------------------------------------------------------------------------------


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_the_body_is_read_in_chunks_as_it_arrives() -> None:
    raw = RawApp()
    body = _body(*[sub("GET", f"/n{i}") for i in range(20)])
    answer = _post(BatchMiddleware(raw), _chunks(body, 7))
    assert answer.chunks_read == len(_chunks(body, 7))
    assert [p.status for p in answer.parts()] == [200] * 20
    assert [s["path"] for s in raw.seen] == [f"/n{i}" for i in range(20)]


def test_too_many_parts_are_refused_before_the_rest_of_the_body_is_read() -> None:
    raw = RawApp()
    body = _body(*[sub("GET", "/x") for _ in range(50)])
    chunks = _chunks(body, 100)
    answer = _post(BatchMiddleware(raw, max_parts=3), chunks)
    assert answer.status == 413
    assert answer.problem()["limit"] == "max_parts"
    assert answer.chunks_read < len(chunks) // 4
    assert raw.seen == []


def test_after_an_early_refusal_the_rest_of_the_body_is_read_and_dropped() -> None:
    # A server that closes with unread bytes resets the connection, and the client can lose
    # the refusal before reading it: what is left is read (after the answer) and dropped.
    received: list[int] = []
    chunks = _chunks(_body(*[sub("GET", "/x") for _ in range(50)]), 100)

    async def receive() -> dict[str, Any]:
        received.append(1)
        more = len(received) < len(chunks)
        return {"type": "http.request", "body": chunks[len(received) - 1], "more_body": more}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    length = str(sum(map(len, chunks)))
    scope = http_scope("POST", "/batch", [("content-type", MULTIPART), ("content-length", length)])
    run(BatchMiddleware(RawApp(), max_parts=3)(scope, receive, send))
    assert sent[0]["status"] == 413
    assert len(received) == len(chunks)


def test_draining_a_refused_body_is_bounded_in_time_and_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(asgi, "_DRAIN_SECONDS", 0.05)
    received: list[int] = []

    async def endless() -> dict[str, Any]:  # a client that sends for ever
        received.append(1)
        await asyncio.sleep(0.001)
        return {"type": "http.request", "body": b"x" * 10, "more_body": True}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = http_scope("POST", "/batch", [("content-type", "text/plain"), ("content-length", "9")])
    run(BatchMiddleware(RawApp())(scope, endless, send))
    assert sent[0]["status"] == 415
    assert 1 <= len(received) < 1000  # stopped by the clock
    received.clear()
    run(BatchMiddleware(RawApp(), max_body_size=100)(scope, endless, send))
    assert len(received) <= 12  # stopped by the byte count: 100 bytes, 10 a message


def test_an_unframed_body_over_the_limit_is_refused_when_the_limit_is_crossed() -> None:
    body = _body(*[sub("POST", "/x", b"y" * 100) for _ in range(20)])
    chunks = _chunks(body, 64)
    answer = _post(
        BatchMiddleware(RawApp(), max_body_size=1000),
        chunks,
        headers=[("content-type", MULTIPART), ("transfer-encoding", "chunked")],
    )
    assert answer.status == 413
    assert answer.problem()["limit"] == "max_body_size"
    assert answer.chunks_read == 1000 // 64 + 1


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    answer = _post(BatchMiddleware(RawApp(), max_body_size=100), [b"x" * 200])
    assert answer.status == 413
    assert answer.chunks_read == 0


def test_a_gzip_body_is_decoded_chunk_by_chunk_and_a_bomb_stops_at_the_limit() -> None:
    raw = RawApp()
    body = gzip.compress(_body(sub("GET", "/zipped")))
    headers = [("content-type", MULTIPART), ("content-encoding", "gzip")]
    answer = _post(BatchMiddleware(raw), _chunks(body, 5), headers=headers)
    assert [p.status for p in answer.parts()] == [200]
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    data = bomb.compress(b"--" + b"x" * 5_000_000) + bomb.flush()
    chunks = _chunks(data, 512)
    refused = _post(BatchMiddleware(raw, max_body_size=100_000), chunks, headers=headers)
    assert refused.status == 413
    assert refused.chunks_read < len(chunks) // 2


def test_a_client_that_leaves_mid_upload_gets_no_answer() -> None:
    raw = RawApp()
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": _body(sub("GET", "/x"))[:30], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = http_scope("POST", "/batch", [("content-type", MULTIPART), ("content-length", "999")])
    run(BatchMiddleware(raw)(scope, receive, send))
    assert sent == []
    assert raw.seen == []


# --------------------------------------------------------------------------------------
# Refusals of what a real server does not pass on (tests/conformance/ sends the rest)
# --------------------------------------------------------------------------------------

_GOOD = _body(sub("GET", "/x"), sub("GET", "/y"))


def test_a_malformed_content_length_is_a_400() -> None:
    headers = [("content-type", MULTIPART), ("content-length", "1x")]
    answer = _post(BatchMiddleware(RawApp()), [_GOOD], headers=headers)
    assert answer.status == 400
    assert answer.problem()["detail"] == "invalid Content-Length '1x'"


def test_a_body_shorter_than_its_content_length_is_a_400() -> None:
    answer = _post(
        BatchMiddleware(RawApp()),
        [_GOOD],
        headers=[("content-type", MULTIPART), ("content-length", str(len(_GOOD) + 10))],
    )
    assert answer.status == 400
    assert (
        answer.problem()["detail"]
        == f"the body ended after {len(_GOOD)} of {len(_GOOD) + 10} bytes"
    )


# --------------------------------------------------------------------------------------
# What passes through
# --------------------------------------------------------------------------------------


def test_lifespan_websocket_and_other_paths_pass_through_untouched() -> None:
    raw = RawApp()
    app = BatchMiddleware(raw)

    async def scenario() -> Exchange:
        async with lifespan(app) as state:
            assert state == {"pool": "the pool"}
        websocket = {"type": "websocket", "path": "/batch", "headers": []}

        async def receive() -> dict[str, Any]:
            return {"type": "websocket.connect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            assert message["type"] == "websocket.close"

        await app(websocket, receive, send)
        assert raw.websockets == [websocket]  # the very same scope object
        return await request(app, "POST", "/batchx?y=1", body=b"payload")

    other = run(scenario())
    assert len(raw.lifespans) == 1
    assert other.json()["body"] == "payload"
    assert other.json()["path"] == "/batchx"
    assert "flask_batch.part" not in raw.seen[0]


# --------------------------------------------------------------------------------------
# Running parts
# --------------------------------------------------------------------------------------


def test_failures_inside_a_part_are_500_parts_and_the_batch_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = RawApp()
    paths = ["/raise", "/no-response", "/unfinished", "/twice", "/pathsend", "/ok"]
    answers = run(batch(BatchMiddleware(raw), *[sub("GET", p) for p in paths]))
    assert [a.status for a in answers] == [500, 500, 500, 200, 500, 200]
    assert part_json(answers[0])["title"] == "Internal Server Error"
    assert b"the view failed" not in answers[0].body
    logged = [r for r in caplog.records if r.name == "flask_batch"]
    assert len(logged) == 5  # four failed parts, and /twice raising after its answer
    assert "the view failed" in caplog.text
    assert "http.response.start sent twice" in caplog.text


def test_an_exception_after_the_response_keeps_the_answer(caplog: pytest.LogCaptureFixture) -> None:
    answers = run(batch(BatchMiddleware(RawApp()), sub("GET", "/raise-after"), sub("GET", "/x")))
    assert [a.status for a in answers] == [500, 200]
    assert part_json(answers[0]) == {"sent": True}  # the application's own answer
    assert "failed after answering" in caplog.text


def test_a_streamed_response_is_collected_and_receive_disconnects_once_it_is_done() -> None:
    raw = RawApp()
    answers = run(batch(BatchMiddleware(raw), sub("GET", "/stream"), sub("GET", "/disconnect")))
    assert answers[0].body == b"abc"
    assert part_json(answers[1]) == {"waited": True}
    assert raw.events == ["http.disconnect"]


def test_each_part_gets_its_body_once() -> None:
    raw = RawApp()
    answers = run(
        batch(
            BatchMiddleware(raw),
            sub("PUT", "/a", b"first", (("Content-Type", "text/plain"),)),
            sub("PUT", "/b", b""),
            sub("GET", "/c"),
        )
    )
    assert [part_json(a)["body"] for a in answers] == ["first", "", ""]
    assert part_header(answers[0], "Content-Length") is not None


def test_nothing_context_local_or_in_state_leaks_between_parts() -> None:
    raw = RawApp()
    app = BatchMiddleware(raw)

    async def scenario() -> list[Any]:
        REQUEST_VAR.set("the batch request's")
        scope = http_scope("POST", "/batch", [("content-type", MULTIPART)], state={"pool": 1})
        answers = await batch(
            app, sub("GET", "/var?name=a"), sub("GET", "/var?name=b"), scope=scope
        )
        assert REQUEST_VAR.get() == "the batch request's"
        assert scope["state"] == {"pool": 1}
        return [part_json(a) for a in answers]

    assert run(scenario()) == [
        {"before": "unset", "state": ["mine", "pool"]},
        {"before": "unset", "state": ["mine", "pool"]},
    ]


@pytest.mark.parametrize("wait", [False, True])
def test_each_part_runs_in_a_task_of_its_own_with_no_trip_round_the_loop(
    wait: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server runs each request in a task of its own: so does a part, even one that answers
    # at once. Starting a task used to cost two turns of the event loop per part.
    monkeypatch.setattr(schedule, "QUICK_PART", 60.0)  # answers go out HOLD_PARTS at a time
    raw = RawApp()
    app = BatchMiddleware(raw)
    count = 64

    async def scenario() -> tuple[int, asyncio.Task[Any] | None]:
        loop = asyncio.get_running_loop()
        turns = 0
        ticking = True

        def tick() -> None:  # runs once in each turn of the loop
            nonlocal turns
            turns += 1
            if ticking:
                loop.call_soon(tick)

        loop.call_soon(tick)
        target = "/task?wait=1" if wait else "/task"
        answers = await batch(app, *[sub("GET", target) for _ in range(count)])
        ticking = False
        assert [a.status for a in answers] == [200] * count
        return turns, asyncio.current_task()

    turns, batch_task = run(scenario())
    assert len(raw.tasks) == count
    assert all(before is after for before, after in raw.tasks)  # one task, to its end
    tasks = [task for task, _ in raw.tasks]
    assert None not in tasks
    assert batch_task not in tasks
    assert len({id(task) for task in tasks}) == count
    # Answering at once costs no turn; waiting, the turn waited for and the batch's wake-up.
    # The loop still turns between the answer's chunks: the server's other requests go on.
    chunks = count // HOLD_PARTS
    assert chunks <= turns <= (2 * count + 2 * chunks if wait else 2 * chunks)


def test_a_part_that_answers_at_once_is_not_waited_for_with_a_future() -> None:
    # A future per part, made, resolved and awaited, was spent for nothing when the part had
    # answered in its task's first step (most do); one that waits is still waited for.
    def futures_made(target: str, count: int) -> int:
        made = 0

        async def scenario() -> None:
            nonlocal made
            loop = asyncio.get_running_loop()
            create_future = loop.create_future

            def counted() -> asyncio.Future[Any]:
                nonlocal made
                made += 1
                return create_future()

            loop.create_future = counted  # type: ignore[method-assign]
            answers = await batch(BatchMiddleware(RawApp()), *[sub("GET", target)] * count)
            assert [a.status for a in answers] == [200] * count

        run(scenario())
        return made

    assert futures_made("/task", 16) == futures_made("/task", 1)
    assert futures_made("/task?wait=1", 16) > futures_made("/task?wait=1", 1)


def test_a_loop_task_factory_makes_the_part_tasks() -> None:
    # Parts' tasks are made without loop.create_task when the loop has no task factory; one
    # that has one (instrumentation, say) still makes them.
    made: list[asyncio.Task[Any]] = []
    raw = RawApp()

    def factory(
        loop: asyncio.AbstractEventLoop, coroutine: Any, /, **kwargs: Any
    ) -> asyncio.Task[Any]:
        task = asyncio.Task(coroutine, loop=loop, **kwargs)
        made.append(task)
        return task

    async def scenario() -> None:
        asyncio.get_running_loop().set_task_factory(factory)
        answers = await batch(BatchMiddleware(raw), *[sub("GET", "/task")] * 3)
        assert [a.status for a in answers] == [200] * 3

    run(scenario())
    tasks = [task for task, _ in raw.tasks]
    assert len(tasks) == 3
    assert all(any(task is mine for mine in made) for task in tasks)


async def _started(coroutine: Coroutine[Any, Any, None]) -> tuple[asyncio.Task[None], bool]:
    return asgi_parts._start_task(asyncio.get_running_loop(), coroutine)


def test_a_part_task_waiting_in_its_first_step_is_cancelled_where_it_waits() -> None:
    seen: list[object] = []

    async def part(waited: asyncio.Future[None]) -> None:
        seen.append(asyncio.current_task())
        try:
            await waited
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def scenario() -> None:
        waited = asyncio.get_running_loop().create_future()
        task, returned = await _started(part(waited))
        assert not returned
        assert seen == [task]  # its first step ran in its own task, before this returned
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert waited.cancelled()  # what it waited for, as a task cancels it
        assert seen[-1] == "cancelled"

    run(scenario())


def test_a_part_task_that_waits_goes_on_in_the_same_task_and_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    seen: list[object] = []

    async def part(waited: asyncio.Future[str]) -> None:
        before = asyncio.current_task()
        var.set("part")
        seen.append(await waited)
        seen.extend([asyncio.current_task() is before, var.get()])

    async def scenario() -> None:
        var.set("batch")
        waited: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task, _ = await _started(part(waited))
        assert var.get() == "batch"
        waited.set_result("got")
        await task
        assert seen == ["got", True, "part"]

    run(scenario())


def test_a_part_task_over_in_its_first_step_ends_as_it_did() -> None:
    async def fails() -> None:
        raise ValueError("in the first step")

    async def returns() -> None:
        return None

    async def scenario() -> None:
        failed, returned = await _started(fails())
        assert not returned
        with pytest.raises(ValueError, match="first step"):
            await failed
        done, returned = await _started(returns())
        assert returned or done.done()
        done.cancel()  # over already: cancelling it changes nothing
        await asyncio.sleep(0)
        assert not done.cancelled()
        assert done.result() is None

    run(scenario())


def test_a_part_task_started_outside_a_task_starts_at_the_next_turn() -> None:
    started: list[tuple[asyncio.Task[None], bool]] = []

    async def part() -> None:
        return None

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.call_soon(lambda: started.append(asgi_parts._start_task(loop, part())))
        await asyncio.sleep(0)
        task, returned = started[0]
        assert not returned
        await task

    run(scenario())


def _sleepers(
    raw: RawApp, names: list[str], seconds: float, on_body: Callable[[bytes], None]
) -> Exchange:
    """A batch of ``/sleep`` parts; ``on_body`` sees each answer body message as it is sent."""

    async def on_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            on_body(message["body"])

    parts = [sub("GET", f"/sleep?s={seconds}&name={name}") for name in names]
    return run(
        request(
            BatchMiddleware(raw),
            "POST",
            "/batch",
            headers=[("content-type", MULTIPART)],
            body=_body(*parts),
            on_send=on_send,
        )
    )


def test_parts_run_in_order_and_each_answer_streams_before_the_next_part_runs() -> None:
    raw = RawApp()
    sent_while: list[list[str]] = []
    names = ["a", "b", "c"]
    answer = _sleepers(raw, names, 0.01, lambda _: sent_while.append(list(raw.events)))
    assert [part_json(p)["name"] for p in answer.parts()] == names
    assert raw.events == ["start a", "end a", "start b", "end b", "start c", "end c"]
    assert sent_while[:3] == [raw.events[:2], raw.events[:4], raw.events]
    assert raw.most_running == 1


def test_answers_of_quick_parts_are_sent_together(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every part counts as quick here, however loaded the machine: grouping is the point.
    monkeypatch.setattr(schedule, "QUICK_PART", 60.0)
    messages: list[bytes] = []
    names = [str(i) for i in range(2 * HOLD_PARTS + 3)]
    answer = _sleepers(RawApp(), names, 0, messages.append)
    assert [part_json(p)["name"] for p in answer.parts()] == names
    # HOLD_PARTS answers a message, then the rest with the close delimiter.
    assert [m.count(b"HTTP/1.1 200 OK") for m in messages] == [HOLD_PARTS, HOLD_PARTS, 3]
    assert messages[-1].endswith(b"--\r\n")


def test_a_part_is_answered_without_waiting_for_its_background_work() -> None:
    raw = RawApp()
    answers = run(
        batch(
            BatchMiddleware(raw),
            sub("GET", "/background?name=1"),
            sub("GET", "/sleep?s=0&name=next"),
        )
    )
    assert [a.status for a in answers] == [200, 200]
    assert raw.events[:2] == ["answered", "start next"]  # the next part did not wait
    assert raw.background_done == ["1"]  # but the batch request ended after it


def test_independent_parts_run_concurrently_up_to_the_bound() -> None:
    raw = RawApp(meeting=asyncio.Barrier(3))  # three at once for certain: a fourth would show
    app = BatchMiddleware(raw, max_workers=8, max_workers_per_request=3)
    parts = [sub("GET", f"/sleep?s=0&meet=1&name={i}") for i in range(9)]
    answers = run(batch(app, *parts))
    assert [part_json(a)["name"] for a in answers] == [str(i) for i in range(9)]
    assert raw.most_running == 3
    assert raw.events[:3] == ["start 0", "start 1", "start 2"]


def test_max_workers_bounds_all_the_batches_of_a_middleware() -> None:
    raw = RawApp(meeting=asyncio.Barrier(2))
    app = BatchMiddleware(raw, max_workers=2, max_workers_per_request=2)

    async def two_batches() -> None:
        await asyncio.gather(
            *[
                batch(app, *[sub("GET", f"/sleep?s=0&meet=1&name={b}{i}") for i in range(3)])
                for b in "xy"
            ]
        )

    run(two_batches())
    assert raw.most_running == 2
    assert len(raw.seen) == 6


def test_dependencies_hold_when_parts_run_concurrently() -> None:
    raw = RawApp()
    app = BatchMiddleware(raw, max_workers=4)
    parts = [
        sub("GET", "/sleep?s=0&after=free&name=slow", content_id="<slow>"),
        sub("GET", "/sleep?s=0&name=after", content_id="<after>", depends_on=("<slow>",)),
        sub("GET", "/sleep?s=0&name=free", content_id="<free>"),
        sub("GET", "/sleep?s=0&status=404&name=bad", content_id="<bad>"),
        sub("GET", "/sleep?s=0&name=never", depends_on=("bad",)),
    ]
    answers = run(batch(app, *parts))
    assert [a.status for a in answers] == [200, 200, 200, 404, 424]
    assert raw.events.index("start after") > raw.events.index("end slow")
    assert raw.events.index("end free") < raw.events.index("end slow")
    assert "start never" not in raw.events


@pytest.mark.parametrize("workers", [1, 3])
def test_parts_not_started_by_the_deadline_are_503_parts(workers: int) -> None:
    raw = RawApp()
    app = BatchMiddleware(raw, deadline=0.1, max_workers=workers)
    parts = [sub("GET", f"/sleep?s=0.15&name={i}") for i in range(workers + 1)]
    answers = run(batch(app, *parts))
    assert [a.status for a in answers] == [200] * workers + [503]
    assert part_header(answers[-1], "Retry-After") == "1"


def test_a_json_batch() -> None:
    raw = RawApp()
    body = encode_json_requests(
        [
            SubRequest(
                "POST", "/people", (("Content-Type", "application/json"),), b'{"a": 1}', "1"
            ),
            SubRequest("GET", "people/alice?x=1", (), b"", "2", ("1",)),
        ]
    )
    answer = _post(BatchMiddleware(raw), body, headers=[("content-type", "application/json")])
    assert answer.status == 200
    responses = answer.json()["responses"]
    assert [r["id"] for r in responses] == ["1", "2"]
    assert json.loads(responses[0]["body"]["body"]) == {"a": 1}  # re-serialised on the way
    assert responses[1]["body"]["path"] == "/people/alice"


def test_a_client_that_leaves_while_the_answer_streams_stops_the_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = RawApp()
    body = _body(*[sub("GET", f"/sleep?s=0.01&name={i}") for i in range(20)])
    answer = run(
        request(
            BatchMiddleware(raw),
            "POST",
            "/batch",
            headers=[("content-type", MULTIPART)],
            body=body,
            disconnect_after=2,
        )
    )
    assert len(answer.body_chunks) == 2
    assert 2 <= len(raw.seen) <= 3  # the part running when the client left may finish
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_options_are_checked_when_the_middleware_is_built() -> None:
    misspelt: dict[str, Any] = {"max_part": 3}
    with pytest.raises(TypeError, match="max_part"):
        BatchMiddleware(RawApp(), **misspelt)
    with pytest.raises(ValueError, match="max_workers must be a positive integer"):
        BatchMiddleware(RawApp(), max_workers=0)
