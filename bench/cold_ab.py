"""Two versions of the clients side by side end to end: by default a new process's long
queue, N = 1,000 calls, cold (no connection open, nothing known of the endpoint), through
the latency proxy at 50 ms, with TCP slow start and without, against gunicorn
(``bench.e2e``'s ``batch`` and ``batch_async`` scenarios), each version in processes of its
own, old and new alternating (docs/performance.md, "Concurrent splits").

``python -m bench.cold_ab OLD [NEW] [--pairs P] [--n N] [--variant V] [--rtt MS]``: each is
a tree holding ``src/`` and ``bench/`` (a ``git worktree``, or ``git archive REV src bench``
unpacked); NEW is this checkout by default. ``--variant warm --n 100`` measures issue 14's
warm rows instead (``bench.e2e``'s variants: cold, known, warm); ``--rtt 0`` goes straight to
the server, without the proxy. The server and the proxy are this checkout's, started once.
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
    """One process's figures, of the version on ``sys.path``, against the base URL
    ``arguments[0]``, ``arguments[1]`` calls, variant ``arguments[2]``: ms, the median of
    ``arguments[3]`` runs."""
    base, work, variant, runs = arguments[0], calls(int(arguments[1])), *arguments[2:4]
    return {
        name: statistics.median(scenario(base, work, variant) for _ in range(int(runs))) * 1000
        for name, scenario in (("Batching", batched), ("AsyncBatchTransport", async_batched))
    }


def _measure(base: str, settings: list[str], tree: Path) -> dict[str, float]:
    from bench.ab import measure_in  # noqa: PLC0415

    return measure_in(__file__, tree, base, *settings)


def main(argv: list[str] | None = None) -> int:
    # Here, not above: a child loads this file with an older tree's bench (bench.ab).
    from bench.ab import ROOT, alternate, table  # noqa: PLC0415
    from bench.e2e import proxying, serving  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m bench.cold_ab", description=__doc__)
    parser.add_argument("old", type=Path, nargs="?", help="the tree of the code before")
    parser.add_argument("new", type=Path, nargs="?", default=ROOT, help="the code after")
    parser.add_argument("--pairs", type=int, default=4, help="processes of each version")
    parser.add_argument("--n", type=int, default=N, help="calls queued")
    parser.add_argument("--variant", choices=("cold", "known", "warm"), default="cold")
    parser.add_argument("--rtt", type=float, default=RTT_MS, help="round trip in ms (0: none)")
    parser.add_argument("--runs", type=int, default=RUNS, help="runs a process takes the median of")
    parsed = parser.parse_args(argv)
    settings = [str(parsed.n), parsed.variant, str(parsed.runs)]
    networks = (("slow start", ("--slow-start",)), ("latency only", ())) if parsed.rtt else ()
    with serving("gunicorn") as (port, _):
        heading = f"N = {parsed.n}, {parsed.variant}, {parsed.rtt:g} ms"
        if not networks:
            measure = functools.partial(_measure, f"http://127.0.0.1:{port}", settings)
            found = alternate(parsed, measure)
            print(table(f"{heading}: ms, {parsed.pairs} processes", found, 2), flush=True)
        for network, options in networks:
            with proxying(port, parsed.rtt, *options) as (proxied, _):
                measure = functools.partial(_measure, f"http://127.0.0.1:{proxied}", settings)
                found = alternate(parsed, measure)
            print(table(f"{heading}, {network}: ms, {parsed.pairs} processes", found, 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
