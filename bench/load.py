"""Load test: concurrent batches of 100 parts against gunicorn on 127.0.0.1 (``make load``).

Two servers run one after the other, each in its own process group and each for ``--duration``
seconds (60 by default) after a short warm-up: gunicorn with several ``sync`` worker processes,
then gunicorn with the ``gthread`` worker. Client threads send batches back to back, each of
``--parts`` sub-requests (100: the default ``max_parts``), half ``GET /echo/<token>`` and half
``POST /echo`` with a JSON body. Every sub-request carries a token no other sub-request has;
the view echoes it back, and every answer is checked: a ``200 multipart/mixed`` with exactly one
part per sub-request, in order, each with its own ``Content-ID`` and its own token in its body
(no crossed answers). Anything else counts as an error, and there must be none.

The run is bounded in time (``--duration``, plus a 30 s timeout per batch) and in count
(``--max-batches``), and talks to 127.0.0.1 only. It reports batches/s, sub-requests/s, and
the p50/p99 latency of a whole batch, and writes them to ``bench/results/load.md`` as a
markdown fragment for ``docs/benchmarks.md``. Exit status 1 if any batch failed a check.

    python bench/load.py [--duration 60] [--clients 8] [--parts 100] [--max-batches 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import requests
from flask import Flask, Response, request

from flask_batch import add_batch_route
from flask_batch.wire.model import SubRequest
from flask_batch.wire.multipart_answers import read_responses
from flask_batch.wire.multipart_requests import encode_requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "load.md"
BOUNDARY = "load-boundary"
WARM_UP = 3.0
BATCH_TIMEOUT = 30.0


def create_app() -> Flask:
    """The application under load: two echo views and the batch endpoint (its defaults)."""
    app = Flask("load")

    @app.get("/echo/<token>")
    def echo_get(token: str) -> Response:
        return Response(token, mimetype="text/plain", headers={"X-Token": token})

    @app.post("/echo")
    def echo_post() -> dict[str, object]:
        document = request.get_json()
        return {"token": document["token"], "seen": request.headers.get("X-Part")}

    add_batch_route(app)
    return app


@dataclass(frozen=True)
class Server:
    """One gunicorn configuration under test."""

    label: str
    worker_class: str
    workers: int
    threads: int

    def describe(self) -> str:
        if self.worker_class == "gthread":
            return f"{self.workers} processes x {self.threads} threads"
        return f"{self.workers} processes"


SERVERS = (
    Server("gunicorn sync", "sync", workers=4, threads=1),
    Server("gunicorn gthread", "gthread", workers=2, threads=4),
)


@dataclass
class Tally:
    """What the client threads saw; shared, so every update holds the lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: list[float] = field(default_factory=list)
    batches: int = 0
    parts: int = 0
    errors: int = 0
    crossed: int = 0
    samples: list[str] = field(default_factory=list)

    def failed(self, message: str, *, crossed: bool = False) -> None:
        with self.lock:
            self.errors += 1
            self.crossed += crossed
            if len(self.samples) < 5:
                self.samples.append(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start(server: Server, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-class",
        server.worker_class,
        "--workers",
        str(server.workers),
        "--threads",
        str(server.threads),
        "--timeout",
        "60",
        "--graceful-timeout",
        "5",
        "--log-level",
        "warning",
        "--chdir",
        str(ROOT),
        "bench.load:create_app()",
    ]
    with log.open("wb") as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log.read_text()}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/echo/ready", timeout=1).ok:
                return process
        except requests.ConnectionError:
            time.sleep(0.1)
    stop(process)
    raise RuntimeError("gunicorn did not answer within 30 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the gunicorn we started (its arbiter stops its own workers)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def make_batch(client: int, sequence: int, parts: int) -> tuple[list[SubRequest], list[str]]:
    """``parts`` sub-requests, each carrying a token of its own."""
    requests_: list[SubRequest] = []
    tokens: list[str] = []
    for index in range(parts):
        token = f"c{client}-b{sequence}-p{index}-{secrets.token_hex(6)}"
        tokens.append(token)
        if index % 2:
            body = json.dumps({"token": token}).encode()
            headers = (("Content-Type", "application/json"), ("X-Part", token))
            requests_.append(SubRequest("POST", "/echo", headers, body, f"<{token}>"))
        else:
            requests_.append(SubRequest("GET", f"/echo/{token}", (), b"", f"<{token}>"))
    return requests_, tokens


def check(response: requests.Response, tokens: list[str]) -> str | None:
    """None if every part got exactly its own answer; otherwise what is wrong."""
    content_type = response.headers.get("Content-Type", "")
    if response.status_code != 200 or not content_type.startswith("multipart/mixed"):
        return f"batch answered {response.status_code} {content_type}: {response.text[:200]}"
    answers = read_responses(content_type, response.content)
    if len(answers) != len(tokens):
        return f"{len(answers)} answers for {len(tokens)} parts"
    if response.content.count(b"\r\nContent-ID: <response-") != len(tokens):
        return "the number of Content-IDs differs from the number of parts"
    for index, ((content_id, answer), token) in enumerate(zip(answers, tokens, strict=True)):
        if content_id != f"<{token}>":
            return f"crossed: part {index + 1} answered with Content-ID {content_id}"
        if answer.status != 200:
            return f"part {index + 1} answered {answer.status}: {answer.body[:200]!r}"
        if index % 2:
            echoed = json.loads(answer.body)
            if echoed != {"token": token, "seen": token}:
                return f"crossed: part {index + 1} body {echoed} for {token}"
        elif answer.body != token.encode():
            return f"crossed: part {index + 1} body {answer.body[:80]!r} for {token}"
    return None


@dataclass(frozen=True)
class Plan:
    """What every client thread of one run shares."""

    url: str
    parts: int
    until: float  # time.monotonic() after which no batch starts
    budget: threading.Semaphore  # batches left to send
    tally: Tally


def client_loop(number: int, plan: Plan) -> None:
    session = requests.Session()
    headers = {"Content-Type": f"multipart/mixed; boundary={BOUNDARY}"}
    sequence = 0
    while time.monotonic() < plan.until and plan.budget.acquire(blocking=False):
        sequence += 1
        batch, tokens = make_batch(number, sequence, plan.parts)
        body = encode_requests(batch, BOUNDARY)
        began = time.perf_counter()
        try:
            response = session.post(plan.url, data=body, headers=headers, timeout=BATCH_TIMEOUT)
        except requests.RequestException as error:
            plan.tally.failed(f"client {number}: {error!r}")
            continue
        elapsed = time.perf_counter() - began
        problem = check(response, tokens)
        if problem is not None:
            plan.tally.failed(problem, crossed=problem.startswith("crossed"))
            continue
        with plan.tally.lock:
            plan.tally.latencies.append(elapsed)
            plan.tally.batches += 1
            plan.tally.parts += plan.parts
    session.close()


def drive(url: str, clients: int, parts: int, seconds: float, max_batches: int) -> Tally:
    """Run ``clients`` threads for ``seconds`` or ``max_batches`` batches, whichever is first."""
    plan = Plan(url, parts, time.monotonic() + seconds, threading.Semaphore(max_batches), Tally())
    threads = [threading.Thread(target=client_loop, args=(n, plan)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return plan.tally


@dataclass(frozen=True)
class Result:
    server: Server
    clients: int
    parts: int
    seconds: float
    client_cpu: float  # CPU seconds the client process used while measuring
    tally: Tally
    server_errors: list[str]

    @property
    def errors(self) -> int:
        return self.tally.errors + len(self.server_errors)

    def row(self) -> str:
        latencies = sorted(self.tally.latencies) or [float("nan")]
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        return (
            f"| {self.server.label} | {self.server.describe()} | {self.clients} | "
            f"{self.seconds:.0f} s | {self.tally.batches:,} | {self.tally.parts:,} | "
            f"{self.tally.batches / self.seconds:.1f} | {self.tally.parts / self.seconds:,.0f} | "
            f"{p50:.0f} ms | {p99:.0f} ms | {self.errors} | {self.tally.crossed} | "
            f"{self.client_cpu / self.seconds:.0%} |"
        )


def run(server: Server, args: argparse.Namespace, workdir: Path) -> Result:
    port = free_port()
    log = workdir / f"{server.worker_class}.log"
    process = start(server, port, log)
    url = f"http://127.0.0.1:{port}/batch"
    try:
        warm = drive(url, args.clients, args.parts, WARM_UP, args.max_batches)
        began, cpu = time.monotonic(), time.process_time()
        tally = drive(url, args.clients, args.parts, args.duration, args.max_batches)
        seconds, client_cpu = time.monotonic() - began, time.process_time() - cpu
    finally:
        stop(process)
    tally.errors += warm.errors
    tally.crossed += warm.crossed
    tally.samples.extend(warm.samples)
    server_errors = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if "[ERROR]" in line or "[CRITICAL]" in line or "Traceback" in line
    ]
    return Result(server, args.clients, args.parts, seconds, client_cpu, tally, server_errors)


def report(results: list[Result]) -> str:
    versions = ", ".join(
        f"{name} {version(name)}" for name in ("flask", "werkzeug", "gunicorn", "requests")
    )
    lines = [
        "### Load: concurrent batches under gunicorn",
        "",
        f"`make load` (`bench/load.py`), {time.strftime('%Y-%m-%d')}: Python "
        f"{platform.python_version()}, {versions}, {os.cpu_count()} CPU cores shared by the "
        "server and the client. Each server runs on 127.0.0.1; client threads send batches of "
        f"{results[0].parts} sub-requests back to back (half `GET /echo/<token>`, half "
        "`POST /echo` with a JSON body), one batch at a time each, for the time shown after a "
        f"{WARM_UP:.0f} s warm-up. Every answer is checked: `200 multipart/mixed`, exactly one "
        "part per sub-request, in order, each with its own `Content-ID` and a body echoing "
        "the token only its sub-request carried. Latency is that of a whole batch, as a "
        "client sees it; client CPU is the share of one core the load generator itself used "
        "(encoding and checking batches), taken from the same two cores as the server.",
        "",
        "| server | workers | client threads | measured | batches | sub-requests | batches/s "
        "| sub-requests/s | p50 | p99 | errors | crossed answers | client CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(result.row() for result in results),
        "",
    ]
    failures = [s for r in results for s in r.tally.samples + r.server_errors[:5]]
    if failures:
        lines += ["Errors seen:", "", *(f"- `{s[:200]}`" for s in failures), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/load.py", description=__doc__)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per server")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--parts", type=int, default=100, help="sub-requests per batch")
    parser.add_argument("--max-batches", type=int, default=100_000, help="per server")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="flask-batch-load-") as workdir:
        for server in SERVERS:
            print(f"{server.label} ({server.describe()}): {args.duration:.0f} s ...", flush=True)
            result = run(server, args, Path(workdir))
            print(result.row(), flush=True)
            results.append(result)
    text = report(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"\n{text}\nwritten to {args.output}")
    return 1 if any(result.errors for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
