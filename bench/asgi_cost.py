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
Markdown table is printed. ``--breakdown`` times each source of the middleware's per-part
cost alone instead (:func:`breakdown`; docs/performance.md, section ASGI).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
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
from flask_batch.asgi_parts import Parts, _Exchange, _start_task
from flask_batch.intake import Intake
from flask_batch.schedule import DEFAULT_POLICY, Schedule
from flask_batch.wire.model import DEFAULT_LIMITS

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


#: The clock of the rounds: wall time; ``--cpu`` takes this thread's CPU time instead (on a
#: busy shared machine, the time other processes take the processor is not counted).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}
clock = CLOCKS["wall"]


async def _timed(run: Awaitable[int]) -> float:
    gc.collect()
    start = clock()
    await run
    return clock() - start


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


#: Rounds of the breakdown (each step timed alone on one 1,000-part batch, per round).
BREAKDOWN_ROUNDS = 21
BREAKDOWN_N = 1000
_TRIVIAL_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
}
_TRIVIAL_BODY: Message = {"type": "http.response.body", "body": b"{}"}


async def trivial_app(scope: Message, receive: Any, send: Any) -> None:
    """An application that only answers: what surrounds it is the middleware's own cost."""
    await send(_TRIVIAL_START)
    await send(_TRIVIAL_BODY)


def breakdown_steps(n: int) -> dict[str, Callable[[], Awaitable[object]]]:
    """Each source of the middleware's per-part cost as a step timed alone over ``n`` parts
    (the middleware's internals, as they are now: the steps follow them when they change)."""
    body = batch_body(calls(n))
    content_type = multipart_content_type()
    outer, _ = batch_request(body)
    middleware = BatchMiddleware(trivial_app, max_parts=n, max_body_size=64 * 1024 * 1024)

    def intake() -> Intake:
        read = Intake(
            middleware.limits,
            method="POST",
            content_type=content_type,
            content_length=str(len(body)),
        )
        read.feed(body)
        return read

    first = intake()
    requests = first.close()
    parts = Parts(trivial_app, outer)
    scopes = [parts.scope(request, index) for index, request in enumerate(requests)]
    limit = DEFAULT_LIMITS.max_answer_part_size

    async def exchanged() -> list[_Exchange]:
        done = []
        for request, part_scope in zip(requests, scopes, strict=True):
            exchange = _Exchange(request.body, limit)
            await exchange.run(trivial_app, part_scope)
            done.append(exchange)
        return done

    answers = [exchange.response(limit, {}) for exchange in asyncio.run(exchanged())]

    async def turns() -> None:
        for _ in range(n):
            await asyncio.sleep(0)

    async def direct() -> None:
        for part_scope in scopes:
            await trivial_app(part_scope, None, _discard_message)

    async def tasks() -> None:
        loop = asyncio.get_running_loop()
        for part_scope in scopes:
            await contextvars.Context().run(
                loop.create_task, trivial_app(part_scope, None, _discard_message)
            )

    async def started() -> None:
        loop = asyncio.get_running_loop()
        for part_scope in scopes:
            task, returned = _start_task(loop, trivial_app(part_scope, None, _discard_message))
            if not returned:
                await task

    async def parse() -> None:
        intake().close()

    async def scope_each() -> None:
        for index, request in enumerate(requests):
            parts.scope(request, index)

    async def convert(exchanges: list[_Exchange]) -> None:
        decoded: dict[tuple[Any, ...], Any] = {}  # per batch, as Parts keeps it
        for exchange in exchanges:
            exchange.response(limit, decoded)

    async def write() -> None:
        schedule = Schedule(requests, [()] * n, first.writer, DEFAULT_POLICY)
        for index, answer in enumerate(answers):
            schedule.finish(index, answer)
        for _ in schedule.close():
            pass

    async def whole() -> None:
        await run_batch(middleware, body)

    holder: list[list[_Exchange]] = []

    async def exchange_each() -> None:
        holder[:] = [await exchanged()]

    async def response_each() -> None:
        await convert(holder[0] if holder else await exchanged())

    return {
        "turn": turns,
        "direct": direct,
        "task": tasks,
        "start": started,
        "parse": parse,
        "scope": scope_each,
        "exchange": exchange_each,
        "response": response_each,
        "write": write,
        "whole": whole,
    }


async def _discard_message(message: Message) -> None:
    return None


#: What each row of the breakdown is, and how it is derived from the steps timed.
BREAKDOWN_ROWS = (
    ("a trip round the event loop (`asyncio.sleep(0)`), one per part", "turn"),
    ("a task per part in an empty context, awaited, beyond awaiting the app", "task - direct"),
    ("the part's task as the middleware starts it (`_start_task`)", "start - direct"),
    ("parse: the multipart body read into requests (`Intake`)", "parse"),
    ("the part's scope (`Parts.scope`)", "scope"),
    ("its `receive`/`send`, the ASGI messages, its answer gathered (`_Exchange`)", "exchange"),
    ("the response's headers to `str`, its `SubResponse`", "response"),
    ("the answer written (`Schedule`, the multipart writer)", "write"),
    ("the whole batch, trivial application", "whole"),
    ("the rest (engine, streaming, the driver's awaits)", "rest"),
)


def breakdown(n: int = BREAKDOWN_N, rounds: int = BREAKDOWN_ROUNDS) -> dict[str, list[float]]:
    """CPU µs per part of each step, per round: the steps alternate within each round, so a
    busy moment of a shared machine touches them all (CPU time of this thread, which a
    neighbour's load does not add to)."""
    steps = breakdown_steps(n)
    timings: dict[str, list[float]] = {name: [] for name in steps}

    async def measure_all() -> None:
        for round_ in range(rounds + 1):  # round 0 warms up and is dropped
            for name, step in steps.items():
                gc.collect()
                start = time.thread_time()
                await step()
                spent = (time.thread_time() - start) / n * 1e6
                if round_:
                    timings[name].append(spent)

    asyncio.run(measure_all())
    for step in ("task", "start"):
        timings[f"{step} - direct"] = [
            t - d for t, d in zip(timings[step], timings["direct"], strict=True)
        ]
    parts = ("start - direct", "parse", "scope", "exchange", "response", "write")
    timings["rest"] = [
        timings["whole"][i] - sum(timings[p][i] for p in parts) for i in range(rounds)
    ]
    return timings


def breakdown_markdown(timings: dict[str, list[float]]) -> str:
    lines = ["| per part, N = 1,000 | CPU µs (median, min-max) |", "|---|---:|"]
    for label, key in BREAKDOWN_ROWS:
        values = timings[key]
        lines.append(
            f"| {label} | {statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.asgi_cost", description=__doc__)
    parser.add_argument("--n", type=int, nargs="*", default=sorted(ROUNDS), help="batch sizes")
    parser.add_argument("--framework", nargs="*", default=list(APPS), choices=list(APPS))
    parser.add_argument("--no-save", action="store_true", help="print only")
    parser.add_argument(
        "--breakdown", action="store_true", help="time each source of the per-part cost alone"
    )
    parser.add_argument(
        "--cpu", action="store_true", help="CPU time of this thread instead of wall time"
    )
    args = parser.parse_args(argv)
    global clock  # noqa: PLW0603 (the one setting of a command-line run)
    clock = CLOCKS["cpu" if args.cpu else "wall"]
    if args.breakdown:
        print(breakdown_markdown(breakdown()))
        return 0
    data = run(args.n, args.framework)
    print(markdown(data))
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "asgi_cost.json").write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
