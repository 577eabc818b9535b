"""Where a batch's wall time goes, end to end: the client's CPU, the server's, and the rest.

Issue 14's end-to-end targets are ratios over round trips plus the *direct cost* (Flask's
own work for the same calls). Whatever is not a round trip or that direct cost must fit in
the margin: at 50 ms and N = 100, 1.15 x (50 ms + direct) leaves about 8.7 ms warm. This
step measures what fills it: the batch scenarios of ``bench.e2e`` against gunicorn on
127.0.0.1, straight (0 ms) and through the latency proxy at 50 ms, reading in the same runs
the CPU time of the client (this process, every thread), of gunicorn's worker and of the
proxy (every thread, from the kernel's per-thread scheduler statistics, in nanoseconds)
when each run's clock starts and stops. What is left of the wall time beyond the nominal
round trips is no process on a CPU: the kernel's socket work outside the three, the proxy's
timers, and waiting to be scheduled on a shared machine; it is negative where processes ran
at the same time.

Run ``python -m bench.floor``; results go to ``bench/results/floor.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.e2e import Clock, async_batched, batched, direct_cost, proxying, serving
from bench.timing import median
from bench.workload import Call, calls

RESULTS = Path(__file__).resolve().parent / "results"
#: Runs per cell (alternating between the cells), and the calls in a batch.
RUNS, N = 9, 100
#: The networks: nominal round trip in ms (0: no proxy at all).
RTTS = (0.0, 50.0)
#: The scenarios measured: (key in the results, bench.e2e's function, its variant).
CELLS: tuple[tuple[str, Callable[..., float], str], ...] = (
    ("batch warm", batched, "warm"),
    ("batch_async warm", async_batched, "warm"),
    ("batch cold", batched, "cold"),
    ("batch_async cold", async_batched, "cold"),
)
#: What each reading holds, in order.
SHARES = ("wall", "client", "server", "proxy")


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


def cpu_seconds(pid: int | None) -> float:
    """CPU time of every thread of process ``pid`` so far (``/proc/PID/task/*/schedstat``);
    0 for no process."""
    if pid is None:
        return 0.0
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as stat:
                total += int(stat.read().split()[0])
        except OSError:  # a thread that just ended
            continue
    return total / 1e9


class Marks:
    """A scenario's clock that also reads the processes' CPU times when it is read."""

    def __init__(self, server: int, proxy: int | None = None) -> None:
        self._server, self._proxy = server, proxy
        self.readings: list[tuple[float, ...]] = []

    def __call__(self) -> float:
        # Reading the others' statistics costs this process CPU: outside the span each time.
        if self.readings:
            now, client = time.perf_counter(), time.process_time()
            others = cpu_seconds(self._server), cpu_seconds(self._proxy)
        else:
            others = cpu_seconds(self._server), cpu_seconds(self._proxy)
            client, now = time.process_time(), time.perf_counter()
        self.readings.append((now, client, *others))
        return now

    def spans(self) -> dict[str, float]:
        """Each share (:data:`SHARES`) between the clock's two readings, in seconds."""
        start, end = self.readings
        return {share: end[i] - start[i] for i, share in enumerate(SHARES)}


@contextmanager
def network(port: int, rtt_ms: float) -> Iterator[tuple[str, int | None]]:
    """The base URL of the server at ``rtt_ms`` (through the proxy unless 0), and the
    proxy's process id (None: no proxy)."""
    if not rtt_ms:
        yield f"http://127.0.0.1:{port}", None
        return
    with proxying(port, rtt_ms) as (proxied, pid):
        yield f"http://127.0.0.1:{proxied}", pid


def measure(
    base: str,
    pids: tuple[int, int | None],
    run: Callable[..., float],
    variant: str,
    work: list[Call],
) -> dict[str, float]:
    marks = Marks(*pids)
    clock: Clock = marks
    run(base, work, variant, clock=clock)  # a cold one forgets connections and endpoints
    return marks.spans()


def run(runs: int = RUNS, log: Callable[[str], None] = print) -> dict[str, Any]:
    work = calls(N)
    # In CPU time, like the processes' shares it is compared with; first, while nothing else
    # of this step runs in the process.
    direct = direct_cost(N, 40, time.process_time)
    samples: dict[str, dict[str, list[dict[str, float]]]] = {}
    with serving("gunicorn") as (port, master):
        worker = worker_of(master)
        for rtt in RTTS:
            cells = samples[f"{rtt:g}"] = {key: [] for key, _, _ in CELLS}
            with network(port, rtt) as (base, proxy):
                for _, scenario, variant in CELLS:  # first runs: imports, the server's caches
                    measure(base, (worker, proxy), scenario, variant, work)
                for _ in range(runs):
                    for key, scenario, variant in CELLS:
                        cells[key].append(measure(base, (worker, proxy), scenario, variant, work))
            for key, spans in cells.items():
                shares = ", ".join(
                    f"{share} {median([s[share] for s in spans]) * 1e3:.1f}" for share in SHARES
                )
                log(f"{rtt:g} ms, {key}: {shares} ms")
    log(f"direct cost (CPU): {median(direct) * 1e3:.2f} ms")
    return {"n": N, "runs": runs, "samples": samples, "direct_seconds": direct}


def round_trips(rtt_ms: float, cell: str) -> float:
    """The nominal round trips of ``cell`` in ms: the exchange, and a cold one's handshake."""
    return rtt_ms * (1 if cell.endswith("warm") else 2)


def section(data: Any) -> list[str]:
    """The report's section (``bench.report``)."""
    if not data:
        return []
    n, direct = data["n"], median(data["direct_seconds"]) * 1e3
    lines = [
        "## Where an end-to-end batch's time goes",
        "",
        f"N = {n}, gunicorn on 127.0.0.1, straight (0 ms) and through the latency proxy "
        "(50 ms, no slow start) (`bench/floor.py`): each run's wall time, and in the same "
        "runs the CPU time of the client process, of gunicorn's worker and of the proxy (all "
        "their threads). *Beyond direct* is the server's CPU beyond Flask's own work for "
        f"the same calls in-process ({direct:.2f} ms of CPU time in this run). *Rest* is the "
        "wall time beyond the nominal round trips that no process spent on a CPU: the "
        "kernel's socket work outside them, the proxy's timers, waiting to be scheduled "
        "(negative where processes ran at once). Issue 14's targets at 50 ms leave "
        f"{0.15 * (50 + direct):.1f} ms warm (1.15 x (50 + {direct:.2f}) - 50 - "
        f"{direct:.2f}) and {0.1 * (100 + direct):.1f} ms cold for the client, the server's "
        "work beyond direct and the rest together. Medians in ms over "
        f"{data['runs']} runs (min-max), cells alternating.",
        "",
        "| RTT | cell | wall | client CPU | server CPU | proxy CPU | server beyond direct | rest |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for rtt, cells in data["samples"].items():
        for key, spans in cells.items():
            shown = []
            for share in SHARES:
                values = [span[share] * 1e3 for span in spans]
                shown.append(f"{median(values):.1f} ({min(values):.1f}-{max(values):.1f})")
            beyond = median([span["server"] * 1e3 for span in spans]) - direct
            trips = round_trips(float(rtt), key)
            rest = median(
                [(s["wall"] - s["client"] - s["server"] - s["proxy"]) * 1e3 - trips for s in spans]
            )
            lines.append(f"| {rtt} ms | {key} | {' | '.join(shown)} | {beyond:.1f} | {rest:.1f} |")
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
