"""Two versions of the code side by side, each in processes of its own, old and new
alternating: the A/B that docs/performance.md asks of every change. Each version is a tree
holding ``src/`` and ``bench/`` (a ``git worktree``, or ``git archive REV src bench``
unpacked), so that a measure follows the internals of the code it measures.

A script built on it (``bench.asgi_ab``, ``bench.server_ab``) runs itself with ``--child``
in each process (:func:`measure_in`), with the tree's code first on the path, and prints its
figures as JSON with the file ``flask_batch`` was imported from, which is checked to be the
tree's. A child imports nothing from this module (an older tree has none).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: This checkout: the code after, by default.
ROOT = Path(__file__).resolve().parent.parent
#: The figures of one process: per measure, one value or one value a round.
Found = dict[str, Any]


def measure_in(script: str, tree: Path, *arguments: str) -> Found:
    """Run ``script --child ARGUMENTS...`` with ``tree``'s code (and its ``bench``) first on
    the path; what it printed, read as JSON, less the ``flask_batch`` it names (refused if it
    is not the tree's)."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree / "src"), str(tree)])}
    # -P: the script's own folder (bench/) is not put first on the path, where
    # bench/profile.py would stand in for the standard library's profile.
    done = subprocess.run(
        [sys.executable, "-P", script, "--child", *arguments],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )
    found: Found = json.loads(done.stdout)
    source = found.pop("flask_batch")
    if not source.startswith(str(tree / "src")):
        raise SystemExit(f"flask_batch came from {source}, not {tree / 'src'}")
    return found


def alternate(
    arguments: argparse.Namespace, measure: Callable[[Path], Found]
) -> dict[str, list[Found]]:
    """``measure`` the trees ``arguments.old`` and ``arguments.new`` in ``arguments.pairs``
    rounds, the order swapped every round; every process's figures, by side."""
    if arguments.old is None:
        raise SystemExit("the tree of the code before is needed")
    trees = {"old": arguments.old.resolve(), "new": arguments.new.resolve()}
    found: dict[str, list[Found]] = {"old": [], "new": []}
    for pair in range(arguments.pairs):
        for side in ("old", "new") if pair % 2 == 0 else ("new", "old"):
            found[side].append(measure(trees[side]))
        print(f"pair {pair + 1} of {arguments.pairs}", file=sys.stderr)
    return found


def table(heading: str, found: dict[str, list[Found]], digits: int) -> str:
    """``found`` (one value a process and measure) as a Markdown table under ``heading``: per
    measure and side, the median of the processes' values and their range."""

    def summary(values: list[float]) -> str:
        middle, low, high = statistics.median(values), min(values), max(values)
        return f"{middle:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"

    rows = [f"| {heading} | old | new |", "|---|---:|---:|"]
    for name in found["old"][0]:
        old, new = ([f[name] for f in found[side]] for side in ("old", "new"))
        rows.append(f"| {name} | {summary(old)} | {summary(new)} |")
    return "\n".join(rows)


def compare(
    script: str,
    argv: list[str] | None,
    *,
    prog: str,
    description: str | None,
    ns: list[int],
    pairs: int,
    digits: int,
    measure: str = "process CPU time",
) -> int:
    """The parent of an A/B script that measures at queue or batch sizes ``ns``: its command
    line (``OLD [NEW] [--pairs P] [--n N...]``), the processes of ``script`` alternated
    (each ``script --child N...``), and the table of what they found."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("old", type=Path, nargs="?", help="the tree of the code before")
    parser.add_argument("new", type=Path, nargs="?", default=ROOT, help="the code after")
    parser.add_argument("--pairs", type=int, default=pairs, help="processes of each version")
    parser.add_argument("--n", type=int, nargs="+", default=ns)
    arguments = parser.parse_args(argv)
    found = alternate(arguments, lambda tree: measure_in(script, tree, *map(str, arguments.n)))
    print(table(f"{measure}, {arguments.pairs} processes each", found, digits))
    return 0
