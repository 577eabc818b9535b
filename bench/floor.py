"""Where a batch's wall time goes, end to end: the client's CPU, the server's, and the rest.

Issue 14's end-to-end targets are ratios over round trips plus the *direct cost* (Flask's
own work for the same calls). Whatever is not a round trip or that direct cost must fit in
the margin: at 50 ms and N = 100, 1.15 x (50 ms + direct) leaves about 8.7 ms warm. This
step measures what fills it, with no proxy in the way (0 ms): the scenarios of
``bench.e2e`` against gunicorn on 127.0.0.1, and in the same runs the CPU time of the client
(this process, every thread) and of gunicorn's worker (every thread, from the kernel's
per-thread scheduler statistics, nanoseconds), read when each run's clock starts and
stops. What is left of the wall time is neither process on a CPU: the kernel's socket work
outside either process's time, and waiting to be scheduled on a shared machine; it is
negative where the two processes ran at the same time.

Run ``python -m bench.floor``; results go to ``bench/results/floor.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.e2e import Clock, async_batched, batched, direct_cost, serving
from bench.timing import median
from bench.workload import Call, calls
from flask_batch.client import close_shared_connections

RESULTS = Path(__file__).resolve().parent / "results"
#: Runs per cell (alternating between the cells), and the calls in a batch.
RUNS, N = 15, 100
#: The scenarios measured: (key in the results, bench.e2e's function, warm).
CELLS: tuple[tuple[str, Callable[..., float], bool], ...] = (
    ("batch warm", batched, True),
    ("batch_async warm", async_batched, True),
    ("batch cold", batched, False),
    ("batch_async cold", async_batched, False),
)


def worker_of(master: int) -> int:
    """The process id of gunicorn's one worker: the child of ``master``."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                return int(entry)
    raise RuntimeError(f"gunicorn {master} has no worker")


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of process ``pid`` so far (``/proc/PID/task/*/schedstat``)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as stat:
                total += int(stat.read().split()[0])
        except OSError:  # a thread that just ended
            continue
    return total / 1e9


class Marks:
    """A scenario's clock that also reads both processes' CPU time when it is read."""

    def __init__(self, server: int) -> None:
        self._server = server
        self.readings: list[tuple[float, float, float]] = []

    def __call__(self) -> float:
        # Reading the server's statistics costs this process CPU: outside the span each time.
        if self.readings:
            now, client = time.perf_counter(), time.process_time()
            self.readings.append((now, client, cpu_seconds(self._server)))
        else:
            server = cpu_seconds(self._server)
            client, now = time.process_time(), time.perf_counter()
            self.readings.append((now, client, server))
        return now

    def spans(self) -> dict[str, float]:
        """Wall, client CPU and server CPU between the clock's two readings, in seconds."""
        (wall0, client0, server0), (wall1, client1, server1) = self.readings
        return {"wall": wall1 - wall0, "client": client1 - client0, "server": server1 - server0}


def measure(base: str, worker: int, run: Callable[..., float], warm: bool, work: list[Call]) -> Any:
    marks = Marks(worker)
    clock: Clock = marks
    if not warm:
        close_shared_connections()
    run(base, work, warm, clock=clock)
    return marks.spans()


def run(runs: int = RUNS, log: Callable[[str], None] = print) -> dict[str, Any]:
    work = calls(N)
    samples: dict[str, list[dict[str, float]]] = {key: [] for key, _, _ in CELLS}
    with serving("gunicorn") as (port, master):
        base, worker = f"http://127.0.0.1:{port}", worker_of(master)
        for _, scenario, warm in CELLS:  # first runs: imports, the server's caches
            measure(base, worker, scenario, warm, work)
        for _ in range(runs):
            for key, scenario, warm in CELLS:
                samples[key].append(measure(base, worker, scenario, warm, work))
    # In CPU time, like the processes' shares it is compared with.
    direct = direct_cost(N, 40, time.process_time)
    for key, spans in samples.items():
        log(
            f"{key}: wall {median([s['wall'] for s in spans]) * 1e3:.1f} ms, client CPU "
            f"{median([s['client'] for s in spans]) * 1e3:.1f} ms, server CPU "
            f"{median([s['server'] for s in spans]) * 1e3:.1f} ms"
        )
    log(f"direct cost (CPU): {median(direct) * 1e3:.2f} ms")
    return {"n": N, "runs": runs, "samples": samples, "direct_seconds": direct}


def section(data: Any) -> list[str]:
    """The report's section (``bench.report``)."""
    if not data:
        return []
    n, direct = data["n"], median(data["direct_seconds"]) * 1e3
    lines = [
        "## Where an end-to-end batch's time goes",
        "",
        f"N = {n}, no proxy (0 ms), gunicorn on 127.0.0.1 (`bench/floor.py`): each run's "
        "wall time, and in the same runs the CPU time of the client process and of "
        "gunicorn's worker (all their threads). *Rest* is wall time neither spent on a CPU: "
        "the kernel's socket work outside both, and waiting to be scheduled (negative where "
        "the two ran at once). *Beyond direct* is the server's CPU beyond Flask's own work "
        f"for the same calls in-process ({direct:.2f} ms of CPU time in this run). Issue 14's "
        "targets at "
        f"50 ms leave {0.15 * (50 + direct):.1f} ms warm (1.15 x (50 + {direct:.2f}) - "
        f"50 - {direct:.2f}) and {0.1 * (100 + direct):.1f} ms cold for the client, the "
        "server's work beyond direct and the rest together. Medians in ms over "
        f"{data['runs']} runs (min-max), cells alternating.",
        "",
        "| cell | wall | client CPU | server CPU | server beyond direct | rest |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, spans in data["samples"].items():
        cells = []
        for what in ("wall", "client", "server"):
            values = [span[what] * 1e3 for span in spans]
            cells.append(f"{median(values):.1f} ({min(values):.1f}-{max(values):.1f})")
        beyond = median([span["server"] * 1e3 for span in spans]) - direct
        rest = median([(s["wall"] - s["client"] - s["server"]) * 1e3 for s in spans])
        lines.append(f"| {key} | {' | '.join(cells)} | {beyond:.1f} | {rest:.1f} |")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args(argv)
    data = run(args.runs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "floor.json").write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
