"""Reading hostile batch bodies, side by side with a plain body of the same size (issue 11).

The multipart reader's work is linear in its input whatever the body's shape
(``tests/test_linear_time.py`` counts it); this measures what that work costs in time.
Bodies of 1, 4 and 16 MiB go through ``RequestReader`` in 64 KiB chunks (what the WSGI
adapter reads) and in 1 KiB chunks (a slow client, or an ASGI server passing small messages
on), under limits that let the whole body be read:

- ``plain``: one part whose request carries the body (``Content-Length``): a large upload;
- ``blanks``: a small part, then blanks after the boundary that ends it (spaces and tabs),
  ending their line only at the end of the body: the reader holds them as the part's transport
  padding and walks each chunk of them as it arrives. The shape of the bug of issue 11 (2 MiB
  took 1.5 s, 16 MiB about two minutes);
- ``near``: a part whose content is lines that begin like its delimiter, one byte more
  (``\\n--bX``, with the one-letter boundary ``b``): each is found and refused, the worst shape
  known for the time per byte.

Rounds read the three bodies one after another; time per MiB and the ratio to the plain body
are medians over the rounds (the ratio taken within each round). Target: the blanks within
1.5x of a plain body.

Run ``python -m bench.hostile``; results go to ``bench/results/hostile.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.timing import median, timed
from flask_batch.wire.media_type import boundary_of
from flask_batch.wire.model import KIB, MIB, Limits
from flask_batch.wire.multipart_requests import RequestReader

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SIZES = (1 * MIB, 4 * MIB, 16 * MIB)
CHUNKS = (64 * KIB, 1 * KIB)
SHAPES = ("plain", "blanks", "near")
#: Rounds per body size: enough for a stable median, about 30 s in all on a 2-core machine.
ROUNDS = {1 * MIB: 9, 4 * MIB: 7, 16 * MIB: 5}
CONTENT_TYPE = "multipart/mixed; boundary=b"
#: Room for every body: what is measured is reading, not a refusal.
LIMITS = Limits(max_body_size=64 * MIB, max_part_size=64 * MIB)
HEAD = b"--b\r\nContent-Type: application/http\r\n\r\n"
CLOSE = b"\r\n--b--\r\n"


def body(shape: str, size: int) -> bytes:
    """A batch body of ``shape`` and ``size`` bytes."""
    if shape == "plain":
        request = b"POST /blobs/x HTTP/1.1\r\nContent-Length: %d\r\n\r\n"
        fill = size - len(HEAD + request % size + CLOSE)  # its length has as many digits
        return HEAD + request % fill + b"x" * fill + CLOSE
    if shape == "blanks":
        opening = HEAD + b"POST /x HTTP/1.1\r\n\r\n\r\n--b"
        closing = b"\r\n" + HEAD[len(b"--b\r\n") :] + b"GET /y HTTP/1.1\r\n" + CLOSE
        fill = size - len(opening + closing)
        return opening + (b" \t" * size)[:fill] + closing
    opening = HEAD + b"POST /x HTTP/1.1\r\nContent-Type: text/plain\r\n\r\n"
    fill = size - len(opening + CLOSE)
    return opening + (b"\n--bX" * size)[:fill] + CLOSE


def read(data: bytes, chunk: int) -> int:
    """Feed ``data`` in chunks of ``chunk`` bytes; the number of requests read."""
    reader = RequestReader(boundary_of(CONTENT_TYPE), LIMITS)
    for start in range(0, len(data), chunk):
        reader.feed(data[start : start + chunk])
    return len(reader.close())


def measure(size: int, chunk: int, rounds: int) -> dict[str, Any]:
    bodies = {shape: body(shape, size) for shape in SHAPES}
    expected = {"plain": 1, "blanks": 2, "near": 1}
    for shape, data in bodies.items():
        if len(data) != size or read(data, chunk) != expected[shape]:
            raise AssertionError(f"the {shape} body of {size} bytes is not what it should be")
    seconds: dict[str, list[float]] = {shape: [] for shape in SHAPES}
    for round_ in range(rounds + 1):  # round 0 warms up and is dropped
        this_round = {shape: timed(partial(read, bodies[shape], chunk))[0] for shape in SHAPES}
        if round_:
            for shape in SHAPES:
                seconds[shape].append(this_round[shape])
    return {
        "size": size,
        "chunk": chunk,
        "seconds": seconds,
        "ratio": {
            shape: [a / b for a, b in zip(seconds[shape], seconds["plain"], strict=True)]
            for shape in SHAPES
            if shape != "plain"
        },
    }


def run(log: Callable[[str], None] = print) -> dict[str, Any]:
    cells = []
    for size in SIZES:
        for chunk in CHUNKS:
            cell = measure(size, chunk, ROUNDS[size])
            per_mib = {s: median(v) / (size / MIB) * 1000 for s, v in cell["seconds"].items()}
            log(
                f"  {size // MIB:2} MiB in {chunk // KIB:2} KiB chunks: plain "
                f"{per_mib['plain']:6.2f} ms/MiB, blanks {per_mib['blanks']:6.2f} "
                f"({median(cell['ratio']['blanks']):.2f}x), near {per_mib['near']:6.1f} "
                f"({median(cell['ratio']['near']):.1f}x)"
            )
            cells.append(cell)
    return {"cells": cells}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS / "hostile.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = run()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"hostile bodies: {time.perf_counter() - started:.0f} s, written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
