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

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import flask_batch
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

ROOT = Path(__file__).resolve().parent.parent
#: Rounds per N in each process (round 0 warms up and is dropped).
ROUNDS = {100: 40, 1000: 12}


def _trivial_app(environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
    """The least a WSGI application can do: what a batch costs beyond it is the batch's own."""
    start("200 OK", [("Content-Type", "application/json")])
    return [b"{}"]


def child(ns: list[int]) -> dict[str, float]:
    """One process's figures, of the version on ``sys.path``: b/a at each N (medians), and
    the batch against the trivial application in µs a part (the best round)."""
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


def _run(tree: Path, ns: list[int]) -> dict[str, float]:
    """One process of the version in ``tree`` (its ``bench`` helpers too)."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree / "src"), str(tree)])}
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(tree / "src"), *map(str, ns)],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )
    found: dict[str, float] = json.loads(done.stdout)
    return found


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server_ab", description=__doc__)
    parser.add_argument("old", type=Path, nargs="?", help="the tree of the code before")
    parser.add_argument("new", type=Path, nargs="?", default=ROOT, help="the code after")
    parser.add_argument("--pairs", type=int, default=6, help="processes of each version")
    parser.add_argument("--n", type=int, nargs="+", default=list(ROUNDS))
    parser.add_argument("--child", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        source, *ns = args.child
        if not flask_batch.__file__ or not flask_batch.__file__.startswith(source):
            raise SystemExit(f"flask_batch came from {flask_batch.__file__}, not {source}")
        print(json.dumps(child([int(n) for n in ns])))
        return 0
    if args.old is None:
        parser.error("the tree of the code before is needed")
    sides: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    for pair in range(args.pairs):
        order = ("old", "new") if pair % 2 == 0 else ("new", "old")
        for side in order:
            for name, value in _run(getattr(args, side).resolve(), args.n).items():
                sides[side].setdefault(name, []).append(value)
        latest = {side: {k: v[-1] for k, v in found.items()} for side, found in sides.items()}
        print(f"pair {pair + 1} of {args.pairs}: {json.dumps(latest)}", file=sys.stderr)
    print(f"| process CPU time, {args.pairs} processes each | old | new |\n|---|---:|---:|")
    for name, old in sides["old"].items():
        print(f"| {name} | {_summary(old)} | {_summary(sides['new'][name])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
