"""What an atomic group costs the server: members inside groups against the same parts outside
one, side by side, in-process.

The same N writes of the workload (``PATCH /items/<i>`` with a small JSON body) are answered
by one Flask batch route whose transaction hook does nothing (a real hook adds its database's
begin and commit, the application's to measure): what is measured is Flask-Batch's own work
per member, the group's context and bookkeeping and its nested answer.

- **plain**: N parts, no group (the floor);
- **1 group**: one changeset of N members; **groups of 10**: N/10 changesets;
- **1 group, watched**: one changeset, the batch's connection looked at before each member
  and before the commit (a socket pair stands for the client's connection, as Werkzeug's and
  gunicorn's servers show it in the environ);
- **JSON plain** and **JSON 1 group**: the same in the JSON format (``atomicityGroup``).

Rounds interleave the cases; each case's time over plain's (of its format) is taken within
the round, and medians are reported. ``python -m bench groups``; results go to
``bench/results/groups.json``.
"""

from __future__ import annotations

import json
import socket
import statistics
from collections.abc import Callable
from functools import partial
from typing import Any

from flask import Flask

from bench import hook_cost
from bench.server_cost import batch_environ, json_environ, run_batch
from bench.timing import timed
from bench.workload import Call, batch_body, calls, changesets_body, create_app, json_batch_body
from flask_batch import add_batch_route
from flask_batch.transactions import Group

#: Writes per batch, and rounds (about 15 s in all on a 2-core machine).
N = 100
ROUNDS = 40
MULTIPART_CASES = ("plain", "1 group", "groups of 10", "1 group, watched")
JSON_CASES = ("JSON plain", "JSON 1 group")


class _Nothing:
    """A transaction that does nothing: the cost measured is Flask-Batch's alone."""

    def commit(self) -> None:
        return None

    def rollback(self) -> None:
        return None


def begin(group: Group) -> _Nothing:
    return _Nothing()


def writes(n: int) -> list[Call]:
    """``n`` writes of the workload (its PATCH calls)."""
    return [call for call in calls(2 * n) if call.method == "PATCH"]


def json_group_body(work: list[Call]) -> bytes:
    document = json.loads(json_batch_body(work))
    for request in document["requests"]:
        request["atomicityGroup"] = "g"
    return json.dumps(document).encode()


def run(n: int = N, rounds: int = ROUNDS) -> dict[str, Any]:
    app = create_app(
        lambda app: add_batch_route(app, transaction=begin, max_parts=10 * n, max_group_size=n)
    )
    work = writes(n)
    watched, peer = socket.socketpair()  # the client's connection, open throughout
    environs: dict[str, Callable[[], Any]] = {
        "plain": lambda: batch_environ(batch_body(work)),
        "1 group": lambda: batch_environ(changesets_body(work, n)),
        "groups of 10": lambda: batch_environ(changesets_body(work, 10)),
        "1 group, watched": lambda: {
            **batch_environ(changesets_body(work, n)),
            "werkzeug.socket": watched,
        },
        "JSON plain": lambda: json_environ(json_batch_body(work)),
        "JSON 1 group": lambda: json_environ(json_group_body(work)),
    }
    for name, environ in environs.items():
        _check(app, name, environ(), n)
    seconds: dict[str, list[float]] = {name: [] for name in environs}
    ratios: dict[str, list[float]] = {name: [] for name in environs}
    try:
        for round_ in range(rounds + 1):  # round 0 warms up and is dropped
            this_round = {
                name: timed(partial(run_batch, app, environ()))[0]
                for name, environ in environs.items()
            }
            if round_:
                for name, value in this_round.items():
                    seconds[name].append(value)
                    floor = this_round["JSON plain" if name.startswith("JSON") else "plain"]
                    ratios[name].append(value / floor)
    finally:
        watched.close()
        peer.close()
    return {
        "n": n,
        "rounds": rounds,
        "seconds": seconds,
        "ratio": ratios,
        "hook": hook_cost.run(n),
    }


def _check(app: Flask, name: str, environ: Any, n: int) -> None:
    """Every write answered 200, in a group or not (a benchmark of wrong answers is none)."""
    chunks: list[bytes] = []
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return chunks.append

    chunks.extend(app.wsgi_app(environ, start_response))
    answer = b"".join(chunks)
    if name.startswith("JSON"):
        answered = [item["status"] for item in json.loads(answer)["responses"]]
    else:
        answered = [200] * answer.count(b"HTTP/1.1 200 ")
        answered += [0] * (answer.count(b"HTTP/1.1 ") - len(answered))
    if statuses != ["200 OK"] or answered != [200] * n:
        raise AssertionError(f"{name}: {statuses}, {answered}")


def section(data: Any) -> list[str]:
    """The report's section for ``bench/results/groups.json`` (``bench/report.py``)."""
    if not data:
        return []
    n = data["n"]
    lines = [
        "## Atomic groups",
        "",
        f"{n} writes answered in-process by one batch route with a transaction hook that does "
        "nothing, so that what is measured is Flask-Batch's own work per member "
        "(`bench/groups.py`): as plain parts, as one changeset, as changesets of 10, as one "
        "changeset whose client connection is looked at before each member and the commit "
        "(as on Werkzeug's and gunicorn's servers), and in the JSON format. Each case over "
        "plain parts of its format, taken within each round; medians (min-max).",
        "",
        "| case | rounds | per write, µs | over plain | extra per write, µs |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in data["seconds"].items():
        per_write = [value / n * 1e6 for value in values]
        floor = data["seconds"]["JSON plain" if name.startswith("JSON") else "plain"]
        extra = [(value - base) / n * 1e6 for value, base in zip(values, floor, strict=True)]
        ratio = data["ratio"][name]
        lines.append(
            f"| {name} | {len(values)} | {statistics.median(per_write):.1f} "
            f"({min(per_write):.1f}-{max(per_write):.1f}) | "
            f"{statistics.median(ratio):.2f}x ({min(ratio):.2f}-{max(ratio):.2f}) | "
            f"{statistics.median(extra):+.1f} |"
        )
    return [*lines, "", *hook_cost.section(data.get("hook"))]


def main() -> int:
    data = run()
    print("\n".join(section(data)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
