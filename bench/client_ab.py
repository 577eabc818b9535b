"""Two versions of the ``Batching`` client side by side on long queues: ``send_batch()``'s own
CPU time per call (``bench.profile.client_cost``'s *send*: the server's time taken out) for a
queue cut into batches of 100, at several lengths, each version in its own processes, old
and new alternating (docs/performance.md, "A long queue, planned in linear work").

``python -m bench.client_ab OLD [NEW]``: each is a tree holding ``src/`` and ``bench/`` (a
``git worktree``, or ``git archive REV src bench`` unpacked); NEW is this checkout by default.
The batches go one at a time (``concurrency=1``) to the application in-process, so that the
server's time, measured by the adapter, can be taken out exactly.
"""

from __future__ import annotations

import statistics
import time

from bench.profile import InProcess
from bench.server_cost import bench_app
from bench.workload import calls
from flask_batch.client import Batching

#: Queue lengths, and the rounds of each in a process (round 0 warms up and is dropped).
ROUNDS = {100: 8, 1000: 6, 5000: 3, 20000: 1}
BASE = "http://localhost"


def child(arguments: list[str]) -> dict[str, float]:
    """One process's figures, of the version on ``sys.path``: µs of CPU per call that
    ``send_batch()`` spends beyond the server, at each queue length (median of the rounds)."""
    ns = [int(n) for n in arguments]
    app = bench_app()
    found: dict[str, float] = {}
    for n in ns:
        work = calls(n)
        spent = []
        for round_ in range(ROUNDS.get(n, 2) + 1):
            adapter = InProcess(app)
            session = Batching(BASE + "/batch", max_parts=100, concurrency=1, discover=False)
            session.mount("http://", adapter)
            for call in work:
                session.request(call.method, BASE + call.path, json=call.body)
            start = time.process_time()
            responses = session.send_batch()
            seconds = time.process_time() - start - adapter.seconds
            if any(r.status_code != 200 for r in responses):
                raise AssertionError("the in-process batch failed")
            session.close()
            if round_:
                spent.append(seconds / n * 1e6)
        found[f"send, µs a call, N = {n}"] = statistics.median(spent)
    return found


def main(argv: list[str] | None = None) -> int:
    # Here, not above: a child loads this file with an older tree's bench (bench.ab).
    from bench.ab import compare  # noqa: PLC0415

    return compare(
        __file__,
        argv,
        prog="python -m bench.client_ab",
        description=__doc__,
        ns=list(ROUNDS),
        pairs=4,
        digits=1,
    )


if __name__ == "__main__":
    raise SystemExit(main())
