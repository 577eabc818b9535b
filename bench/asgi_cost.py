"""Server-side cost of a batch on ASGI (Starlette, FastAPI), in-process, beside its floor.

The workload of ``bench.workload`` (N small JSON calls: GETs and PATCHes of items), served by
the same small API written for Starlette and for FastAPI. For each N:

(a) ``direct``: each call's scope (as uvicorn builds it) and body are prepared beforehand;
    the clock runs while each call is dispatched into the application and its answer
    collected, one after another on one event loop: the framework's own cost, the floor.
(b) ``batch``: one ``POST /batch`` carrying the N calls as one multipart body, answered by
    ``flask_batch.asgi.BatchMiddleware`` around the same application: read and parse the
    body, build each part's scope, dispatch each part (its own task, in an empty context),
    write the streamed answer.

Per part, ``batch - direct`` is what Flask-Batch adds to each call; ``batch / direct`` is the
ratio. Rounds interleave (a) and (b) and the ratio is taken within each round, so slow
moments of a shared machine hit both alike. The ASGI floor is lower than Flask's (a Starlette
call costs a fraction of a Flask one), so the same protocol work weighs more in the ratio.

Run ``python -m bench.asgi_cost``; results go to ``bench/results/asgi_cost.json`` and a
Markdown table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.workload import ITEMS, Call, batch_body, calls, json_body, multipart_content_type
from flask_batch.asgi import BatchMiddleware

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
#: Rounds per N: a stable median in about 20 s on a 2-core machine.
ROUNDS = {10: 200, 100: 40, 1000: 8}

Message = MutableMapping[str, Any]
ASGIApp = Callable[..., Awaitable[None]]


def _items() -> dict[int, dict[str, Any]]:
    return {
        k: {"id": k, "name": f"item-{k}", "count": 0, "note": "", "tags": ["bench", "item"]}
        for k in range(ITEMS)
    }


def starlette_app() -> Starlette:
    """The workload's API in plain Starlette."""
    items = _items()

    async def item(request: StarletteRequest) -> Response:
        item_id = int(request.path_params["item_id"]) % ITEMS
        if request.method == "PATCH":
            changes = await request.json()
            items[item_id].update({k: changes[k] for k in ("count", "note") if k in changes})
        return JSONResponse(items[item_id])

    return Starlette(routes=[Route("/items/{item_id:int}", item, methods=["GET", "PATCH"])])


def fastapi_app() -> FastAPI:
    """The workload's API in FastAPI (validation of the path parameter included)."""
    items = _items()
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, Any]:
        return items[item_id % ITEMS]

    @app.patch("/items/{item_id}")
    async def patch_item(item_id: int, request: Request) -> dict[str, Any]:
        changes = await request.json()
        item = items[item_id % ITEMS]
        item.update({k: changes[k] for k in ("count", "note") if k in changes})
        return item

    return app


APPS: dict[str, Callable[[], ASGIApp]] = {"starlette": starlette_app, "fastapi": fastapi_app}


def scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The scope uvicorn builds for a request on 127.0.0.1."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), *headers],
        "state": {},
    }


def call_request(call: Call) -> tuple[dict[str, Any], bytes]:
    body = json_body(call)
    headers = [(b"accept", b"application/json")]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    return scope(call.method, call.path, headers), body


def batch_request(body: bytes) -> tuple[dict[str, Any], bytes]:
    headers = [
        (b"content-type", multipart_content_type().encode()),
        (b"content-length", b"%d" % len(body)),
    ]
    return scope("POST", "/batch", headers), body


async def dispatch(app: ASGIApp, request: tuple[dict[str, Any], bytes]) -> tuple[int, int]:
    """Run one request through ``app`` as a server would; its status and body size."""
    request_scope, body = request
    received = False
    status = 0
    size = 0

    answered = asyncio.Event()

    async def receive() -> Message:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        # As a server does: the client is connected until its answer is complete.
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                answered.set()

    await app(request_scope, receive, send)
    return status, size


async def run_direct(app: ASGIApp, requests: list[tuple[dict[str, Any], bytes]]) -> int:
    size = 0
    for request in requests:
        status, length = await dispatch(app, request)
        if status != 200:
            raise AssertionError(f"a direct call answered {status}")
        size += length
    return size


async def run_batch(middleware: ASGIApp, body: bytes) -> int:
    status, size = await dispatch(middleware, batch_request(body))
    if status != 200:
        raise AssertionError(f"the batch answered {status}")
    return size


@dataclass
class Cost:
    framework: str
    n: int
    direct: list[float] = field(default_factory=list)
    batch: list[float] = field(default_factory=list)
    ratio: list[float] = field(default_factory=list)  # batch / direct, per round

    def summary(self) -> dict[str, float]:
        direct = statistics.median(self.direct) / self.n * 1e6
        batch = statistics.median(self.batch) / self.n * 1e6
        return {
            "direct_us_per_call": round(direct, 1),
            "batch_us_per_part": round(batch, 1),
            "overhead_us_per_part": round(batch - direct, 1),
            "ratio": round(statistics.median(self.ratio), 2),
        }


async def _timed(run: Awaitable[int]) -> float:
    gc.collect()
    start = time.perf_counter()
    await run
    return time.perf_counter() - start


async def measure(framework: str, n: int, rounds: int) -> Cost:
    app = APPS[framework]()
    middleware = BatchMiddleware(app, max_parts=n, max_body_size=64 * 1024 * 1024)
    work = calls(n)
    body = batch_body(work)
    answer = await run_batch(middleware, body)  # checks every part answers 200
    check = await _check(middleware, body, n)
    assert answer == check
    cost = Cost(framework, n)
    for round_ in range(rounds + 1):  # round 0 warms up and is dropped
        requests = [call_request(call) for call in work]
        a = await _timed(run_direct(app, requests))
        b = await _timed(run_batch(middleware, body))
        if round_:
            cost.direct.append(a)
            cost.batch.append(b)
            cost.ratio.append(b / a)
    return cost


async def _check(middleware: ASGIApp, body: bytes, n: int) -> int:
    chunks: list[bytes] = []
    request_scope, data = batch_request(body)
    sent = False

    async def receive() -> Message:
        nonlocal sent
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    async def send(message: Message) -> None:
        chunks.append(message.get("body", b""))

    await middleware(request_scope, receive, send)
    answer = b"".join(chunks)
    ok = answer.count(b"\r\nHTTP/1.1 200 OK\r\n")
    if ok != n:
        raise AssertionError(f"{ok} of {n} parts answered 200 OK")
    return len(answer)


def run(ns: list[int], frameworks: list[str], log: Callable[[str], None] = print) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for framework in frameworks:
        for n in ns:
            cost = asyncio.run(measure(framework, n, ROUNDS.get(n, 5)))
            summary = cost.summary()
            log(f"{framework:9} N={n:5}: {summary}")
            results.append({**asdict(cost), **summary})
    return {"results": results}


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "| framework | N | direct µs/call | batch µs/part | added µs/part | batch / direct |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in data["results"]:
        lines.append(
            f"| {row['framework']} | {row['n']} | {row['direct_us_per_call']} | "
            f"{row['batch_us_per_part']} | {row['overhead_us_per_part']} | {row['ratio']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.asgi_cost", description=__doc__)
    parser.add_argument("--n", type=int, nargs="*", default=sorted(ROUNDS), help="batch sizes")
    parser.add_argument("--framework", nargs="*", default=list(APPS), choices=list(APPS))
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args(argv)
    data = run(args.n, args.framework)
    print(markdown(data))
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "asgi_cost.json").write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
