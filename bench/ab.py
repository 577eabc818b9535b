"""Two versions of the code side by side, each in processes of its own, old and new
alternating: the A/B that docs/performance.md asks of every change. Each version is a tree
holding ``src/`` and ``bench/`` (a ``git worktree``, or ``git archive REV src bench``
unpacked), so that a measure follows the internals of the code it measures.

A script built on it (``bench.server_ab``, ``bench.pool_ab``, ...) has a function
``child(arguments)`` that measures the code on the path and returns its figures. Each process
runs this file as a script (:func:`measure_in`), with the tree's code first on the path: it
loads the script by its file, this checkout's, calls ``child``, and prints the figures as
JSON with the file ``flask_batch`` was imported from, checked to be the tree's. So only the
modules a ``child`` imports (``bench.workload``, ``bench.parallel``, ...) come from the older
tree, never this one or the scripts, which an older tree may lack.
"""

from __future__ import annotations

import argparse
import importlib.util
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
    """``child(ARGUMENTS)`` of ``script`` in a process of its own, with ``tree``'s code (and
    its ``bench``) first on the path; the figures it returned, less the ``flask_batch`` they
    name (refused if it is not the tree's)."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree / "src"), str(tree)])}
    # -P: this file's folder (bench/) is not put first on the path, where bench/profile.py
    # would stand in for the standard library's profile.
    done = subprocess.run(
        [sys.executable, "-P", __file__, "--child", script, *arguments],
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


def _child(script: str, arguments: list[str]) -> None:
    """In a measuring process: ``script``'s ``child(arguments)``, printed as JSON with the
    file ``flask_batch`` was imported from."""
    spec = importlib.util.spec_from_file_location("ab_child", script)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{script} cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = module.child(arguments)
    import flask_batch  # noqa: PLC0415  # the tree's, as the child's own imports

    print(json.dumps({"flask_batch": flask_batch.__file__, **figures}))


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


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    _child(sys.argv[2], sys.argv[3:])
