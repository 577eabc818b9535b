"""What the httpx transports cost per call beyond httpx's own request handling (issue 14).

N calls of the workload (half GET, half PATCH with a JSON body) are made four ways against
the benchmark's app, in-process, no network:

- *httpx, sync*: ``httpx.Client.request`` for each call, through a transport that answers
  at once (:class:`Immediate`, with the answer the app gives that call directly): httpx's
  own request handling (build the request, cookies, auth, hooks, the response), the floor;
- *batched, sync*: the same calls queued in a ``BatchTransport.batch(client)`` scope, sent
  as one batch to the app in-process (:class:`InProcess`, which times itself: the server's
  time is taken out);
- *httpx, async* and *batched, async*: ``asyncio.gather`` of the calls on an
  ``httpx.AsyncClient``, through :class:`Immediate` or ``AsyncBatchTransport``.

Our cost per call is batched less httpx (each less the server's time), within one round;
rounds alternate the four (each way's fastest of :data:`REPEATS` runs), and the report
quotes medians. ``python -m bench.httpx_cost``
prints them; ``--profile sync|async`` prints a cProfile of the batched calls instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
from flask import Flask

from bench.server_cost import bench_app
from bench.timing import median
from bench.workload import Call, calls
from flask_batch.client.httpx import AsyncBatchTransport, BatchTransport

BASE = "http://localhost"
N = 100
ROUNDS = 15
#: Each way runs this many times in a round, and the round keeps its fastest: on a shared
#: machine a slow run is another process's doing (caches, the other core), not ours.
REPEATS = 3
#: The target of issue 14: our cost per call, µs.
TARGET_US = 30.0
#: The process's CPU time (every thread's): on a shared machine, other processes' time
#: does not count, and the client's work is all CPU (no I/O here).
CLOCK = time.process_time

Answer = tuple[int, list[tuple[str, str]], bytes]


class InProcess(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport (sync and async) that hands each request to a Flask app
    in-process and times itself, so that the client's own work is what remains."""

    def __init__(self, app: Flask) -> None:
        self.client = app.test_client()
        self.seconds = 0.0

    def _answer(self, request: httpx.Request) -> httpx.Response:
        start = CLOCK()
        answer = self.client.open(
            request.url.raw_path.decode("ascii"),
            method=request.method,
            data=request.read(),
            headers=list(request.headers.multi_items()),
        )
        response = httpx.Response(
            answer.status_code,
            headers=list(answer.headers.items()),
            stream=httpx.ByteStream(answer.get_data()),
        )
        self.seconds += CLOCK() - start
        return response

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._answer(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self._answer(request)


class Immediate(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport that answers each call at once, with what the app answered it
    directly: what any transport must do at the least (build a response from bytes)."""

    def __init__(self, answers: dict[tuple[str, str], Answer]) -> None:
        self.answers = answers

    def _answer(self, request: httpx.Request) -> httpx.Response:
        status, headers, body = self.answers[request.method, request.url.path]
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._answer(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self._answer(request)


def direct_answers(app: Flask, work: list[Call]) -> dict[tuple[str, str], Answer]:
    """What the app answers each call made alone."""
    client = app.test_client()
    answers: dict[tuple[str, str], Answer] = {}
    for call in work:
        answer = client.open(call.path, method=call.method, json=call.body)
        answers[call.method, call.path] = (
            answer.status_code,
            list(answer.headers.items()),
            answer.get_data(),
        )
    return answers


def _check(work: list[Call], responses: list[httpx.Response]) -> None:
    if len(responses) != len(work) or any(
        response.status_code != 200 or response.json()["id"] != call.item
        for call, response in zip(work, responses, strict=True)
    ):
        raise AssertionError("a call was answered wrongly")


def sync_direct(client: httpx.Client, work: list[Call]) -> list[httpx.Response]:
    return [client.request(call.method, BASE + call.path, json=call.body) for call in work]


def sync_batched(client: httpx.Client, work: list[Call]) -> list[httpx.Response]:
    transport = client._transport
    assert isinstance(transport, BatchTransport)
    with transport.batch(client) as batch:
        responses = [batch.request(call.method, BASE + call.path, json=call.body) for call in work]
    return list(responses)


async def async_calls(client: httpx.AsyncClient, work: list[Call]) -> list[httpx.Response]:
    return list(
        await asyncio.gather(
            *(client.request(call.method, BASE + call.path, json=call.body) for call in work)
        )
    )


def _clients(
    app: Flask, answers: dict[tuple[str, str], Answer]
) -> dict[str, tuple[Callable[[], Any], InProcess | None]]:
    """Each way, as a factory of its client, and the in-process server it uses (if any)."""
    ways: dict[str, tuple[Callable[[], Any], InProcess | None]] = {}
    immediate = Immediate(answers)
    server = InProcess(app)
    ways["sync_httpx"] = (lambda: httpx.Client(transport=immediate), None)
    ways["sync_batched"] = (
        lambda: httpx.Client(transport=BatchTransport(BASE + "/batch", transport=server)),
        server,
    )
    ways["async_httpx"] = (lambda: httpx.AsyncClient(transport=immediate), None)
    ways["async_batched"] = (
        lambda: httpx.AsyncClient(transport=AsyncBatchTransport(BASE + "/batch", transport=server)),
        server,
    )
    return ways


def _time_sync(client: httpx.Client, work: list[Call], batched: bool) -> tuple[float, Any]:
    gc.collect()
    start = CLOCK()
    responses = sync_batched(client, work) if batched else sync_direct(client, work)
    seconds = CLOCK() - start
    client.close()
    return seconds, responses


def _time_async(client: httpx.AsyncClient, work: list[Call]) -> tuple[float, Any]:
    async def timed() -> tuple[float, Any]:
        async with client:
            gc.collect()
            start = CLOCK()
            responses = await async_calls(client, work)
            return CLOCK() - start, responses

    return asyncio.run(timed())


def measure(n: int = N, rounds: int = ROUNDS) -> dict[str, Any]:
    """µs per call of each way (its server's time taken out), and our cost per call (batched
    less httpx, within each round), for the sync and the async transport."""
    app = bench_app()
    work = calls(n)
    ways = _clients(app, direct_answers(app, work))
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for round_ in range(rounds + 1):
        for name, (make, server) in ways.items():
            best = float("inf")
            for _ in range(REPEATS):
                served = server.seconds if server else 0.0
                client = make()
                if name.startswith("sync"):
                    seconds, responses = _time_sync(client, work, name.endswith("batched"))
                else:
                    seconds, responses = _time_async(client, work)
                _check(work, responses)
                if server:
                    seconds -= server.seconds - served
                best = min(best, seconds)
            if round_:  # round 0 warms up
                samples[name].append(best / n * 1e6)
    result: dict[str, Any] = {
        "n": n,
        "rounds": rounds,
        "repeats": REPEATS,
        "target_us": TARGET_US,
    }
    for kind in ("sync", "async"):
        ours = [
            batched - direct
            for batched, direct in zip(
                samples[f"{kind}_batched"], samples[f"{kind}_httpx"], strict=True
            )
        ]
        result[kind] = {
            "httpx_us": samples[f"{kind}_httpx"],
            "batched_us": samples[f"{kind}_batched"],
            "ours_us": ours,
        }
    return result


def summary(result: dict[str, Any]) -> list[str]:
    """One line per transport: medians and the spread of our cost."""
    lines = []
    for kind, name in (("sync", "BatchTransport"), ("async", "AsyncBatchTransport")):
        cost = result[kind]
        ours = cost["ours_us"]
        lines.append(
            f"{name:20} httpx {median(cost['httpx_us']):6.1f} us/call, batched "
            f"{median(cost['batched_us']):6.1f}, ours {median(ours):6.1f} "
            f"({min(ours):.1f}-{max(ours):.1f}; target <= {result['target_us']:g})"
        )
    return lines


def profile(kind: str, n: int = N, runs: int = 20, top: int = 40) -> None:
    """Print a cProfile of ``runs`` batches of ``n`` calls (``kind``: sync or async), the
    client's functions by cumulative time (the server's is under ``InProcess._answer``)."""
    app = bench_app()
    work = calls(n)
    server = InProcess(app)

    def once() -> list[httpx.Response]:
        if kind == "sync":
            with httpx.Client(transport=BatchTransport(BASE + "/batch", transport=server)) as c:
                return sync_batched(c, work)

        async def gathered() -> list[httpx.Response]:
            transport = AsyncBatchTransport(BASE + "/batch", transport=server)
            async with httpx.AsyncClient(transport=transport) as client:
                return await async_calls(client, work)

        return asyncio.run(gathered())

    _check(work, once())  # warm up
    profiler = cProfile.Profile()
    for _ in range(runs):
        _check(work, profiler.runcall(once))
    stats = pstats.Stats(profiler).sort_stats("cumulative")
    stats.print_stats("flask_batch/client|flask_batch/wire|httpx/_client|_answer", top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.httpx_cost", description=__doc__)
    parser.add_argument("--n", type=int, default=N)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--profile", choices=("sync", "async"))
    args = parser.parse_args(argv)
    if args.profile:
        profile(args.profile, args.n)
        return 0
    for line in summary(measure(args.n, args.rounds)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
