"""Two versions of the clients side by side on a new process's long queue: N = 1,000 calls,
cold (no connection open, nothing known of the endpoint), through the latency proxy at
50 ms, with TCP slow start and without, against gunicorn (``bench.e2e``'s ``batch`` and
``batch_async`` scenarios), each version in processes of its own, old and new alternating
(docs/performance.md, "Concurrent splits").

``python -m bench.cold_ab OLD [NEW] [--pairs P]``: each is a tree holding ``src/`` and
``bench/`` (a ``git worktree``, or ``git archive REV src bench`` unpacked); NEW is this
checkout by default. The server and the proxy are this checkout's, started once.
"""

from __future__ import annotations

import argparse
import functools
import statistics
from pathlib import Path

from bench.e2e import async_batched, batched
from bench.workload import calls

N = 1000
RTT_MS = 50.0
#: Runs of each scenario in a process; the process reports their median.
RUNS = 3


def child(arguments: list[str]) -> dict[str, float]:
    """One process's figures, of the version on ``sys.path``, against the proxy at the base
    URL ``arguments[0]``: ms, median of RUNS cold runs."""
    base, work = arguments[0], calls(N)
    return {
        name: statistics.median(scenario(base, work, "cold") for _ in range(RUNS)) * 1000
        for name, scenario in (("Batching", batched), ("AsyncBatchTransport", async_batched))
    }


def _measure(base: str, tree: Path) -> dict[str, float]:
    from bench.ab import measure_in  # noqa: PLC0415

    return measure_in(__file__, tree, base)


def main(argv: list[str] | None = None) -> int:
    # Here, not above: a child loads this file with an older tree's bench (bench.ab).
    from bench.ab import ROOT, alternate, table  # noqa: PLC0415
    from bench.e2e import proxying, serving  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m bench.cold_ab", description=__doc__)
    parser.add_argument("old", type=Path, nargs="?", help="the tree of the code before")
    parser.add_argument("new", type=Path, nargs="?", default=ROOT, help="the code after")
    parser.add_argument("--pairs", type=int, default=4, help="processes of each version")
    parsed = parser.parse_args(argv)
    with serving("gunicorn") as (port, _):
        for network, options in (("slow start", ("--slow-start",)), ("latency only", ())):
            with proxying(port, RTT_MS, *options) as (proxied, _):
                measure = functools.partial(_measure, f"http://127.0.0.1:{proxied}")
                found = alternate(parsed, measure)
            heading = f"N = {N}, cold, {RTT_MS:g} ms, {network}: ms, {parsed.pairs} processes"
            print(table(heading, found, 1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
