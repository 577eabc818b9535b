"""``python -m bench`` (``make bench``): every benchmark, then the report.

``python -m bench [STEP ...]`` runs only the steps named: ``server`` (in-process cost of
multipart and JSON batches, scaling, memory), ``hostile`` (reading hostile bodies against a
plain one), ``gzip`` (bytes on the wire and the CPU of compressing them, both ways),
``parallel`` (parts on a thread pool: waiting views, thread cost), ``groups`` (members of
atomic groups against the same parts outside one, and a real SQLAlchemy hook), ``alpha``
(flask-batch 0.0.2 in its own virtual environment), ``profile`` (the server's steps, and the
httpx transports' own cost per call: ``bench.httpx_cost``), ``e2e`` (end to end through the
latency proxy), ``floor`` (where a batch's wall time goes: the client's CPU, the server's,
the rest: :mod:`bench.floor`), ``connections`` (warm blocks and concurrent splits through
the proxy, before and after: :mod:`bench.connections`), ``async`` (100 concurrent httpx
requests, auto-batched or not), ``asgi`` (``python -m bench.asgi_cost`` in a subprocess,
when that module exists; a failure there is reported and the other steps go on), ``report``
(docs/benchmarks.md and the chart, from the results on disk). ``--quick`` makes ``e2e``,
``connections`` and ``async`` smoke runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    alpha,
    async_client,
    compression,
    connections,
    e2e,
    floor,
    groups,
    hostile,
    httpx_cost,
    machine,
    parallel,
    profile,
    report,
    server_cost,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
STEPS = (
    "server",
    "hostile",
    "gzip",
    "parallel",
    "groups",
    "alpha",
    "profile",
    "e2e",
    "floor",
    "connections",
    "async",
    "asgi",
    "report",
)
#: ``bench.async_client``: 100 concurrent requests at 50 ms, runs per cell (2 with --quick).
ASYNC_RTT_MS, ASYNC_N, ASYNC_REPS = 50.0, 100, 7


def _save(name: str, data: Any) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(json.dumps(data, indent=1) + "\n")


def run_hostile() -> None:
    _save("hostile.json", hostile.run())


def run_gzip() -> None:
    _save("gzip.json", compression.run())


def run_connections(quick: bool) -> None:
    _save("connections.json", connections.run(runs=2 if quick else connections.RUNS))


def run_floor() -> None:
    _save("floor.json", floor.run(log=lambda line: print("  " + line)))


def run_groups() -> None:
    _save("groups.json", groups.run())


def run_httpx_cost() -> None:
    cost = httpx_cost.measure()
    for line in httpx_cost.summary(cost):
        print("    " + line)
    _save("httpx_cost.json", cost)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("steps", nargs="*", metavar="STEP", help=", ".join(STEPS))
    parser.add_argument("--quick", action="store_true", help="short e2e and async smoke runs")
    args = parser.parse_args(argv)
    steps: list[str] = args.steps or list(STEPS)
    unknown = set(steps) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)}; the steps are {', '.join(STEPS)}")

    def run_server() -> None:
        _save("server.json", server_cost.run([10, 100, 1000, 10_000]))

    def run_parallel() -> None:
        _save("parallel.json", parallel.run())

    def run_alpha() -> None:
        _save("alpha.json", alpha.run())

    def run_profile() -> None:
        _save("profile.json", profile.run())
        (RESULTS / "profile-pyinstrument.txt").write_text(profile.call_tree())
        run_httpx_cost()

    def run_e2e() -> None:
        e2e.save(e2e.run(e2e.QUICK if args.quick else e2e.Plan()), RESULTS / "e2e.json")

    def run_async() -> None:
        reps = 2 if args.quick else ASYNC_REPS
        cells = async_client.run(ASYNC_RTT_MS, ASYNC_N, reps, log=lambda line: print("  " + line))
        _save("async_client.json", async_client.document(cells, ASYNC_RTT_MS, ASYNC_N))

    def run_asgi() -> None:
        # Its own process and its own module's command line: the step does not depend on that
        # module's internals, and a failure there does not stop the rest of the run.
        if not (ROOT / "bench" / "asgi_cost.py").exists():
            print("  bench/asgi_cost.py does not exist: skipped")
            return
        done = subprocess.run([sys.executable, "-m", "bench.asgi_cost"], cwd=ROOT, check=False)
        if done.returncode:
            print(
                f"  python -m bench.asgi_cost failed (exit {done.returncode}): the report keeps "
                "the previous bench/results/asgi_cost.json, if any",
                file=sys.stderr,
            )

    def run_report() -> None:
        report.main()

    actions: dict[str, Callable[[], None]] = {
        "server": run_server,
        "hostile": run_hostile,
        "gzip": run_gzip,
        "parallel": run_parallel,
        "groups": run_groups,
        "alpha": run_alpha,
        "profile": run_profile,
        "e2e": run_e2e,
        "floor": run_floor,
        "connections": lambda: run_connections(args.quick),
        "async": run_async,
        "asgi": run_asgi,
        "report": run_report,
    }
    measuring = [step for step in STEPS if step in steps and step != "report"]
    described = machine.describe()
    if measuring:
        _save("machine.json", described)
    durations: dict[str, float] = {}
    for step in STEPS:
        if step not in steps:
            continue
        print(f"== {step}", flush=True)
        started = time.perf_counter()
        actions[step]()
        durations[step] = time.perf_counter() - started
        if step != "report" and set(measuring) <= set(durations):
            _save("steps.json", durations)
            described["load_average_end"] = os.getloadavg()
            _save("machine.json", described)
    total = sum(durations.values())
    print(
        f"== done in {total / 60:.1f} minutes: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in durations.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
