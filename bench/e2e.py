"""End to end: N calls through a simulated network, one way per scenario, side by side.

Every scenario makes the same N calls of the workload (``bench.workload``) against the same
application, served by a real server in its own process, through the latency proxy (in its
own process too) at each round trip time. A run is timed from "the client object exists"
to "every answer has been read and checked"; the client object itself is built before.

- cold: no connection is open when the clock starts (the proxy charges one round trip for
  each new connection's TCP handshake, see ``bench.latency_proxy``): a client starting up.
- warm: the connections are open (and used once) before the clock starts: a client in the
  middle of a session. Measured at N = 100, the cell the targets are about.
- known (the batch clients only, with slow start, N = 100): no connection is open, but the
  clients of the process know the endpoint from an earlier batch (``forget_endpoints``
  not called): a long-running service whose idle connection the server closed. Cold runs
  forget what is known, as a new process would.

Two networks: pure latency, and the same round trip with TCP slow start (the proxy's
``--slow-start``: 10 segments of 1,448 bytes in flight at first, doubling each round trip).
The batch scenarios use the clients' public API as a user would (every call queued, one
``send_batch()``; ``asyncio.gather`` through ``AsyncBatchTransport``), so that the client
splits, pools and compresses as it does by default. In the same run: the *direct cost* of
the same N calls, Flask's own work answering them in-process (``bench.server_cost``'s (a),
in this process), the floor the targets of issue 14 add round trips to; and the bytes each
scenario puts on the wire at N = 100 (counted by an in-process proxy), which decide how
many round trips slow start costs it.

Run ``python -m bench.e2e`` (``--quick`` for a smoke run); results go to
``bench/results/e2e.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import requests

from bench.latency_proxy import LatencyProxy
from bench.serve import GUNICORN_ARGS, flask_batch_app
from bench.server_cost import call_environ, run_direct
from bench.timing import timed
from bench.workload import Call, calls
from flask_batch.client import Batching, close_shared_connections, forget_endpoints
from flask_batch.client.httpx import AsyncBatchTransport

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
#: The server's ``max_parts`` (Flask-Batch's default): longer workloads are split.
MAX_PARTS = 100
THREADS = 8
TIMEOUT = 120.0
#: The networks: the proxy's options for each (``bench.latency_proxy``).
NETWORKS = {"latency": (), "slow_start": ("--slow-start",)}
#: In-process rounds of the direct cost per N (about 6 ms a round at N = 100).
DIRECT_ROUNDS = {1: 40, 10: 40, 100: 40, 1000: 10}


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    server: str  # "gunicorn" or "hypercorn"
    run: Callable[[str, list[Call], str], float]  # (base URL, calls, variant) -> seconds


@dataclass
class Cell:
    rtt_ms: float
    n: int
    scenario: str
    variant: str  # "cold", "warm" or "known"
    seconds: list[float] = field(default_factory=list)
    network: str = "latency"  # a key of NETWORKS


class WrongAnswer(AssertionError):
    pass


def check(call: Call, status: int, body: Any) -> None:
    """Every answer is the right one: 200 and the item asked for (a batch must not lie)."""
    if status != 200 or not isinstance(body, dict) or body.get("id") != call.item:
        raise WrongAnswer(f"{call.method} {call.path}: {status} {body!r}"[:300])


# -- the scenarios ----------------------------------------------------------------------------


def sequential(base: str, work: list[Call], variant: str) -> float:
    """One ``requests.Session``, one keep-alive connection, one call after the other."""
    with requests.Session() as session:
        if variant == "warm":
            session.get(base + "/items/0", timeout=TIMEOUT).raise_for_status()
        start = time.perf_counter()
        for call in work:
            r = session.request(call.method, base + call.path, json=call.body, timeout=TIMEOUT)
            check(call, r.status_code, r.json())
        return time.perf_counter() - start


def threaded(base: str, work: list[Call], variant: str) -> float:
    """8 threads, each with its own ``requests.Session`` (8 connections), sharing the calls."""
    sessions = [requests.Session() for _ in range(THREADS)]
    pending = iter(work)
    lock = threading.Lock()
    start_line = threading.Barrier(THREADS + 1)
    errors: list[BaseException] = []

    def worker(session: requests.Session) -> None:
        try:
            if variant == "warm":
                session.get(base + "/items/0", timeout=TIMEOUT).raise_for_status()
        finally:
            start_line.wait()
        try:
            while True:
                with lock:
                    call = next(pending, None)
                if call is None:
                    return
                r = session.request(call.method, base + call.path, json=call.body, timeout=TIMEOUT)
                check(call, r.status_code, r.json())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(s,)) for s in sessions]
    try:
        for thread in threads:
            thread.start()
        start_line.wait()
        start = time.perf_counter()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - start
    finally:
        for session in sessions:
            session.close()
    if errors:
        raise errors[0]
    return seconds


def http2(base: str, work: list[Call], variant: str) -> float:
    """httpx over HTTP/2 (h2c, prior knowledge): one connection, every call in flight at once."""

    async def run() -> float:
        async with httpx.AsyncClient(http1=False, http2=True, timeout=TIMEOUT) as client:
            if variant == "warm":
                (await client.get(base + "/items/0")).raise_for_status()
            start = time.perf_counter()
            answers = await asyncio.gather(
                *(client.request(c.method, base + c.path, json=c.body) for c in work)
            )
            for call, r in zip(work, answers, strict=True):
                if r.http_version != "HTTP/2":
                    raise WrongAnswer(f"answered over {r.http_version}, not HTTP/2")
                check(call, r.status_code, r.json())
            seconds: float = time.perf_counter() - start
            return seconds

    return asyncio.run(run())


#: What a scenario reads when its clock starts and stops (``bench.floor`` reads more there).
Clock = Callable[[], float]


def batched(
    base: str,
    work: list[Call],
    variant: str,
    *,
    compress: bool = True,
    clock: Clock = time.perf_counter,
) -> float:
    """``flask_batch.client.Batching``: every call queued, then one ``send_batch()``; the
    client splits the queue to the endpoint's limits (``MAX_PARTS``) as it does by default.
    ``compress=False``: no gzip either way (``bench.compression``), for an A/B."""
    path = "/batch" if compress else "/batch-identity"
    if variant == "known":  # an earlier batch of the process taught the endpoint
        with Batching(base + path, timeout=TIMEOUT) as session:
            session.get(base + "/items/0")
    if variant != "warm":  # no connection the client kept open from an earlier run
        close_shared_connections()
    if variant == "cold":  # nor anything learned: a new process
        forget_endpoints()
    with Batching(
        base + path, timeout=TIMEOUT, compress_bodies=None if compress else False
    ) as session:
        if variant == "warm":
            session.get(base + "/items/0")
            session.send_batch()
        start = clock()
        for call in work:
            session.request(call.method, base + call.path, json=call.body)
        for call, r in zip(work, session.send_batch(), strict=True):
            check(call, r.status_code, r.json())
        return clock() - start


def async_batched(
    base: str, work: list[Call], variant: str, *, clock: Clock = time.perf_counter
) -> float:
    """``httpx.AsyncClient`` over ``AsyncBatchTransport``: ``asyncio.gather`` of the calls,
    which the transport collects into batches (split to the endpoint's limits)."""

    if variant == "cold":  # nothing learned: a new process (its connections are its own)
        forget_endpoints()

    async def run() -> float:
        if variant == "known":  # an earlier transport of the process taught the endpoint
            async with httpx.AsyncClient(
                transport=AsyncBatchTransport(base + "/batch"), timeout=TIMEOUT
            ) as earlier:
                (await earlier.get(base + "/items/0")).raise_for_status()
        transport = AsyncBatchTransport(base + "/batch")
        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
            if variant == "warm":
                (await client.get(base + "/items/0")).raise_for_status()
            start = clock()
            answers = await asyncio.gather(
                *(client.request(c.method, base + c.path, json=c.body) for c in work)
            )
            for call, r in zip(work, answers, strict=True):
                check(call, r.status_code, r.json())
            seconds: float = clock() - start
            return seconds

    return asyncio.run(run())


SCENARIOS = [
    Scenario("sequential", "sequential (requests.Session, keep-alive)", "gunicorn", sequential),
    Scenario("threads8", "8 threads (8 connections)", "gunicorn", threaded),
    Scenario("http2", "HTTP/2 multiplexing (httpx, Hypercorn)", "hypercorn", http2),
    Scenario("batch", "Flask-Batch (Batching, gunicorn)", "gunicorn", batched),
    Scenario("batch_hypercorn", "Flask-Batch (Batching, Hypercorn HTTP/1.1)", "hypercorn", batched),
    Scenario(
        "batch_async",
        "Flask-Batch (httpx.AsyncClient with AsyncBatchTransport, gunicorn)",
        "gunicorn",
        async_batched,
    ),
]

#: The scenarios measured "known" too: the clients that share what they know of an endpoint.
KNOWN_SCENARIOS = ("batch", "batch_async")


# -- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}


@contextmanager
def _process(args: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(args, cwd=ROOT, env=_env(), text=True, **kwargs)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def server(kind: str) -> Iterator[int]:
    """Start ``kind`` (gunicorn or hypercorn) on a free port; yield the port once it answers."""
    with serving(kind) as (port, _):
        yield port


@contextmanager
def serving(kind: str) -> Iterator[tuple[int, int]]:
    """:func:`server`, yielding its port and its process id (gunicorn's master, whose one
    worker is a child process)."""
    port = free_port()
    if kind == "gunicorn":
        args = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *GUNICORN_ARGS]
    else:
        args = [sys.executable, "-m", "bench.serve", kind, "--port", str(port)]
    with _process(args) as process:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{kind} exited with {process.returncode}")
            try:
                requests.get(f"http://127.0.0.1:{port}/items/0", timeout=2).raise_for_status()
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield port, process.pid


def direct_cost(n: int, rounds: int, clock: Clock = time.perf_counter) -> list[float]:
    """Seconds Flask takes to answer the N calls in this process, one round after another:
    each call's environ built beforehand, then dispatched into ``app.wsgi_app`` (the
    server-side floor of ``bench.server_cost``, (a)), on the application the servers run."""
    app = flask_batch_app()
    work = calls(n)
    run_direct(app, [call_environ(call) for call in work])  # first requests: imports, caches
    seconds = []
    for _ in range(rounds):
        environs = [call_environ(call) for call in work]
        seconds.append(timed(functools.partial(run_direct, app, environs), clock)[0])
    return seconds


def wire_bytes(scenario: Scenario, port: int, work: list[Call]) -> dict[str, int]:
    """Bytes a cold run of ``scenario`` sends each way, through an in-process proxy that adds
    nothing (only counted: no time is taken through it)."""
    with LatencyProxy(("127.0.0.1", port), handshake=False) as counting:
        scenario.run(f"http://127.0.0.1:{counting.port}", work, "cold")
        return {"up": counting.stats.bytes_up, "down": counting.stats.bytes_down}


@contextmanager
def proxy(port: int, rtt_ms: float, *options: str) -> Iterator[int]:
    """The latency proxy in front of ``port``, in its own process; yields its port."""
    with proxying(port, rtt_ms, *options) as (proxied, _):
        yield proxied


@contextmanager
def proxying(port: int, rtt_ms: float, *options: str) -> Iterator[tuple[int, int]]:
    """:func:`proxy`, yielding its port and its process id."""
    args = [sys.executable, "-m", "bench.latency_proxy", str(port), "--rtt", str(rtt_ms)]
    args += options
    with _process(args, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        line = process.stdout.readline()  # "listening on 127.0.0.1:PORT -> ..."
        if not line.startswith("listening on"):
            raise RuntimeError(f"the latency proxy did not start: {line!r}")
        yield int(line.split()[2].rsplit(":", 1)[1]), process.pid


def calibrate(rtt_ms: float, trips: int = 40) -> list[float]:
    """Round trips (ms) of 200 bytes through the proxy process to an echo server.

    What the proxy actually adds, on this machine, at this moment: its delays are met late
    by the event loop's timer granularity and by scheduling on a busy machine.
    """

    class Echo(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            while data := self.request.recv(65536):
                self.request.sendall(data)

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    times: list[float] = []
    with Server(("127.0.0.1", 0), Echo) as echo:
        thread = threading.Thread(target=echo.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            with (
                proxy(echo.server_address[1], rtt_ms, "--no-handshake") as port,
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock,
            ):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for _ in range(trips):
                    start = time.perf_counter()
                    sock.sendall(b"x" * 200)
                    received = 0
                    while received < 200:
                        received += len(sock.recv(65536))
                    times.append((time.perf_counter() - start) * 1000)
        finally:
            echo.shutdown()
            thread.join()
    return times


# -- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    rtts_ms: Sequence[float] = (0.0, 50.0)
    #: The same cells again with TCP slow start modelled (at 0 ms it would change nothing).
    slow_start_rtts_ms: Sequence[float] = (50.0,)
    ns: Sequence[int] = (1, 10, 100, 1000)
    warm_ns: Sequence[int] = (100,)
    #: The cells "known" (``KNOWN_SCENARIOS``), with slow start only.
    known_ns: Sequence[int] = (100,)
    #: Each cell is run at least ``min_reps`` times, and more (up to ``max_reps``) while its
    #: runs fit in ``cell_budget`` seconds: the slowest cells (sequential, N = 1,000, 50 ms:
    #: about 50 s a run) are run once.
    min_reps: int = 1
    max_reps: int = 7
    cell_budget: float = 30.0


QUICK = Plan(
    rtts_ms=(0.0, 20.0), slow_start_rtts_ms=(20.0,), ns=(1, 10, 100), max_reps=2, cell_budget=2.0
)


def reps_for(first: float, plan: Plan) -> int:
    return max(plan.min_reps, min(plan.max_reps, int(plan.cell_budget / max(first, 1e-6))))


def run_cells(
    bases: dict[str, str],
    plan: Plan,
    *,
    rtt_ms: float,
    n: int,
    variant: str,
    network: str,
    log: Callable[[str], None],
) -> list[Cell]:
    """All scenarios at one (rtt, N): round 1 runs each once, later rounds only the unfinished."""
    work = calls(n)
    scenarios = [s for s in SCENARIOS if variant != "known" or s.key in KNOWN_SCENARIOS]
    cells = {s.key: Cell(rtt_ms, n, s.key, variant, network=network) for s in scenarios}
    wanted: dict[str, int] = {}
    for round_ in range(plan.max_reps):
        for scenario in scenarios:
            cell = cells[scenario.key]
            if round_ and len(cell.seconds) >= wanted[scenario.key]:
                continue
            cell.seconds.append(scenario.run(bases[scenario.server], work, variant))
            if not round_:
                wanted[scenario.key] = reps_for(cell.seconds[0], plan)
    for cell in cells.values():
        times = sorted(cell.seconds)
        log(
            f"  {network:10} {variant:5} rtt={rtt_ms:g}ms N={n:<5} {cell.scenario:16} "
            f"median {times[len(times) // 2] * 1000:9.1f} ms  ({len(times)} runs)"
        )
    return list(cells.values())


@dataclass
class Results:
    cells: list[Cell]
    #: RTT (ms, as text) -> measured round trips through the proxy alone, ms.
    calibration: dict[str, list[float]]
    #: N (as text) -> seconds of each in-process round of the direct cost (``direct_cost``).
    direct: dict[str, list[float]] = field(default_factory=dict)
    #: Scenario -> bytes sent up and down by a cold run at ``WIRE_N`` calls.
    wire: dict[str, dict[str, int]] = field(default_factory=dict)


#: The N whose bytes on the wire are counted (the targets' N).
WIRE_N = 100


def run(plan: Plan, log: Callable[[str], None] = print) -> Results:
    results = Results([], {})
    with ExitStack() as stack:
        ports = {kind: stack.enter_context(server(kind)) for kind in ("gunicorn", "hypercorn")}
        log(f"servers: {ports}")
        # Warm up both servers and every client code path (imports, first connections).
        direct = {kind: f"http://127.0.0.1:{port}" for kind, port in ports.items()}
        for scenario in SCENARIOS:
            scenario.run(direct[scenario.server], calls(20), "cold")
        for n in sorted({*plan.ns, *plan.warm_ns}):
            results.direct[str(n)] = times = direct_cost(n, DIRECT_ROUNDS.get(n, 10))
            log(f"  direct cost, N = {n}: {sorted(times)[len(times) // 2] * 1000:.2f} ms")
        for scenario in SCENARIOS:
            wire = wire_bytes(scenario, ports[scenario.server], calls(WIRE_N))
            results.wire[scenario.key] = wire
            log(f"  {scenario.key}, N = {WIRE_N}: {wire['up']:,} bytes up, {wire['down']:,} down")
        runs = [("latency", rtt) for rtt in plan.rtts_ms]
        runs += [("slow_start", rtt) for rtt in plan.slow_start_rtts_ms]
        for network, rtt_ms in runs:
            if network == "latency":
                results.calibration[f"{rtt_ms:g}"] = trips = sorted(calibrate(rtt_ms))
                log(f"  proxy at {rtt_ms:g} ms: a round trip takes {trips[len(trips) // 2]:.2f} ms")
            with ExitStack() as proxies:
                bases = {
                    kind: "http://127.0.0.1:"
                    + str(proxies.enter_context(proxy(port, rtt_ms, *NETWORKS[network])))
                    for kind, port in ports.items()
                }
                known_ns = plan.known_ns if network == "slow_start" else ()
                for variant, ns in (("cold", plan.ns), ("warm", plan.warm_ns), ("known", known_ns)):
                    for n in ns:
                        results.cells += run_cells(
                            bases,
                            plan,
                            rtt_ms=rtt_ms,
                            n=n,
                            variant=variant,
                            network=network,
                            log=log,
                        )
    return results


def save(results: Results, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "scenarios": {s.key: {"label": s.label, "server": s.server} for s in SCENARIOS},
        "max_parts": MAX_PARTS,
        "networks": {name: list(options) for name, options in NETWORKS.items()},
        "proxy_round_trip_ms": results.calibration,
        "direct_seconds": results.direct,
        "wire_n": WIRE_N,
        "wire_bytes": results.wire,
        "cells": [asdict(cell) for cell in results.cells],
    }
    path.write_text(json.dumps(document, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small N, 2 runs")
    parser.add_argument("--out", type=Path, default=RESULTS / "e2e.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = run(QUICK if args.quick else Plan())
    save(results, args.out)
    print(f"end to end: {time.perf_counter() - started:.0f} s, written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
