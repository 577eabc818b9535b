"""A small ASGI application written against the bare protocol (no framework), so the ASGI
middleware tests see exactly the messages and scopes the middleware produces."""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Set by the test around the batch request, and by /var inside a part.
REQUEST_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("request_var")

#: Seconds a part waits for what comes at once when the middleware behaves: only a hang (a
#: part that never starts) runs out of it.
PATIENCE = 10.0


def jsonable_scope(scope: dict[str, Any], body: bytes) -> dict[str, Any]:
    """What a view could learn from its scope, in JSON."""
    return {
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "root_path": scope.get("root_path"),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "state": sorted(scope.get("state", {})),
        "body": body.decode("latin-1"),
    }


@dataclass
class RawApp:
    """Routes by path; records what it saw in ``seen`` (scopes) and ``events``.

    ``/sleep`` parts can wait for one another instead of for the clock (so a loaded machine
    cannot change the order a test checks): ``?after=x`` until part ``x`` ended, ``?meet=1``
    at the ``meeting`` barrier, then ``?s=`` seconds (0.05 by default).
    """

    seen: list[dict[str, Any]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    running: int = 0
    most_running: int = 0
    lifespans: list[dict[str, Any]] = field(default_factory=list)
    websockets: list[dict[str, Any]] = field(default_factory=list)
    background_done: list[str] = field(default_factory=list)
    #: The task each ``/task`` part ran in, before and after it waited (kept alive, so no
    #: two can share an id).
    tasks: list[tuple[asyncio.Task[Any] | None, asyncio.Task[Any] | None]] = field(
        default_factory=list
    )
    meeting: asyncio.Barrier | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            self.lifespans.append(scope)
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope.setdefault("state", {})["pool"] = "the pool"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "websocket":
            self.websockets.append(scope)
            await send({"type": "websocket.close", "code": 1000})
            return
        self.seen.append(scope)
        await self.http(scope, receive, send)

    async def http(  # noqa: PLR0915 (one branch per route: a routing table)
        self, scope: dict[str, Any], receive: Receive, send: Send
    ) -> None:
        path = scope["path"]
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if path == "/sleep":
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.events.append(f"start {query.get('name')}")
            await asyncio.wait_for(self._hold(query), PATIENCE)
            self.events.append(f"end {query.get('name')}")
            self.running -= 1
            status = int(query.get("status", "200"))
            await respond(send, {"name": query.get("name")}, status)
        elif path == "/raise":
            raise RuntimeError("the view failed")
        elif path == "/raise-after":
            await respond(send, {"sent": True}, 500)
            raise RuntimeError("failed after answering, as Starlette's error middleware does")
        elif path == "/no-response":
            return
        elif path == "/unfinished":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"half", "more_body": True})
        elif path == "/twice":
            await respond(send, {}, 200)
            await respond(send, {}, 200)
        elif path == "/pathsend":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.pathsend", "path": "/etc/hostname"})
        elif path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for chunk in (b"a", b"", b"b", b"c"):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/disconnect":
            # Answers, then waits for the disconnect a server sends once the response is done.
            await respond(send, {"waited": True}, 200)
            message = await receive()
            self.events.append(message["type"])
        elif path == "/background":
            await respond(send, {"answered": True}, 200)
            self.events.append("answered")
            await asyncio.sleep(0.05)
            self.background_done.append(query.get("name", ""))
        elif path == "/task":
            started_in = asyncio.current_task()
            if "wait" in query:
                await asyncio.sleep(0)
            self.tasks.append((started_in, asyncio.current_task()))
            await respond(send, {}, 200)
        elif path == "/var":
            before = REQUEST_VAR.get("unset")
            REQUEST_VAR.set(f"set by {query.get('name')}")
            scope["state"]["mine"] = query.get("name")
            await respond(send, {"before": before, "state": sorted(scope["state"])}, 200)
        else:
            await respond(send, jsonable_scope(scope, body), int(query.get("status", "200")))

    async def _hold(self, query: dict[str, str]) -> None:
        if "after" in query:
            while f"end {query['after']}" not in self.events:
                await asyncio.sleep(0.001)
        if "meet" in query:
            assert self.meeting is not None, "RawApp(meeting=asyncio.Barrier(n)) to meet"
            await self.meeting.wait()
        await asyncio.sleep(float(query.get("s", "0.05")))


async def respond(send: Send, document: Any, status: int = 200) -> None:
    body = json.dumps(document).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
