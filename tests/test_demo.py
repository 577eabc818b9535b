"""`make demo` works: the demo runs to the end and shows what batching is for.

It runs as a subprocess, exactly as `make demo` runs it, so that it also proves the example
needs nothing but the installed package, its own folder and the repository's latency proxy
(`bench/latency_proxy.py`, standard library only).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"
LATENCY_MS = 10


def test_demo_batches_every_call_into_one_round_trip_with_the_same_answers() -> None:
    done = subprocess.run(
        [sys.executable, str(DEMO), "--latency", str(LATENCY_MS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout

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
