"""gzip both ways (issue 14): bytes on the wire, and what compressing them costs, side by side.

For N = 1, 10, 100 and 1,000 calls of the workload (``bench.workload``), as one multipart batch:

- the request body as it is and in gzip (``flask_batch.wire.content_coding.gzip_body``, what
  the clients send once the endpoint takes gzip), and the client's CPU to compress it;
- the answer, made in-process by the Flask extension (``bench.server_cost``'s app and
  environ) with and without ``Accept-Encoding: gzip``, A and B alternating in each round:
  its bytes, the server's time for the whole batch either way (the ratio taken within each
  round), and the client's CPU to decompress it;
- what the bytes mean under TCP slow start (RFC 6928's initial window of 10 segments of
  1,448 bytes, doubling every round trip): the flights each body needs
  (:func:`flights`). End-to-end times through a network with slow start are the e2e step's
  (``bench/latency_proxy.py``); there, ``bench.e2e.batched`` runs with ``compress=False``
  against ``/batch-identity`` (``bench/serve.py``) for the same batch without gzip.

Run ``python -m bench.compression``; results go to ``bench/results/gzip.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.server_cost import batch_environ, bench_app, run_batch
from bench.timing import median, timed
from bench.workload import batch_body, calls
from flask_batch.wire.content_coding import GzipEncoder, gzip_body

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
NS = (1, 10, 100, 1000)
#: Rounds per N (A and B each once per round): about 20 s in all on a 2-core machine.
ROUNDS = {1: 200, 10: 120, 100: 40, 1000: 10}
#: The slow-start model: RFC 6928's initial window, in segments of this many bytes.
INITIAL_WINDOW, SEGMENT = 10, 1448


def flights(size: int) -> int:
    """Round trips' worth of flights ``size`` bytes need from a fresh congestion window
    (slow start: 10 segments, then twice as many each round trip; no loss)."""
    window, sent, count = INITIAL_WINDOW * SEGMENT, 0, 0
    while sent < size or count == 0:
        sent += window
        window *= 2
        count += 1
    return count


def _answer(app: Any, body: bytes, gzip: bool) -> bytes:
    environ = batch_environ(body)
    if gzip:
        environ["HTTP_ACCEPT_ENCODING"] = "gzip"
    return b"".join(app.wsgi_app(environ, lambda status, headers, exc_info=None: None))


def _encode(answer: bytes) -> bytes:
    """What the server adds to a batch to send ``answer`` in gzip: its encoder's work."""
    encoder = GzipEncoder()
    return encoder.encode(answer) + encoder.finish()


def measure(n: int, rounds: int) -> dict[str, Any]:
    app = bench_app()
    body = batch_body(calls(n))
    compressed = gzip_body(body)
    plain_answer, gzip_answer = _answer(app, body, False), _answer(app, body, True)
    if zlib.decompress(gzip_answer, 31).count(b"HTTP/1.1 200 OK") != n:
        raise AssertionError(f"the gzip answer of {n} calls is not {n} answers")
    if plain_answer.count(b"HTTP/1.1 200 OK") != n or zlib.decompress(compressed, 31) != body:
        raise AssertionError(f"the batch of {n} calls did not go through")
    seconds: dict[str, list[float]] = {
        key: [] for key in ("plain", "gzip", "encode", "compress", "decompress")
    }
    for round_ in range(rounds + 1):  # round 0 warms up and is dropped
        order = ("plain", "gzip") if round_ % 2 else ("gzip", "plain")  # A/B, then B/A
        this = {}
        for mode in order:
            environ = batch_environ(body)
            if mode == "gzip":
                environ["HTTP_ACCEPT_ENCODING"] = "gzip"
            this[mode] = timed(partial(run_batch, app, environ))[0]
        this["encode"] = timed(partial(_encode, plain_answer))[0]
        this["compress"] = timed(partial(gzip_body, body))[0]
        this["decompress"] = timed(partial(zlib.decompress, gzip_answer, 31))[0]
        if round_:
            for key, value in this.items():
                seconds[key].append(value)
    return {
        "n": n,
        "bytes": {
            "request": len(body),
            "request_gzip": len(compressed),
            "answer": len(plain_answer),
            "answer_gzip": len(gzip_answer),
        },
        "flights": {
            "request": flights(len(body)),
            "request_gzip": flights(len(compressed)),
            "answer": flights(len(plain_answer)),
            "answer_gzip": flights(len(gzip_answer)),
        },
        "seconds": seconds,
        "ratio": [g / p for g, p in zip(seconds["gzip"], seconds["plain"], strict=True)],
        "added": [g - p for g, p in zip(seconds["gzip"], seconds["plain"], strict=True)],
    }


def run(log: Callable[[str], None] = print) -> dict[str, Any]:
    cells = []
    for n in NS:
        cell = measure(n, ROUNDS[n])
        b, s = cell["bytes"], cell["seconds"]
        log(
            f"  N = {n:5}: request {b['request']:7} -> {b['request_gzip']:6} B, answer "
            f"{b['answer']:7} -> {b['answer_gzip']:6} B; server {median(s['plain']) * 1e3:.2f}"
            f" -> {median(s['gzip']) * 1e3:.2f} ms ({median(cell['ratio']):.3f}x, "
            f"{median(cell['added']) / n * 1e6:+.1f} us a part); encode answer "
            f"{median(s['encode']) * 1e6:.0f} us, compress "
            f"{median(s['compress']) * 1e6:.0f} us, decompress "
            f"{median(s['decompress']) * 1e6:.0f} us"
        )
        cells.append(cell)
    return {"cells": cells}


def section(data: Any) -> list[str]:
    """The report's section (``docs/benchmarks.md``) for ``bench/results/gzip.json``."""
    if not data:
        return []
    lines = [
        "## gzip both ways",
        "",
        "N calls of the workload as one multipart batch (`bench/compression.py`): the bytes "
        "of the request body and of the answer as they are and in gzip (zlib level 1, the "
        "level both sides use), the flights each needs under TCP slow start (10 segments of "
        "1,448 bytes, doubling every round trip), the server's time for the whole batch "
        "in-process with and without `Accept-Encoding: gzip` (alternating; the ratio is "
        "taken within each round, and so is the time gzip adds, per part); and, alone, the "
        "CPU of the server's encoder for the answer (what gzip adds to a batch, without the "
        "noise of the batch around it) and of the client compressing its body and "
        "decompressing the answer.",
        "",
        "| N | request, B | in gzip | flights | answer, B | in gzip | flights | server, plain "
        "| server, gzip | gzip / plain | added per part | server's gzip | client's gzip "
        "| client's gunzip |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in data["cells"]:
        b, f, s = cell["bytes"], cell["flights"], cell["seconds"]
        lines.append(
            f"| {cell['n']:,} | {b['request']:,} | {b['request_gzip']:,} | "
            f"{f['request']} -> {f['request_gzip']} | {b['answer']:,} | {b['answer_gzip']:,} | "
            f"{f['answer']} -> {f['answer_gzip']} | {median(s['plain']) * 1e3:.2f} ms | "
            f"{median(s['gzip']) * 1e3:.2f} ms | {median(cell['ratio']):.3f}x "
            f"({min(cell['ratio']):.2f}-{max(cell['ratio']):.2f}) | "
            f"{median(cell['added']) / cell['n'] * 1e6:.1f} µs | "
            f"{median(s['encode']) * 1e6:.0f} µs | {median(s['compress']) * 1e6:.0f} µs | "
            f"{median(s['decompress']) * 1e6:.0f} µs |"
        )
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compression", description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS / "gzip.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = run()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"gzip both ways: {time.perf_counter() - started:.0f} s, written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
