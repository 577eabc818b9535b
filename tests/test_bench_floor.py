"""``bench.floor``: where an end-to-end batch's wall time goes.

Why: its table says which share (the client's CPU, the server's, the rest) stands between
the batch and issue 14's targets; a reading of the wrong process, or a sum taken the wrong
way, would send the work to the wrong place. Nothing is timed against a bound.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bench import floor
from bench.e2e import Clock
from bench.workload import calls


@contextmanager
def worker() -> Iterator[Callable[[], int]]:
    """A single-threaded process that computes for a moment each time it is asked; yields
    the call that asks it (and returns its process id). The test run's own threads come and
    go (live servers of other tests), and one that ends takes its time out of a sum over
    them: this process's CPU time cannot be read as growing."""
    code = (
        "import sys\n"
        "print('ready', flush=True)\n"
        "for _ in sys.stdin:\n"
        "    sum(i * i for i in range(300_000))\n"
        "    print('done', flush=True)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as process:
        stdin, stdout = process.stdin, process.stdout
        assert stdin is not None
        assert stdout is not None
        assert stdout.readline() == "ready\n"

        def work() -> int:
            stdin.write("go\n")
            stdin.flush()
            assert stdout.readline() == "done\n"
            return process.pid

        try:
            yield work
        finally:
            stdin.close()


def test_the_cpu_time_read_is_the_processs_own_and_grows_with_its_work() -> None:
    with worker() as work:
        pid = work()
        before = floor.cpu_seconds(pid)
        work()
        assert floor.cpu_seconds(pid) > before
    assert floor.cpu_seconds(None) == 0.0


def test_the_worker_is_the_child_of_the_master() -> None:
    # A master of its own, as gunicorn's: it starts one worker and says its process id.
    spawn = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        "print(child.pid, flush=True)\n"
        "child.wait()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", spawn], stdout=subprocess.PIPE, text=True
    ) as master:
        assert master.stdout is not None
        worker = int(master.stdout.readline())
        try:
            assert floor.worker_of(master.pid) == worker
        finally:
            os.kill(worker, signal.SIGKILL)


def test_a_run_is_measured_between_the_scenarios_two_clock_readings() -> None:
    with worker() as work:
        pid = work()
        marks = floor.Marks(pid, pid)  # the server and the proxy: the same process

        def scenario(base: str, workload: object, variant: str, *, clock: Clock) -> float:
            assert (base, variant) == ("http://x", "warm")
            start = clock()
            sum(i * i for i in range(300_000))  # the client's work
            work()  # the server's (and the proxy's)
            return clock() - start

        seconds = scenario("http://x", calls(1), "warm", clock=marks)
    spans = marks.spans()
    assert spans["wall"] == seconds
    assert spans["client"] > 0
    assert spans["server"] > 0
    assert spans["proxy"] > 0  # the same process again


def test_the_section_budgets_the_targets_and_subtracts_every_process_and_round_trip() -> None:
    warm = {"wall": 0.030, "client": 0.008, "server": 0.012, "proxy": 0.0}
    cold = {"wall": 0.135, "client": 0.008, "server": 0.012, "proxy": 0.003}
    data = {
        "n": 100,
        "runs": 1,
        "samples": {"0": {"batch warm": [warm]}, "50": {"batch cold": [cold]}},
        "direct_seconds": [0.010],
    }
    text = "\n".join(floor.section(data))
    assert "leave 9.0 ms warm" in text  # 1.15 x (50 + 10) - 60
    assert "and 11.0 ms cold" in text  # 1.1 x (100 + 10) - 110
    # rest: 30 - 8 - 12 - 0, and 135 - 8 - 12 - 3 - 2 x 50
    assert "| 0 ms | batch warm | 30.0 (30.0-30.0) | 8.0 (8.0-8.0) |" in text
    assert "| 0.0 (0.0-0.0) | 2.0 | 10.0 |" in text
    assert "| 50 ms | batch cold | 135.0 (135.0-135.0) |" in text
    assert "| 3.0 (3.0-3.0) | 2.0 | 12.0 |" in text
    assert floor.section(None) == []
