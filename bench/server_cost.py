"""Server-side cost of a batch, in-process (no sockets), side by side with its floor.

For the same N calls of the workload (``bench.workload``):

(a) ``direct``: each call's environ is built beforehand, and the clock runs while each is
    dispatched into ``app.wsgi_app`` and its body read. That is Flask's own cost: the floor.
(b) ``batch``: one ``POST /batch`` environ carrying the N calls as one multipart body; the
    clock runs while ``app.wsgi_app`` answers it and the streamed answer is read (parse,
    dispatch each part through ``app.wsgi_app``, serialise).
(c) ``test_client``: ``app.test_client()`` makes the N calls one by one (each builds its
    environ with Werkzeug's ``EnvironBuilder``): what a naive in-process batch would cost.
(d) ``json``: the same as (b), the N calls in one ``application/json`` batch body (the
    OData 4.01 / Microsoft Graph format) answered in JSON.

Rounds interleave (a), (b), (c) and (d), and the ratios b/a and d/a are taken within each
round, so slow moments of a shared machine hit all four alike. Memory is measured in fresh
subprocesses: ``python -m bench.server_cost memory CASE {tracemalloc,rss}``, CASE one of
:data:`MEMORY_CASES` (8 MiB JSON batches dense in brackets among them, and one part whose
answer streams 128 MiB, through the Flask extension and through the ASGI middleware, and in
gzip through the Flask extension).

Run ``python -m bench.server_cost``; results go to ``bench/results/server.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import io
import json
import logging
import os
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask
from werkzeug.test import EnvironBuilder

from bench.timing import median, start_response, timed
from bench.workload import (
    JSON_SHAPES,
    Call,
    batch_body,
    blob_batch_body,
    calls,
    create_app,
    json_batch_body,
    json_body,
    json_shape_body,
    multipart_content_type,
)
from flask_batch import add_batch_route, asgi

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import WSGIEnvironment

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MIB = 1024 * 1024
BLOB_SIZE = 50 * MIB
#: The answer of the streamed-answer cases, sent in chunks of STREAM_CHUNK by the application.
ANSWER_SIZE = 128 * MIB
STREAM_CHUNK = 64 * 1024
#: Rounds per N: enough for a stable median, about 25 s in all on a 2-core machine.
ROUNDS = {10: 150, 100: 40, 1000: 10, 10_000: 4}


def bench_app() -> Flask:
    """The workload app, its batch endpoint configured to accept every benchmark's batch."""
    return create_app(
        lambda app: add_batch_route(
            app,
            max_parts=20_000,
            max_body_size=128 * MIB,
            max_part_size=64 * MIB,
        )
    )


def call_environ(call: Call) -> WSGIEnvironment:
    body = json_body(call)
    builder = EnvironBuilder(
        path=call.path,
        method=call.method,
        data=body or None,
        content_type="application/json" if body else None,
        headers=[("Accept", "application/json")],
    )
    try:
        environ: WSGIEnvironment = builder.get_environ()
    finally:
        builder.close()
    return environ


def batch_environ(body: bytes, content_type: str | None = None) -> WSGIEnvironment:
    """The environ of ``POST /batch`` with ``body`` (multipart unless ``content_type``)."""
    return {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/batch",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "localhost",
        "CONTENT_TYPE": content_type or multipart_content_type(),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def drain(chunks: Iterable[bytes]) -> int:
    """Read a WSGI response as a server would (chunk by chunk, then close); its size."""
    size = 0
    try:
        for chunk in chunks:
            size += len(chunk)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return size


def run_direct(app: Flask, environs: list[WSGIEnvironment]) -> int:
    return sum(drain(app.wsgi_app(environ, start_response)) for environ in environs)


def run_batch(app: Flask, environ: WSGIEnvironment) -> int:
    return drain(app.wsgi_app(environ, start_response))


def run_test_client(app: Flask, work: list[Call]) -> int:
    client = app.test_client()
    size = 0
    for call in work:
        response = client.open(
            call.path, method=call.method, json=call.body, headers={"Accept": "application/json"}
        )
        size += len(response.get_data())
        response.close()
    return size


def answer_of(app: Flask, environ: WSGIEnvironment) -> tuple[list[str], bytes]:
    """The statuses the app started its answer with, and the whole answer."""
    statuses: list[str] = []

    def record(
        status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        statuses.append(status)
        return start_response(status, headers, exc_info)

    return statuses, b"".join(app.wsgi_app(environ, record))


def check_batch_answer(app: Flask, work: list[Call]) -> None:
    """The batch answers every call with a 200, in order (so the timings time real work)."""
    statuses, answer = answer_of(app, batch_environ(batch_body(work)))
    ok = answer.count(b"\r\nHTTP/1.1 200 OK\r\n")
    if statuses != ["200 OK"] or ok != len(work):
        raise AssertionError(f"batch answered {statuses}, {ok} of {len(work)} parts 200 OK")


def json_environ(body: bytes) -> WSGIEnvironment:
    return batch_environ(body, "application/json")


def check_json_answer(app: Flask, work: list[Call]) -> None:
    """The JSON batch answers every call with a 200, in order, each with its item."""
    statuses, raw = answer_of(app, json_environ(json_batch_body(work)))
    answer = json.loads(raw)
    responses = answer.get("responses") if isinstance(answer, dict) else None
    expected = [(str(i), 200, call.item) for i, call in enumerate(work)]
    got = [(r.get("id"), r.get("status"), (r.get("body") or {}).get("id")) for r in responses or []]
    if statuses != ["200 OK"] or got != expected:
        raise AssertionError(f"the JSON batch answered {statuses}, {got[:3]}...")


@dataclass
class Cost:
    n: int
    direct: list[float] = field(default_factory=list)
    batch: list[float] = field(default_factory=list)
    test_client: list[float] = field(default_factory=list)
    json: list[float] = field(default_factory=list)
    ratio: list[float] = field(default_factory=list)  # batch / direct, per round
    json_ratio: list[float] = field(default_factory=list)  # json / direct, per round


def measure(n: int, rounds: int, app: Flask) -> Cost:
    work = calls(n)
    body = batch_body(work)
    body_json = json_batch_body(work)
    check_batch_answer(app, work)
    check_json_answer(app, work)
    cost = Cost(n)
    for round_ in range(rounds + 1):  # round 0 warms up and is dropped
        environs = [call_environ(call) for call in work]
        a, _ = timed(partial(run_direct, app, environs))
        b, _ = timed(partial(run_batch, app, batch_environ(body)))
        c, _ = timed(partial(run_test_client, app, work))
        d, _ = timed(partial(run_batch, app, json_environ(body_json)))
        if round_:
            cost.direct.append(a)
            cost.batch.append(b)
            cost.test_client.append(c)
            cost.json.append(d)
            cost.ratio.append(b / a)
            cost.json_ratio.append(d / a)
    return cost


def scaling(app: Flask, rounds: int = 5, largest: int = 10_000) -> dict[str, Any]:
    """Time per part at each N, measured next to each other: the scaling target's numbers.

    Each round answers one ``largest``-part batch and, right beside it, several batches of
    10, 100 and 1,000 parts (their median): slow moments of the machine hit every N alike.
    Per round, each N's time per part is divided by N = 100's.
    """
    sizes = {10: 30, 100: 10, 1000: 3, largest: 1}  # N -> batches per round
    bodies = {n: batch_body(calls(n)) for n in sizes}
    per_part: dict[int, list[float]] = {n: [] for n in sizes}
    relative: dict[int, list[float]] = {n: [] for n in sizes}
    for round_ in range(rounds + 1):  # round 0 warms up and is dropped
        this_round = {}
        for n, repeat in sizes.items():
            seconds = [
                timed(partial(run_batch, app, batch_environ(bodies[n])))[0] for _ in range(repeat)
            ]
            this_round[n] = median(seconds) / n * 1e6
        if round_:
            for n in sizes:
                per_part[n].append(this_round[n])
                relative[n].append(this_round[n] / this_round[100])
    return {
        "rounds": rounds,
        "per_part_us": {str(n): values for n, values in per_part.items()},
        "relative_to_100": {str(n): values for n, values in relative.items()},
    }


# -- memory -----------------------------------------------------------------------------------


def _status_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise LookupError(field_name)


#: The memory cases: 1,000 small multipart parts, one 50 MB multipart part, 8 MiB JSON
#: batches of the shapes that cost a parser the most memory per byte (json-<shape>), and one
#: part answered with ANSWER_SIZE bytes streamed (through Flask, and through ASGI).
MEMORY_CASES = (
    "parts1000",
    "blob50mb",
    *(f"json-{shape}" for shape in JSON_SHAPES),
    "answer128mb",
    "answer128mb-asgi",
    "answer128mb-gzip",
)
JSON_MEMORY_SIZE = 8 * MIB


def memory_body(case: str) -> tuple[bytes, str | None]:
    """The batch body of a memory case, and its Content-Type (None: multipart)."""
    if case == "blob50mb":
        return blob_batch_body(BLOB_SIZE), None
    if case == "parts1000":
        return batch_body(calls(1000)), None
    # As many requests as the endpoint allows (bench_app's max_parts), each dense in brackets.
    shape = case.removeprefix("json-")
    return json_shape_body(shape, JSON_MEMORY_SIZE, parts=20_000), "application/json"


def check_memory_answer(app: Flask, case: str, body: bytes) -> None:
    """A JSON case's batch answers 200 to every request (checked after the measurement, so
    that its memory is not in use before it)."""
    if not case.startswith("json-"):
        return
    statuses, raw = answer_of(app, json_environ(body))
    answers = json.loads(raw).get("responses", []) if statuses == ["200 OK"] else []
    if not answers or any(answer.get("status") != 200 for answer in answers):
        raise AssertionError(f"the {case} batch answered {statuses}, {raw[:200]!r}")


def memory_case(case: str, mode: str) -> dict[str, Any]:
    """Peak memory while one batch is answered, beyond what was in use before it started.

    The body is in memory before the measurement (in ``wsgi.input``, as a server's socket
    buffer would hold it), so what is reported is what answering the batch adds.
    """
    answering = _answering(case)
    result: dict[str, Any] = {"case": case, "mode": mode, "body_bytes": answering.body_bytes}
    if mode == "tracemalloc":
        tracemalloc.start()
        before, _ = tracemalloc.get_traced_memory()
        start = time.perf_counter()
        answer_size = answering()
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result["extra_peak_bytes"] = peak - before
    else:
        # Memory freed while the body was built would be reused unseen: give it back first.
        ctypes.CDLL(None).malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to now
        before_kib = _status_kib("VmRSS")
        start = time.perf_counter()
        answer_size = answering()
        seconds = time.perf_counter() - start
        result["extra_peak_bytes"] = (_status_kib("VmHWM") - before_kib) * 1024
        result["rss_before_bytes"] = before_kib * 1024
    result["answer_bytes"] = answer_size
    result["seconds"] = seconds
    answering.check()
    return result


class _Answering:
    """One memory case, ready to run: calling it answers the batch (its answer's size);
    :meth:`check` then checks the answer, once the measurement is over."""

    def __init__(
        self, body_bytes: int, run: Callable[[], int], check: Callable[[], None] = lambda: None
    ) -> None:
        self.body_bytes = body_bytes
        self._run = run
        self.check = check

    def __call__(self) -> int:
        return self._run()


def _answering(case: str) -> _Answering:
    if case.startswith("answer"):
        body = batch_body([Call("GET", "/stream", None)])
        if case.endswith("-asgi"):
            run: Callable[[bytes], int] = _asgi_answer
        else:
            app = Flask(__name__)
            app.get("/stream")(_streamed_view)
            add_batch_route(
                app, max_answer_part_size=2 * ANSWER_SIZE, max_answer_size=2 * ANSWER_SIZE
            )

            def run(body: bytes) -> int:
                if not case.endswith("-gzip"):
                    return run_batch(app, batch_environ(body))
                # In gzip: the size is the answer's once decompressed, as it streams (a
                # refusal, the warm-up's, is not compressed).
                environ = {**batch_environ(body), "HTTP_ACCEPT_ENCODING": "gzip"}
                inflate = zlib.decompressobj(31)
                chunks = app.wsgi_app(environ, start_response)
                if not body.count(b"HTTP/1.1"):
                    return drain(chunks)
                return sum(len(inflate.decompress(chunk)) for chunk in chunks)

        run(batch_body([]))  # first-request imports and caches happen now (a refused batch)
        return _Answering(len(body), partial(run, body))
    app = bench_app()
    check_batch_answer(app, calls(10))  # first-request imports and caches happen now
    check_json_answer(app, calls(10))
    body, content_type = memory_body(case)
    environ = batch_environ(body, content_type)
    return _Answering(
        len(body), partial(run_batch, app, environ), partial(check_memory_answer, app, case, body)
    )


def _streamed_view() -> Iterator[bytes]:
    """ANSWER_SIZE bytes in STREAM_CHUNK chunks, each made as it is sent (a Flask stream)."""
    for _ in range(ANSWER_SIZE // STREAM_CHUNK):
        yield b"x" * STREAM_CHUNK


def _asgi_answer(body: bytes) -> int:
    """The same batch through the ASGI middleware in front of a bare streaming application."""

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(ANSWER_SIZE // STREAM_CHUNK):
            chunk = b"x" * STREAM_CHUNK
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    middleware = asgi.BatchMiddleware(
        application, max_answer_part_size=2 * ANSWER_SIZE, max_answer_size=2 * ANSWER_SIZE
    )
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": "/batch",
        "raw_path": b"/batch",
        "query_string": b"",
        "headers": [
            (b"host", b"localhost"),
            (b"content-type", multipart_content_type().encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    sent = [0]
    request = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if request:
            return request.pop()
        await asyncio.Event().wait()  # connected until the answer is read
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent[0] += len(message.get("body", b""))  # a server writes it out and lets it go

    asyncio.run(middleware(scope, receive, send))
    return sent[0]


def memory(log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Each case in a fresh interpreter, so that one case's peak cannot hide in another's."""
    results = []
    for case in MEMORY_CASES:
        for mode in ("tracemalloc", "rss"):
            done = subprocess.run(
                [sys.executable, "-m", "bench.server_cost", "memory", case, mode],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
            # Against the larger of the two: what the batch brought, or what it answered.
            size = max(result["body_bytes"], result["answer_bytes"])
            log(
                f"  memory {case:16} {mode:11} body {result['body_bytes'] / MIB:7.2f} MiB, "
                f"answer {result['answer_bytes'] / MIB:7.2f} MiB, "
                f"extra peak {result['extra_peak_bytes'] / MIB:7.2f} MiB "
                f"({result['extra_peak_bytes'] / size:.2f}x the larger)"
            )
            results.append(result)
    return results


def logging_cost(n: int, rounds: int, app: Flask) -> dict[str, list[float]]:
    """b/a with the ``flask_batch.parts`` records off and on, side by side in each round.

    On, the records are formatted as lines into ``os.devnull`` (a handler that formats them,
    as a real one would); off, the logger is not enabled for INFO and nothing is built.
    """
    parts = logging.getLogger("flask_batch.parts")
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 (closed below)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    parts.addHandler(handler)
    parts.propagate = False
    body = batch_body(calls(n))
    ratios: dict[str, list[float]] = {"off": [], "on": [], "direct_us": []}
    try:
        for round_ in range(rounds + 1):  # round 0 warms up and is dropped
            environs = [call_environ(call) for call in calls(n)]
            a, _ = timed(partial(run_direct, app, environs))
            parts.setLevel(logging.WARNING)
            off, _ = timed(partial(run_batch, app, batch_environ(body)))
            parts.setLevel(logging.INFO)
            on, _ = timed(partial(run_batch, app, batch_environ(body)))
            if round_:
                ratios["off"].append(off / a)
                ratios["on"].append(on / a)
                ratios["direct_us"].append(a / n * 1e6)
    finally:
        parts.removeHandler(handler)
        parts.setLevel(logging.NOTSET)
        parts.propagate = True
        handler.stream.close()
    return ratios


def run(ns: Iterable[int], log: Callable[[str], None] = print) -> dict[str, Any]:
    app = bench_app()
    costs = []
    for n in ns:
        cost = measure(n, ROUNDS.get(n, 5), app)
        log(
            f"  N={n:<6} direct {median(cost.direct) / n * 1e6:7.1f} us/req  "
            f"batch {median(cost.batch) / n * 1e6:7.1f} us/part  "
            f"test_client {median(cost.test_client) / n * 1e6:7.1f} us/req  "
            f"json {median(cost.json) / n * 1e6:7.1f} us/part  "
            f"b/a {median(cost.ratio):.3f}  d/a {median(cost.json_ratio):.3f}"
        )
        costs.append(asdict(cost))
    scale = scaling(app)
    log(
        "  scaling, time per part relative to N=100, side by side: "
        + ", ".join(
            f"N={n}: {median(values):.2f}x" for n, values in scale["relative_to_100"].items()
        )
    )
    return {"costs": costs, "scaling": scale, "memory": memory(log)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server_cost", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    mem = sub.add_parser("memory", help="one memory case, in this process (prints JSON)")
    mem.add_argument("case", choices=MEMORY_CASES)
    mem.add_argument("mode", choices=["tracemalloc", "rss"])
    logs = sub.add_parser("logging", help="b/a with the per-part log records off and on")
    logs.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--n", type=int, nargs="*", default=[10, 100, 1000, 10_000])
    parser.add_argument("--out", type=Path, default=RESULTS / "server.json")
    args = parser.parse_args(argv)
    if args.command == "memory":
        print(json.dumps(memory_case(args.case, args.mode)))
        return 0
    if args.command == "logging":
        for n in args.n:
            ratios = logging_cost(n, args.rounds, bench_app())
            print(
                f"N={n}: b/a off {median(ratios['off']):.3f} "
                f"({min(ratios['off']):.3f}-{max(ratios['off']):.3f}), "
                f"on {median(ratios['on']):.3f} "
                f"({min(ratios['on']):.3f}-{max(ratios['on']):.3f}); "
                f"direct {median(ratios['direct_us']):.1f} us/req"
            )
        return 0
    started = time.perf_counter()
    results = run(args.n)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"server side: {time.perf_counter() - started:.0f} s, written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
