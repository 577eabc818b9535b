"""Two versions of the thread pool's driver side by side (``bench.parallel``'s workloads):
what parts that only compute pay on four threads against one (W4/W1, in wall and in the
process's CPU time, both taken within each round), and what waiting parts take at W = 20
(``wait20``, ``mixed100``: their floor is 50 ms), each version in processes of its own, old
and new alternating (docs/performance.md, "Parts on a thread pool").

``python -m bench.pool_ab OLD [NEW] [--n N...]``: each is a tree holding ``src/`` and
``bench/`` (a ``git worktree``, or ``git archive REV src bench`` unpacked); NEW is this
checkout by default. ``--n`` gives the batch sizes of the W4/W1 rounds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial

from bench.parallel import check, mixed_calls, parallel_app, wait_calls, waits_ms
from bench.server_cost import batch_environ, run_batch
from bench.workload import batch_body, calls

#: Rounds of W4/W1 at each batch size (each round runs W = 1 and W = 4 once; one more
#: round warms up and is dropped); rounds of each waiting workload at W = 20.
ROUNDS = {100: 40, 1000: 12}
WAIT_ROUNDS = 6


def timed(run: Callable[[], object]) -> tuple[float, float]:
    """Wall and process CPU seconds of ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def child(arguments: list[str]) -> dict[str, float]:
    """One process's figures, of the version on ``sys.path`` (medians of the rounds)."""
    ns = [int(n) for n in arguments]
    apps = {workers: parallel_app(workers) for workers in (1, 4, 20)}
    found: dict[str, float] = {}
    for name, work in (("wait20", wait_calls(waits_ms())), ("mixed100", mixed_calls())):
        check(apps[20], work)
        body = batch_body(work)
        seconds = [
            timed(partial(run_batch, apps[20], batch_environ(body)))[0]
            for _ in range(WAIT_ROUNDS + 1)
        ][1:]
        found[f"{name}, W = 20, ms"] = statistics.median(seconds) * 1000
    for n in ns:
        work = calls(n)
        body = batch_body(work)
        check(apps[1], work)
        check(apps[4], work)
        walls, cpus = [], []
        for round_ in range(ROUNDS.get(n, 8) + 1):
            one = timed(partial(run_batch, apps[1], batch_environ(body)))
            four = timed(partial(run_batch, apps[4], batch_environ(body)))
            if round_:
                walls.append(four[0] / one[0])
                cpus.append(four[1] / one[1])
        found[f"W4/W1 wall, N = {n}"] = statistics.median(walls)
        found[f"W4/W1 CPU, N = {n}"] = statistics.median(cpus)
    return found


def main(argv: list[str] | None = None) -> int:
    # Here, not above: a child loads this file with an older tree's bench (bench.ab).
    from bench.ab import compare  # noqa: PLC0415

    return compare(
        __file__,
        argv,
        prog="python -m bench.pool_ab",
        description=__doc__,
        ns=list(ROUNDS),
        pairs=4,
        digits=2,
        measure="medians of the rounds",
    )


if __name__ == "__main__":
    raise SystemExit(main())
