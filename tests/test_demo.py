"""`make demo` works: the demo runs to the end and shows what batching is for.

It runs as a subprocess, exactly as `make demo` runs it, so that it also proves the example
needs nothing but the installed package, its own folder and the repository's latency proxy
(`bench/latency_proxy.py`, standard library only).
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"
LATENCY_MS = 10


@functools.cache
def demo() -> str:
    """What the demo prints (run once for the module), checked to end well."""
    done = subprocess.run(
        [sys.executable, str(DEMO), "--latency", str(LATENCY_MS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_demo_batches_every_call_into_one_round_trip_with_the_same_answers() -> None:
    out = demo()

    calls = re.search(r"^(\d+) API calls", out, re.MULTILINE)
    separate = re.search(r"separate calls:\s+(\d+) round trips?\b", out)
    batch = re.search(r"one batch:\s+(\d+) round trips?\b", out)
    assert calls, out
    assert separate, out
    assert batch, out
    n = int(calls[1])
    assert n >= 10
    assert int(separate[1]) == n
    assert int(batch[1]) == 1
    assert f"answers identical: yes, all {n}" in out
    # The calls went through the latency proxy: each separate call waited at least one round
    # trip (a lower bound, which no slow machine can break). The speed-up is only printed.
    separate_ms = re.search(r"separate calls:\s+\d+ round trips?\s+(\d+) ms", out)
    assert separate_ms, out
    assert int(separate_ms[1]) >= n * LATENCY_MS - 1, out
    assert re.search(r"speed-up:\s+\d+\.\dx faster with one batch", out), out
    # Both tables show the 201 Created and the 404 the demo promises.
    for status in ("201", "204", "404", "409"):
        assert len(re.findall(rf"\s{status}\s", out)) >= 2, (status, out)


def test_demo_shows_a_changeset_rolled_back_then_committed() -> None:
    out = demo()
    rolled_back, committed = out.split("A changeset")[1].split("its second member fixed")
    # The second write fails: it says why, the others say they were not applied.
    assert re.findall(r"\s(\d{3})\s", rolled_back) == ["424", "409", "424"], out
    assert rolled_back.count("not applied: its atomic group failed") == 2, out
    assert "database: alice 30, bob 25, carol 41 (unchanged)" in rolled_back, out
    assert re.findall(r"\s(\d{3})\s", committed) == ["201", "201", "200"], out
    assert "database: alice 30, bob 26, carol 41, erin 28, frank 35 (committed)" in committed
