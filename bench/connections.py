"""Connections of the ``requests`` client, before and after issue 14, side by side in one run.

- **blocks**: the README's idiom, a new ``with Batching(url) as s:`` block per batch of
  ``BLOCK_N`` calls; the second block is timed. *own* is the code before: each session's own
  adapter, closed with its block (what a session given ``s.mount(base, HTTPAdapter())``
  still does); *shared*: the pool kept warm across sessions (the default now). The same for
  ``BatchTransport``: ``transport=httpx.HTTPTransport()`` of its own against the shared one.
- **splits**: ``SPLIT_N`` calls in one block against a server that takes ``MAX_PARTS`` parts a
  batch, cold (no connection open when the clock starts): ``concurrency=1`` (batches one
  after another, the default before) against the default now (``concurrency=6``). Limits
  configured and ``discover=False``, so both send the same batches and ask nothing first.
  The floor: 2 round trips (the handshake, one exchange) plus the same queue at no latency.

The servers and the latency proxy are :mod:`bench.e2e`'s (gunicorn, its own process; the
proxy in another). A and B alternate, ``RUNS`` times each; medians, with the range.
``python -m bench.connections`` writes ``bench/results/connections.json``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from requests.adapters import HTTPAdapter

from bench.e2e import MAX_PARTS, RESULTS, TIMEOUT, check, proxy, server
from bench.timing import median, timed
from bench.workload import calls
from flask_batch.client import Batching, close_shared_connections, forget_endpoints
from flask_batch.client.httpx import BatchTransport

RTT_MS = 50.0
BLOCK_N = 100
SPLIT_N = 1000
RUNS = 9


def block(base: str, own: bool, n: int) -> None:
    """One ``with Batching`` block of ``n`` calls (``own``: a connection of its own)."""
    work = calls(n)
    with Batching(base + "/batch", timeout=TIMEOUT) as session:
        if own:
            session.mount(base, HTTPAdapter())
        responses = [session.request(c.method, base + c.path, json=c.body) for c in work]
    for call, response in zip(work, responses, strict=True):
        check(call, response.status_code, response.json())


def httpx_block(base: str, own: bool, n: int) -> None:
    """:func:`block` with a ``BatchTransport`` batch scope."""
    work = calls(n)
    transport = BatchTransport(base + "/batch", transport=httpx.HTTPTransport() if own else None)
    with (
        httpx.Client(transport=transport, timeout=TIMEOUT) as client,
        transport.batch(client) as batch,
    ):
        responses = [batch.request(c.method, base + c.path, json=c.body) for c in work]
    for call, response in zip(work, responses, strict=True):
        check(call, response.status_code, response.json())


def second_block(base: str, own: bool, each: Callable[[str, bool, int], None] = block) -> float:
    """Seconds of a second block, after a first one (untimed) and no other connection."""
    close_shared_connections()
    each(base, own, BLOCK_N)
    return timed(lambda: each(base, own, BLOCK_N))[0]


def split(base: str, concurrency: int, n: int) -> float:
    """Seconds of one cold block of ``n`` calls, split into batches of ``MAX_PARTS``."""
    close_shared_connections()
    forget_endpoints()
    work = calls(n)

    def run() -> None:
        options: dict[str, Any] = {"max_parts": MAX_PARTS, "discover": False}
        with Batching(base + "/batch", timeout=TIMEOUT, concurrency=concurrency, **options) as s:
            responses = [s.request(c.method, base + c.path, json=c.body) for c in work]
        for call, response in zip(work, responses, strict=True):
            check(call, response.status_code, response.json())

    return timed(run)[0]


def alternate(runs: int, a: Callable[[], float], b: Callable[[], float]) -> dict[str, Any]:
    """``a`` and ``b`` in turns, ``runs`` times each; milliseconds, medians and ranges."""
    seconds: dict[str, list[float]] = {"a": [], "b": []}
    for _ in range(runs):
        seconds["a"].append(a())
        seconds["b"].append(b())
    summary: dict[str, Any] = {}
    for name, values in seconds.items():
        ms = sorted(value * 1000 for value in values)
        summary[name] = {"median_ms": median(ms), "min_ms": ms[0], "max_ms": ms[-1], "ms": ms}
    summary["a_over_b"] = summary["a"]["median_ms"] / summary["b"]["median_ms"]
    return summary


def run(rtt_ms: float = RTT_MS, runs: int = RUNS) -> dict[str, Any]:
    with server("gunicorn") as port, proxy(port, rtt_ms) as proxied:
        base = f"http://127.0.0.1:{proxied}"
        direct = f"http://127.0.0.1:{port}"
        blocks = alternate(
            runs, lambda: second_block(base, True), lambda: second_block(base, False)
        )
        httpx_blocks = alternate(
            runs,
            lambda: second_block(base, True, httpx_block),
            lambda: second_block(base, False, httpx_block),
        )
        splits = alternate(runs, lambda: split(base, 1, SPLIT_N), lambda: split(base, 6, SPLIT_N))
        no_latency = alternate(
            runs, lambda: split(direct, 1, SPLIT_N), lambda: split(direct, 6, SPLIT_N)
        )
    for name in ("a", "b"):
        floor = 2 * rtt_ms + no_latency[name]["median_ms"]
        splits[name]["over_floor"] = splits[name]["median_ms"] / floor
    return {
        "rtt_ms": rtt_ms,
        "runs": runs,
        "blocks": {"n": BLOCK_N, "labels": ["own connection", "shared pool"], **blocks},
        "httpx_blocks": {"n": BLOCK_N, "labels": ["own transport", "shared"], **httpx_blocks},
        "splits": {"n": SPLIT_N, "labels": ["concurrency=1", "concurrency=6"], **splits},
        "no_latency": {"n": SPLIT_N, **no_latency},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.connections", description=__doc__)
    parser.add_argument("--rtt", type=float, default=RTT_MS, help="round trip, ms")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--out", type=Path, default=RESULTS / "connections.json")
    args = parser.parse_args(argv)
    results = run(args.rtt, args.runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    for name in ("blocks", "httpx_blocks", "splits", "no_latency"):
        cell = results[name]
        print(
            f"{name}: A {cell['a']['median_ms']:.1f} ms ({cell['a']['min_ms']:.1f}-"
            f"{cell['a']['max_ms']:.1f}), B {cell['b']['median_ms']:.1f} ms "
            f"({cell['b']['min_ms']:.1f}-{cell['b']['max_ms']:.1f}), A/B {cell['a_over_b']:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
