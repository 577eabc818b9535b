"""Two versions of the ASGI middleware side by side: ``bench.asgi_cost``'s workload at
N = 1,000 (Starlette, FastAPI) and the whole batch against its ``trivial_app``, in CPU time of
the thread, each version in its own processes, old and new alternating (docs/performance.md,
section ASGI).

``python -m bench.asgi_ab OLD [NEW]``: each is a tree holding ``src/`` and ``bench/`` (a
``git worktree``, or ``git archive REV src bench`` unpacked); NEW is this checkout by default.
Prints, for each measure, the median of every round of each side and the 10th to 90th
percentile. On a shared machine the rounds spread widely: compare medians of many rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import statistics
import time
from pathlib import Path

from bench import asgi_cost
from bench.workload import batch_body, calls
from flask_batch.asgi import BatchMiddleware

ROOT = Path(__file__).resolve().parent.parent
N = 1000


def child(arguments: list[str]) -> dict[str, list[float]]:
    """One process's ``arguments[0]`` rounds, of the version on ``sys.path``: per measure,
    one value a round (b/a, and b - a, a and the trivial batch in µs a part)."""
    rounds = int(arguments[0])
    asgi_cost.clock = time.thread_time
    found: dict[str, list[float]] = {}
    for framework in ("starlette", "fastapi"):
        cost = asyncio.run(asgi_cost.measure(framework, N, rounds))
        found[f"{framework} b/a"] = cost.ratio
        found[f"{framework} b - a"] = [
            (b - a) / N * 1e6 for a, b in zip(cost.direct, cost.batch, strict=True)
        ]
        found[f"{framework} a"] = [a / N * 1e6 for a in cost.direct]
        found[f"{framework} b"] = [b / N * 1e6 for b in cost.batch]
        found[f"{framework} a, a task per call"] = asyncio.run(_direct_in_tasks(framework, rounds))
    middleware = BatchMiddleware(asgi_cost.trivial_app, max_parts=N, max_body_size=64 * 1024 * 1024)
    body = batch_body(calls(N))

    async def trivial() -> list[float]:
        spent = []
        for round_ in range(rounds + 1):  # round 0 warms up and is dropped
            gc.collect()
            start = time.thread_time()
            await asgi_cost.run_batch(middleware, body)
            if round_:
                spent.append((time.thread_time() - start) / N * 1e6)
        return spent

    found["trivial batch"] = asyncio.run(trivial())
    return found


async def _direct_in_tasks(framework: str, rounds: int) -> list[float]:
    """``bench.asgi_cost``'s direct calls (a), each run as a server runs a request: as a task
    of its own, in an empty context (uvicorn makes one per request); µs a call, per round.
    Not part of ``make bench``'s floor: what that floor leaves out (docs/performance.md)."""
    app = asgi_cost.APPS[framework]()
    work = calls(N)
    loop = asyncio.get_running_loop()
    spent = []
    for round_ in range(rounds + 1):  # round 0 warms up and is dropped
        requests = [asgi_cost.call_request(call) for call in work]
        gc.collect()
        start = time.thread_time()
        for request in requests:
            call = asgi_cost.dispatch(app, request)
            await loop.create_task(call, context=contextvars.Context())
        if round_:
            spent.append((time.thread_time() - start) / N * 1e6)
    return spent


def _summary(values: list[float]) -> str:
    ordered = sorted(values)
    tenth = len(ordered) // 10
    return f"{statistics.median(ordered):.2f} ({ordered[tenth]:.2f}-{ordered[-1 - tenth]:.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.asgi_ab", description=__doc__)
    parser.add_argument("old", type=Path, nargs="?", help="the tree of the code before")
    parser.add_argument("new", type=Path, nargs="?", default=ROOT, help="the code after")
    parser.add_argument("--pairs", type=int, default=10, help="processes of each version")
    parser.add_argument("--rounds", type=int, default=8, help="rounds in each process")
    args = parser.parse_args(argv)
    # Here, not above: a child loads this file with an older tree's bench (bench.ab).
    from bench.ab import alternate, measure_in  # noqa: PLC0415

    found = alternate(args, lambda tree: measure_in(__file__, tree, str(args.rounds)))
    # A value a round: per measure, every round of every process.
    sides = {
        side: {name: [v for f in runs for v in f[name]] for name in runs[0]}
        for side, runs in found.items()
    }
    print(f"| {N} parts, CPU time | old | new |\n|---|---:|---:|")
    for name, old in sides["old"].items():
        print(f"| {name} | {_summary(old)} | {_summary(sides['new'][name])} |")
    for framework in ("starlette", "fastapi"):
        ratios = [
            statistics.median(side[f"{framework} b"])
            / statistics.median(side[f"{framework} a, a task per call"])
            for side in (sides["old"], sides["new"])
        ]
        name = f"{framework} b / (a, a task per call), medians"
        print(f"| {name} | {ratios[0]:.2f} | {ratios[1]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
