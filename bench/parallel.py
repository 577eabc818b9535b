"""Parallel execution of a batch's parts (issue 5), in-process: what it gains and what it costs.

The batch route runs independent parts on a thread pool when ``max_workers`` is above 1
(``add_batch_route(app, max_workers=W, max_workers_per_request=W)``); with 1, the default,
parts run one after another in the server's thread. One app per W, side by side:

1. **Waiting parts**, where threads help: the views wait (``GET /wait/<ms>`` sleeps, as a
   view waiting on a database or another service would), the GIL is free meanwhile.
   ``wait20``: 20 parts that wait 10 to 50 ms each (600 ms in all); ``mixed100``: the
   workload's first 80 calls (GETs and PATCHes, CPU only) with those 20 waiting parts among
   them (every fifth part). Wall time of the whole batch at W = 1, 4 and 20, the speed-up
   over W = 1 (taken within each round), and the floor: the waiting alone, each part started
   in request order as soon as one of the W threads is free (as the engine does), at no
   cost (the CPU-only parts count as 0).
2. **Thread cost**, where threads cannot help: the plain workload (no waiting, pure Python,
   so the GIL lets one part run at a time), W = 4 against W = 1: the price of running the
   parts on pool threads (issue 14's target: at most 1.15).

Rounds interleave every W, so slow moments of the shared machine hit them alike. Every
answer is checked (every part 200 OK). Run ``python -m bench.parallel``; results go to
``bench/results/parallel.json``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify

from bench.server_cost import MIB, batch_environ, run_batch
from bench.timing import median, start_response, timed
from bench.workload import Call, batch_body, calls, create_app
from flask_batch import add_batch_route

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WORKERS = (1, 4, 20)
#: Rounds of the waiting workloads (each round runs every W once: about 1.7 s).
WAIT_ROUNDS = 7
#: Thread cost: N -> rounds (each round runs W = 1 and W = 4 once).
CPU_ROUNDS = {100: 60, 1000: 15}
CPU_WORKERS = 4


def waits_ms(count: int = 20, shortest: int = 10, longest: int = 50) -> list[int]:
    """``count`` waits spread evenly from ``shortest`` to ``longest`` ms, in a mixed order."""
    spread = [shortest + (longest - shortest) * i // (count - 1) for i in range(count)]
    return [spread[i * 7 % count] for i in range(count)]  # 7 is prime to 20: a permutation


def floor_ms(waits: list[int], workers: int) -> int:
    """When the last of ``waits`` (in order, each on the first free of ``workers``) ends."""
    free = [0] * workers
    for ms in waits:
        heapq.heappush(free, heapq.heappop(free) + ms)
    return max(free)


def wait_calls(waits: list[int]) -> list[Call]:
    return [Call("GET", f"/wait/{ms}", None) for ms in waits]


def mixed_calls(n: int = 100, every: int = 5) -> list[Call]:
    """``n`` parts: every ``every``-th waits (see :func:`waits_ms`), the others are the
    workload's calls."""
    waiting = iter(wait_calls(waits_ms(n // every)))
    plain = iter(calls(n - n // every))
    return [next(waiting) if i % every == every - 1 else next(plain) for i in range(n)]


def parallel_app(workers: int) -> Flask:
    """The workload app plus ``GET /wait/<ms>``, its batch route running ``workers`` parts
    at once."""

    def setup(app: Flask) -> None:
        def wait(ms: int) -> Response:
            time.sleep(ms / 1000)
            return jsonify({"waited_ms": ms})

        app.add_url_rule("/wait/<int:ms>", "wait", wait, methods=["GET"])
        add_batch_route(
            app,
            max_workers=workers,
            max_workers_per_request=workers,
            max_parts=20_000,
            max_body_size=128 * MIB,
        )

    return create_app(setup)


def check(app: Flask, work: list[Call]) -> None:
    """Every part answered 200 OK, and the batch itself too."""
    statuses: list[str] = []

    def record(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], object]:
        statuses.append(status)
        return start_response(status, headers)

    answer = b"".join(app.wsgi_app(batch_environ(batch_body(work)), record))
    ok = answer.count(b"\r\nHTTP/1.1 200 OK\r\n")
    if statuses != ["200 OK"] or ok != len(work):
        raise AssertionError(f"batch answered {statuses}, {ok} of {len(work)} parts 200 OK")


@dataclass
class Waiting:
    workload: str
    parts: int
    waits_ms: list[int]
    #: W (as text) -> seconds per round; speed-up over W = 1 per round; the floor, seconds.
    seconds: dict[str, list[float]] = field(default_factory=dict)
    speedup: dict[str, list[float]] = field(default_factory=dict)
    floor: dict[str, float] = field(default_factory=dict)


def measure_waiting(
    name: str, work: list[Call], apps: dict[int, Flask], rounds: int = WAIT_ROUNDS
) -> Waiting:
    # Every part in request order; the CPU-only ones wait 0 ms.
    waits = [int(c.path.rsplit("/", 1)[1]) if c.path.startswith("/wait/") else 0 for c in work]
    result = Waiting(name, len(work), [ms for ms in waits if ms])
    body = batch_body(work)
    for app in apps.values():
        check(app, work)
    for workers in apps:
        result.seconds[str(workers)] = []
        result.speedup[str(workers)] = []
        result.floor[str(workers)] = floor_ms(waits, workers) / 1000
    for round_ in range(rounds + 1):  # round 0 warms up (and starts the pools), dropped
        this_round = {
            workers: timed(partial(run_batch, app, batch_environ(body)))[0]
            for workers, app in apps.items()
        }
        if round_:
            for workers, seconds in this_round.items():
                result.seconds[str(workers)].append(seconds)
                result.speedup[str(workers)].append(this_round[1] / seconds)
    return result


@dataclass
class ThreadCost:
    n: int
    workers: int
    sequential: list[float] = field(default_factory=list)  # W = 1, seconds
    pooled: list[float] = field(default_factory=list)  # W = workers, seconds
    ratio: list[float] = field(default_factory=list)  # pooled / sequential, per round


def measure_thread_cost(n: int, rounds: int, apps: dict[int, Flask]) -> ThreadCost:
    work = calls(n)
    body = batch_body(work)
    one, pooled = apps[1], apps[CPU_WORKERS]
    check(one, work)
    check(pooled, work)
    cost = ThreadCost(n, CPU_WORKERS)
    for round_ in range(rounds + 1):
        a, _ = timed(partial(run_batch, one, batch_environ(body)))
        b, _ = timed(partial(run_batch, pooled, batch_environ(body)))
        if round_:
            cost.sequential.append(a)
            cost.pooled.append(b)
            cost.ratio.append(b / a)
    return cost


def run(log: Callable[[str], None] = print) -> dict[str, Any]:
    apps = {workers: parallel_app(workers) for workers in WORKERS}
    waiting = []
    for name, work in (("wait20", wait_calls(waits_ms())), ("mixed100", mixed_calls())):
        result = measure_waiting(name, work, apps)
        log(
            f"  {name:9} "
            + ", ".join(
                f"W={w}: {median(s) * 1000:6.1f} ms ({median(result.speedup[w]):.1f}x, "
                f"floor {result.floor[w] * 1000:.0f} ms)"
                for w, s in result.seconds.items()
            )
        )
        waiting.append(asdict(result))
    costs = []
    for n, rounds in CPU_ROUNDS.items():
        cost = measure_thread_cost(n, rounds, apps)
        log(
            f"  N={n:<5} no waiting: W=1 {median(cost.sequential) / n * 1e6:6.1f} us/part, "
            f"W={cost.workers} {median(cost.pooled) / n * 1e6:6.1f} us/part "
            f"({median(cost.ratio):.2f}x)"
        )
        costs.append(asdict(cost))
    return {"workers": list(WORKERS), "waiting": waiting, "thread_cost": costs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.parallel", description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS / "parallel.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = run()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"parallel: {time.perf_counter() - started:.0f} s, written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
