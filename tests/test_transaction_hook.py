"""The transaction hook as an option, and the edges of a group's run the servers cannot show.

Why: a hook of the wrong kind would never run (a coroutine function on a WSGI route) or block
the event loop (a plain function on an ASGI route), so each route refuses it when it is
built, not at the first batch. And a group must roll back however it ends: when the deadline
passes during its last member (nothing left to refuse, but too late to commit), and when the
batch is cancelled while a member runs (the ASGI server stops, the client leaves).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Blueprint, Flask

from flask_batch import Batch, add_batch_route
from flask_batch.asgi import BatchMiddleware as AsgiMiddleware
from flask_batch.execution import Execution, astream_answers, stream_answers
from flask_batch.options import resolve_options
from flask_batch.schedule import Policy
from flask_batch.transactions import Group
from flask_batch.wire.json_answers import JsonResponseWriter
from flask_batch.wire.model import SubRequest, SubResponse
from flask_batch.wsgi import BatchMiddleware as WsgiMiddleware

OK = SubResponse(200, "OK", (), b"")


class Recorder:
    """A hook that records its calls, sync and async."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, group: Group) -> Recorder:
        self.calls.append(f"begin {group.name}")
        return self

    def commit(self) -> None:
        self.calls.append("commit")

    def rollback(self) -> None:
        self.calls.append("rollback")


class AsyncRecorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, group: Group) -> AsyncRecorder:
        self.calls.append(f"begin {group.name}")
        return self

    async def commit(self) -> None:
        self.calls.append("commit")

    async def rollback(self) -> None:
        self.calls.append("rollback")


def sync_begin(group: Group) -> Recorder:
    return Recorder()(group)


async def async_begin(group: Group) -> AsyncRecorder:
    return await AsyncRecorder()(group)


async def app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("never called")


def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
    raise AssertionError("never called")


def members(size: int) -> list[SubRequest]:
    group = Group("g", size, 0)
    return [SubRequest("PATCH", f"/{i}", (), b"", str(i), (), None, group) for i in range(size)]


@pytest.mark.parametrize(
    "build",
    [
        lambda hook: add_batch_route(Flask(__name__), transaction=hook),
        lambda hook: add_batch_route(Blueprint("api", __name__), transaction=hook),
        lambda hook: Batch(transaction=hook),
        lambda hook: WsgiMiddleware(wsgi_app, transaction=hook),
    ],
    ids=["flask", "blueprint", "extension", "wsgi"],
)
def test_a_wsgi_route_refuses_a_coroutine_hook(build: Callable[[object], object]) -> None:
    with pytest.raises(TypeError, match="must be a function"):
        build(async_begin)
    with pytest.raises(TypeError, match="must be a function"):
        build(AsyncRecorder())  # an async __call__
    build(sync_begin)


def test_an_asgi_route_refuses_a_plain_hook() -> None:
    with pytest.raises(TypeError, match="must be a coroutine function"):
        AsgiMiddleware(app, transaction=sync_begin)
    AsgiMiddleware(app, transaction=async_begin)
    AsgiMiddleware(app, transaction=AsyncRecorder())


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"transaction": "begin"}, "transaction must be a callable"),
        ({"non_atomic_groups": 1}, "non_atomic_groups must be True or False"),
        ({"transaction": sync_begin, "non_atomic_groups": True}, "give one or the other"),
    ],
)
def test_invalid_group_options_are_refused(options: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        resolve_options({}, options)


def test_the_hook_may_come_from_the_config() -> None:
    settings = resolve_options({"BATCH_TRANSACTION": sync_begin}, {})
    assert settings.execution == Execution(transaction=sync_begin)


def test_a_deadline_that_passes_during_the_last_member_rolls_back() -> None:
    hook = Recorder()

    def dispatch(request: SubRequest, index: int) -> SubResponse:
        time.sleep(0.1)  # the last member outlasts the deadline
        return OK

    policy = Policy(deadline=time.monotonic() + 0.05, transaction=hook)
    body = b"".join(stream_answers(members(1), [()], dispatch, JsonResponseWriter(), policy=policy))
    (answer,) = [item["status"] for item in json.loads(body)["responses"]]
    assert answer == 503
    assert b"before the group could commit; it was rolled back" in body
    assert hook.calls == ["begin g", "rollback"]


def test_a_group_cancelled_while_a_member_runs_rolls_back() -> None:
    hook = AsyncRecorder()
    started = asyncio.Event()

    async def dispatch(request: SubRequest, index: int) -> SubResponse:
        started.set()
        await asyncio.Event().wait()  # never answers
        return OK

    async def run() -> None:
        answer = astream_answers(
            members(2), [(), ()], dispatch, JsonResponseWriter(), policy=Policy(transaction=hook)
        )
        reading = asyncio.ensure_future(anext(answer))
        await started.wait()
        reading.cancel()  # the server stops the batch
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        await answer.aclose()

    asyncio.run(run())
    assert hook.calls == ["begin g", "rollback"]
