"""The A/B tools' processes (``bench.ab.measure_in``): what a change's before/after figures
in docs/performance.md stand on. Each process runs a script's ``child`` with a tree's code on
the path and says where ``flask_batch`` came from; figures from any other code are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.ab import ROOT, measure_in

CHILD = """
import bench.workload


def child(arguments):
    return {"arguments": arguments, "calls": len(bench.workload.calls(3))}
"""


def test_a_child_measures_the_code_of_the_tree_it_is_given(tmp_path: Path) -> None:
    script = tmp_path / "an_ab.py"
    script.write_text(CHILD)
    assert measure_in(str(script), ROOT, "100", "1000") == {
        "arguments": ["100", "1000"],
        "calls": 3,
    }


def test_figures_from_another_trees_code_are_refused(tmp_path: Path) -> None:
    # An empty tree: flask_batch comes from wherever else it is installed, not from it.
    (tmp_path / "tree" / "src").mkdir(parents=True)
    script = tmp_path / "an_ab.py"
    script.write_text("def child(arguments):\n    return {}\n")
    with pytest.raises(SystemExit, match="flask_batch came from"):
        measure_in(str(script), tmp_path / "tree")
