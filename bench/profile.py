"""Where the batch endpoint's time goes: cProfile and pyinstrument over a 1,000-part batch.

cProfile counts every call, so it attributes time per function exactly but inflates code
that makes many small calls (all Python code here, roughly alike): read its numbers as
shares, and the timed medians of ``bench.server_cost`` as the real cost. The same calls
dispatched directly (``bench.server_cost``'s floor) are profiled too, so that the work Flask
itself does more (or less) for a batch part than for a direct request shows up.

Run ``python -m bench.profile``; it writes ``bench/results/profile.json`` (per module and
per function, µs per part) and ``bench/results/profile-pyinstrument.txt`` (the call tree).
"""

from __future__ import annotations

import argparse
import contextvars
import cProfile
import io
import json
import os
import pstats
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
import urllib3
from flask import Flask
from pyinstrument import Profiler
from requests.adapters import BaseAdapter, HTTPAdapter

from bench.server_cost import (
    batch_environ,
    bench_app,
    call_environ,
    drain,
    run_batch,
    run_direct,
)
from bench.timing import median, start_response, timed
from bench.workload import batch_body, calls
from flask_batch.client import Batching

# The package's internals, for timing each step alone: they may change, so a failed import
# only disables that table.
try:
    from flask_batch.wire.media_type import boundary_of
    from flask_batch.wire.model import Limits
    from flask_batch.wire.multipart_answers import ResponseWriter
    from flask_batch.wire.multipart_requests import _SHAPED_PART, read_requests
    from flask_batch.wsgi_parts import Dispatcher, call_app

    INTERNALS_ERROR = ""
except ImportError as error:
    INTERNALS_ERROR = str(error)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
N = 1000
RUNS = 5
PACKAGE_MARK = "/flask_batch/"


def _module(filename: str) -> str | None:
    """``flask_batch/wire/http1.py`` for a file of this package, else None."""
    if PACKAGE_MARK not in filename or "site-packages" in filename:
        return None
    return "flask_batch/" + filename.rsplit(PACKAGE_MARK, 1)[1]


def _profile(run: Callable[[], object], runs: int) -> pstats.Stats:
    profiler = cProfile.Profile()
    for _ in range(runs):
        profiler.runcall(run)
    return pstats.Stats(profiler)


Key = tuple[str, int, str]


def _entries(stats: pstats.Stats) -> dict[Key, tuple[int, float, float]]:
    """(calls, self seconds, cumulative seconds) per function.

    Built-in functions (``str.encode``, ``re.Pattern.search``, ...) have no file of their own:
    their time is added to the self time of the Python functions that called them, so that
    a parser's regular expressions count as the parser's time.
    """
    raw: dict[Key, tuple[int, int, float, float, dict[Key, tuple[Any, ...]]]]
    raw = stats.stats  # type: ignore[attr-defined]
    entries = {key: [value[1], value[2], value[3]] for key, value in raw.items()}
    for key, (_, _, _, _, callers) in raw.items():
        if key[0] != "~":
            continue
        for caller, (_, _, tottime, _) in callers.items():
            if caller in entries and caller[0] != "~":
                entries[caller][1] += tottime
                entries[key][1] -= tottime
    return {key: (int(c), float(t), float(ct)) for key, (c, t, ct) in entries.items()}


def analyse(n: int = N, runs: int = RUNS) -> dict[str, Any]:
    app = bench_app()
    work = calls(n)
    body = batch_body(work)
    run_batch(app, batch_environ(body))  # warm up

    environs = [batch_environ(body) for _ in range(runs)]
    batch_stats = _profile(lambda: run_batch(app, environs.pop()), runs)
    direct_sets = [[call_environ(c) for c in work] for _ in range(runs)]
    direct_stats = _profile(lambda: run_direct(app, direct_sets.pop()), runs)

    per_part = 1e6 / (n * runs)
    modules: dict[str, float] = defaultdict(float)
    functions: list[dict[str, Any]] = []
    other_batch = 0.0
    for (filename, line, name), (calls_, tottime, cumtime) in _entries(batch_stats).items():
        module = _module(filename)
        if module is None:
            other_batch += tottime
            continue
        modules[module] += tottime
        functions.append(
            {
                "function": f"{module}:{line}({name})",
                "calls_per_part": calls_ / (n * runs),
                "self_us": tottime * per_part,
                "cumulative_us": cumtime * per_part,
            }
        )
    functions.sort(key=lambda f: -float(f["self_us"]))
    other_direct = sum(tottime for _, tottime, _ in _entries(direct_stats).values())
    return {
        "n": n,
        "runs": runs,
        "modules": sorted(
            ({"module": m, "self_us": t * per_part} for m, t in modules.items()),
            key=lambda m: -float(m["self_us"]),
        ),
        "functions": functions[:20],
        "package_us": sum(modules.values()) * per_part,
        "framework_and_app_in_batch_us": other_batch * per_part,
        "framework_and_app_direct_us": other_direct * per_part,
    }


def components(n: int = N, rounds: int = 9) -> dict[str, float] | str:
    """Each step of the batch endpoint timed alone (µs per part, medians), with no profiler.

    Uses the package's internal functions, which may change: if they did, says so instead.
    """
    if INTERNALS_ERROR:
        return f"not measured: the package's internals changed ({INTERNALS_ERROR})"
    try:
        app = bench_app()
        work = calls(n)
        body = batch_body(work)
        content_type = batch_environ(b"")["CONTENT_TYPE"]
        limits = Limits(max_parts=20_000, max_body_size=128 * 2**20)
        requests = read_requests(content_type, [body], limits)
        dispatcher = Dispatcher(app.wsgi_app, batch_environ(body))
        responses = [call_app(app.wsgi_app, call_environ(call)) for call in work]
        writer = ResponseWriter()
        buffer, match = bytearray(body), _SHAPED_PART.match
        delimiter = b"--" + boundary_of(content_type).encode("ascii") + b"\r\n"
        part_starts = [found.end() for found in re.finditer(re.escape(delimiter), body)]
        if len(part_starts) != n or not all(match(buffer, start) for start in part_starts):
            return "not measured: the workload's parts no longer have the one-pass shape"

        steps: dict[str, tuple[Callable[[], object], Callable[[Any], object]]] = {
            "floor: app.wsgi_app on prebuilt environs": (
                lambda: [call_environ(call) for call in work],
                lambda environs: [drain(app.wsgi_app(e, start_response)) for e in environs],
            ),
            "parse: read_requests (multipart + HTTP/1.1)": (
                lambda: None,
                lambda _: read_requests(content_type, [body], limits),
            ),
            # What a parser matching each part against a template could replace: the bound
            # on what it would save (docs/performance.md, "where each target ends").
            "parse, of it: the one-pass pattern matched at each part": (
                lambda: None,
                lambda _: [match(buffer, start) for start in part_starts],
            ),
            "environ: Dispatcher.environ": (
                lambda: None,
                lambda _: [dispatcher.environ(request, i) for i, request in enumerate(requests)],
            ),
            "run: Context().run(call_app, app.wsgi_app)": (
                lambda: [call_environ(call) for call in work],
                lambda environs: [
                    contextvars.Context().run(call_app, app.wsgi_app, e) for e in environs
                ],
            ),
            "serialise: ResponseWriter.part": (
                lambda: None,
                lambda _: [writer.part(r, q) for r, q in zip(responses, requests, strict=True)],
            ),
            "whole batch: POST /batch through app.wsgi_app": (
                lambda: batch_environ(body),
                lambda environ: run_batch(app, environ),
            ),
        }
        samples: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(rounds):
            for name, (setup, step) in steps.items():
                argument = setup()
                seconds, _ = timed(lambda: step(argument))  # noqa: B023 (called at once)
                samples[name].append(seconds / n * 1e6)
        return {name: median(values) for name, values in samples.items()}
    except (AttributeError, TypeError) as error:
        return f"not measured: the package's internals changed ({error})"


class InProcess(BaseAdapter):
    """A ``requests`` transport that hands each request to a WSGI app in-process.

    It times itself (CPU time of the process), so that the client's own work is what remains.
    """

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self.client = app.test_client()
        self.seconds = 0.0

    def send(  # noqa: PLR0917 (requests' BaseAdapter.send signature)
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        start = time.process_time()
        answer = self.client.open(
            request.path_url,
            method=request.method or "GET",
            data=request.body,
            headers=list(request.headers.items()),
        )
        # Read as requests' own adapter reads a socket's answer: urllib3 decodes its
        # Content-Encoding (the batch's answer comes in gzip), which is the client's work.
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(answer.get_data()),
            headers=urllib3.HTTPHeaderDict(list(answer.headers.items())),
            status=answer.status_code,
            reason=answer.status.partition(" ")[2],
            preload_content=False,
            decode_content=True,
        )
        response = HTTPAdapter().build_response(request, raw)
        response.content  # noqa: B018 (read now, as a non-streamed send does)
        response.elapsed = timedelta(0)
        self.seconds += time.process_time() - start
        return response

    def close(self) -> None:
        return None


def client_cost(n: int = 100, rounds: int = 15) -> dict[str, Any]:
    """The ``Batching`` client's own work per call, with the server in-process (µs per call).

    ``queue``: ``session.request(...)`` for each call (each prepared as requests prepares
    it); ``send``: ``send_batch()`` less the time the server took (encode the body, read the
    answer, fill each response). Also with ``trust_env = False``, which skips requests'
    look-ups in the environment (netrc credentials, proxies). Timed in CPU time of the
    process, not wall time: on a shared machine, time spent waiting for a core is not the
    client's cost, and wall time doubles it at random.
    """
    app = bench_app()
    work = calls(n)
    base = "http://localhost"
    result: dict[str, Any] = {"n": n, "environment_variables": len(os.environ)}
    for trust_env in (True, False):
        queue: list[float] = []
        send: list[float] = []
        for round_ in range(rounds + 1):
            adapter = InProcess(app)
            session = Batching(base + "/batch")
            session.trust_env = trust_env
            session.mount("http://", adapter)
            start = time.process_time()
            for call in work:
                session.request(call.method, base + call.path, json=call.body)
            queued = time.process_time()
            responses = session.send_batch()
            done = time.process_time()
            if any(r.status_code != 200 for r in responses):
                raise AssertionError("the in-process batch failed")
            session.close()
            if round_:  # round 0 warms up
                queue.append((queued - start) / n * 1e6)
                send.append((done - queued - adapter.seconds) / n * 1e6)
        key = "default" if trust_env else "trust_env_false"
        result[key] = {"queue_us": median(queue), "send_us": median(send)}
    return result


def call_tree(n: int = N, runs: int = 3) -> str:
    app = bench_app()
    body = batch_body(calls(n))
    run_batch(app, batch_environ(body))
    profiler = Profiler(interval=0.0001)
    profiler.start()
    for _ in range(runs):
        run_batch(app, batch_environ(body))
    profiler.stop()
    text: str = profiler.output_text(unicode=False, color=False, show_all=False)
    return text


def run(log: Callable[[str], None] = print) -> dict[str, Any]:
    result = analyse()
    log(
        f"  profile (cProfile, N={result['n']}): flask_batch {result['package_us']:.1f} us/part; "
        f"Flask+app {result['framework_and_app_in_batch_us']:.1f} us/part in a batch, "
        f"{result['framework_and_app_direct_us']:.1f} us/request direct"
    )
    for module in result["modules"][:6]:
        log(f"    {module['module']:32} {module['self_us']:6.1f} us/part")
    result["client"] = client_cost()
    default, no_env = result["client"]["default"], result["client"]["trust_env_false"]
    log(
        f"    client (Batching), per call: queue {default['queue_us']:.0f} us, "
        f"send {default['send_us']:.0f} us; with trust_env=False: "
        f"{no_env['queue_us']:.0f} + {no_env['send_us']:.0f} us"
    )
    result["components"] = components()
    if isinstance(result["components"], dict):
        for name, us in result["components"].items():
            log(f"    {name:48} {us:6.1f} us/part")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS / "profile.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    (args.out.parent / "profile-pyinstrument.txt").write_text(call_tree())
    print(f"profile: {time.perf_counter() - started:.0f} s, written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
