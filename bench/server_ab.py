"""Two versions of the Flask extension side by side: ``bench.server_cost``'s b/a (the batch
against the same calls dispatched directly) at N = 100 and 1,000, and the whole batch
against a trivial WSGI application (the batch's own work, µs a part), in CPU time of the
process, each version in its own processes, old and new alternating (docs/performance.md,
section "Issue 14, third round").

``python -m bench.server_ab OLD [NEW]``: each is a tree holding ``src/`` and ``bench/`` (a
``git worktree``, or ``git archive REV src bench`` unpacked); NEW is this checkout by default.
Prints, for each measure, the median of every process's median and the range of those
medians. On a shared machine single rounds spread widely: compare medians of many rounds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING

from bench.server_cost import (
    batch_environ,
    bench_app,
    call_environ,
    drain,
    run_batch,
    run_direct,
)
from bench.timing import start_response, timed
from bench.workload import batch_body, calls
from flask_batch.wsgi import BatchMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: Rounds per N in each process (round 0 warms up and is dropped).
ROUNDS = {100: 40, 1000: 12}


def _trivial_app(environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
    """The least a WSGI application can do: what a batch costs beyond it is the batch's own."""
    start("200 OK", [("Content-Type", "application/json")])
    return [b"{}"]


def child(arguments: list[str]) -> dict[str, float]:
    """One process's figures, of the version on ``sys.path``: b/a at each N (medians), and
    the batch against the trivial application in µs a part (the best round)."""
    ns = [int(n) for n in arguments]
    clock = time.process_time
    app = bench_app()
    found: dict[str, float] = {}
    for n in ns:
        work = calls(n)
        body = batch_body(work)
        ratios = []
        for round_ in range(ROUNDS.get(n, 8) + 1):
            environs = [call_environ(call) for call in work]
            a, _ = timed(partial(run_direct, app, environs), clock)
            b, _ = timed(partial(run_batch, app, batch_environ(body)), clock)
            if round_:
                ratios.append(b / a)
        found[f"b/a, N = {n}"] = statistics.median(ratios)
    n = 1000
    trivial = BatchMiddleware(_trivial_app, max_parts=n, max_body_size=64 * 1024 * 1024)
    body = batch_body(calls(n))
    spent = []
    for round_ in range(16):
        seconds, _ = timed(lambda: drain(trivial(batch_environ(body), start_response)), clock)
        if round_:
            spent.append(seconds / n * 1e6)
    # The least of the rounds: the batch's own work, what other processes add taken out.
    found["trivial app, µs a part (best)"] = min(spent)
    return found


def main(argv: list[str] | None = None) -> int:
    # Here, not above: a child loads this file with an older tree's bench (bench.ab).
    from bench.ab import compare  # noqa: PLC0415

    return compare(
        __file__,
        argv,
        prog="python -m bench.server_ab",
        description=__doc__,
        ns=list(ROUNDS),
        pairs=6,
        digits=3,
    )


if __name__ == "__main__":
    raise SystemExit(main())
