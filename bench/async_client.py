"""100 concurrent requests from ``httpx.AsyncClient`` at 50 ms RTT: auto-batched or not.

The calling code is the same in every scenario (``asyncio.gather`` of N ``client.request``
calls of the workload, half GET, half PATCH with a JSON body); only the client's transport
and protocol change:

- ``http1``: plain httpx over HTTP/1.1 to gunicorn (its pool opens up to 100 connections);
- ``http2``: plain httpx over HTTP/2 (h2c) to Hypercorn, every call a stream of one
  connection;
- ``batched``: :class:`~flask_batch.client.httpx.AsyncBatchTransport` over HTTP/1.1 to
  gunicorn: the N calls become one batch (at most 100 parts each, the server's default);
- ``batched_hypercorn``: the same to Hypercorn over HTTP/1.1 (same server as ``http2``);
- ``batched_http2``: the batch itself over HTTP/2 to Hypercorn.

*cold*: a new client, no connection open (the proxy charges each new connection one round
trip for its handshake); *warm*: the client made the same burst of N calls (GETs) before the
clock starts, so its connections are open (up to 100 for plain HTTP/1.1, one otherwise).
Servers, proxy and client each run in their own process (``bench.e2e.server``,
``bench.e2e.proxy``). Every answer is checked.

``python -m bench.async_client [--rtt 50] [--n 100] [--reps 7] [--quick]``; the results go
to ``bench/results/async_client.json`` and a table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.e2e import TIMEOUT, WrongAnswer, check, proxy, server
from bench.workload import Call, calls
from flask_batch.client.httpx import AsyncBatchTransport

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

Factory = Callable[[str], httpx.AsyncClient]


def plain_http1(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=TIMEOUT)


def plain_http2(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(http1=False, http2=True, timeout=TIMEOUT)


def batched(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=AsyncBatchTransport(f"{base}/batch"), timeout=TIMEOUT)


def batched_http2(base: str) -> httpx.AsyncClient:
    inner = httpx.AsyncHTTPTransport(http1=False, http2=True)
    transport = AsyncBatchTransport(f"{base}/batch", transport=inner)
    return httpx.AsyncClient(transport=transport, timeout=TIMEOUT)


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    server: str  # "gunicorn" or "hypercorn"
    client: Factory
    #: The HTTP version every answer must have come over (the batch's, when batched).
    version: str
    batched: bool


SCENARIOS = [
    Scenario(
        "http1", "plain httpx, HTTP/1.1 (gunicorn)", "gunicorn", plain_http1, "HTTP/1.1", False
    ),
    Scenario("http2", "plain httpx, HTTP/2 (Hypercorn)", "hypercorn", plain_http2, "HTTP/2", False),
    Scenario(
        "batched", "AsyncBatchTransport, HTTP/1.1 (gunicorn)", "gunicorn", batched, "HTTP/1.1", True
    ),
    Scenario(
        "batched_hypercorn",
        "AsyncBatchTransport, HTTP/1.1 (Hypercorn)",
        "hypercorn",
        batched,
        "HTTP/1.1",
        True,
    ),
    Scenario(
        "batched_http2",
        "AsyncBatchTransport, batch over HTTP/2 (Hypercorn)",
        "hypercorn",
        batched_http2,
        "HTTP/2",
        True,
    ),
]


@dataclass
class Cell:
    scenario: str
    variant: str  # "cold" or "warm"
    rtt_ms: float
    n: int
    seconds: list[float] = field(default_factory=list)


async def one_run(scenario: Scenario, base: str, work: list[Call], warm: bool) -> float:
    async with scenario.client(base) as client:
        if warm:
            for response in await asyncio.gather(
                *(client.get(f"{base}/items/{c.item}") for c in work)
            ):
                response.raise_for_status()
        start = time.perf_counter()
        answers = await asyncio.gather(
            *(client.request(c.method, base + c.path, json=c.body) for c in work)
        )
        seconds = time.perf_counter() - start
        for call, response in zip(work, answers, strict=True):
            if not scenario.batched and response.http_version != scenario.version:
                raise WrongAnswer(f"answered over {response.http_version}")
            check(call, response.status_code, response.json())
        return seconds


def run(rtt_ms: float, n: int, reps: int, log: Callable[[str], None] = print) -> list[Cell]:
    work = calls(n)
    cells: list[Cell] = []
    with ExitStack() as stack:
        ports = {kind: stack.enter_context(server(kind)) for kind in ("gunicorn", "hypercorn")}
        direct = {kind: f"http://127.0.0.1:{port}" for kind, port in ports.items()}
        for scenario in SCENARIOS:  # warm up the servers and every code path
            asyncio.run(one_run(scenario, direct[scenario.server], calls(20), False))
        proxies = {kind: stack.enter_context(proxy(port, rtt_ms)) for kind, port in ports.items()}
        bases = {kind: f"http://127.0.0.1:{port}" for kind, port in proxies.items()}
        for variant in ("cold", "warm"):
            row = {s.key: Cell(s.key, variant, rtt_ms, n) for s in SCENARIOS}
            for _ in range(reps):  # interleaved, so that noise hits every scenario alike
                for scenario in SCENARIOS:
                    seconds = asyncio.run(
                        one_run(scenario, bases[scenario.server], work, variant == "warm")
                    )
                    row[scenario.key].seconds.append(seconds)
            for cell in row.values():
                times = sorted(cell.seconds)
                log(
                    f"{variant:4} rtt={rtt_ms:g}ms N={n} {cell.scenario:18} "
                    f"median {statistics.median(times) * 1000:7.1f} ms "
                    f"({times[0] * 1000:.1f}-{times[-1] * 1000:.1f}, {len(times)} runs)"
                )
            cells += row.values()
    return cells


def table(cells: list[Cell]) -> str:
    """A Markdown table: median (min-max) in ms, and each scenario against the batch."""
    labels = {s.key: s.label for s in SCENARIOS}
    lines = [
        "| scenario | cold: median (min-max) | vs batched | warm: median (min-max) | vs batched |",
        "|---|---|---|---|---|",
    ]

    def stats(key: str, variant: str) -> tuple[float, str]:
        cell = next(c for c in cells if c.scenario == key and c.variant == variant)
        times = sorted(cell.seconds)
        middle = statistics.median(times)
        return middle, f"{middle * 1000:.0f} ms ({times[0] * 1000:.0f}-{times[-1] * 1000:.0f})"

    cold_batch, _ = stats("batched", "cold")
    warm_batch, _ = stats("batched", "warm")
    for scenario in SCENARIOS:
        cold, cold_text = stats(scenario.key, "cold")
        warm, warm_text = stats(scenario.key, "warm")
        lines.append(
            f"| {labels[scenario.key]} | {cold_text} | {cold / cold_batch:.1f}x "
            f"| {warm_text} | {warm / warm_batch:.1f}x |"
        )
    return "\n".join(lines)


def document(cells: list[Cell], rtt_ms: float, n: int) -> dict[str, Any]:
    """The results as saved in ``bench/results/async_client.json``."""
    return {
        "rtt_ms": rtt_ms,
        "n": n,
        "load_average_after": os.getloadavg(),
        "scenarios": {s.key: {"label": s.label, "server": s.server} for s in SCENARIOS},
        "cells": [asdict(cell) for cell in cells],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.async_client", description=__doc__)
    parser.add_argument("--rtt", type=float, default=50.0, help="round trip time, ms")
    parser.add_argument("--n", type=int, default=100, help="concurrent requests")
    parser.add_argument("--reps", type=int, default=7, help="runs per cell")
    parser.add_argument("--quick", action="store_true", help="2 runs per cell")
    parser.add_argument("--out", type=Path, default=RESULTS / "async_client.json")
    args = parser.parse_args(argv)
    cells = run(args.rtt, args.n, 2 if args.quick else args.reps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document(cells, args.rtt, args.n), indent=1) + "\n")
    print()
    print(f"{args.n} concurrent requests at {args.rtt:g} ms RTT (ratios: time / batched time)")
    print()
    print(table(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
