"""The servers the end-to-end benchmark runs, each in its own process, on 127.0.0.1.

- HTTP/1.1: gunicorn, ``gthread`` worker (1 process, 8 threads). gunicorn is the most
  common production server for Flask; the ``gthread`` worker keeps connections alive (the
  default ``sync`` worker closes each connection after one response, which would make a
  "keep-alive session" scenario meaningless), and 8 threads serve the 8-thread scenario. One
  process, because the machine has 2 cores and the client and the proxy need one.
- HTTP/2 (and HTTP/1.1, as a control): Hypercorn, which serves WSGI applications over
  HTTP/2 without TLS when the client speaks it from the first byte (h2c "prior knowledge",
  what ``httpx.Client(http1=False, http2=True)`` does). Run it as
  ``python -m bench.serve hypercorn --port PORT``.

Both serve :func:`flask_batch_app`: the workload application with ``add_batch_route(app)``
and its defaults (at most 100 parts per batch).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from flask import Flask
from hypercorn.asyncio import serve
from hypercorn.config import Config

from bench.workload import create_app
from flask_batch import add_batch_route

#: The gunicorn command line (``python -m gunicorn ...``) without its ``--bind``.
GUNICORN_ARGS = [
    "--worker-class",
    "gthread",
    "--workers",
    "1",
    "--threads",
    "8",
    "--keep-alive",
    "75",
    "--log-level",
    "warning",
    "bench.serve:flask_batch_app()",
]


def flask_batch_app() -> Flask:
    """The workload application with a Flask-Batch endpoint at ``/batch`` (its defaults),
    and the same at ``/batch-identity`` without gzip answers (``bench.compression``)."""

    def add_routes(app: Flask) -> None:
        add_batch_route(app)
        add_batch_route(app, "/batch-identity", "batch_identity", compress_answers=False)

    return create_app(add_routes)


async def serve_hypercorn(port: int) -> None:
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    config.keep_alive_timeout = 75
    # Its default (1,000 requests, then the connection closes) would cut a 1,000-request
    # HTTP/2 run short; 100 concurrent streams, its default, is kept (nginx uses 128).
    config.keep_alive_max_requests = 1_000_000
    config.wsgi_max_body_size = 64 * 1024 * 1024

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(flask_batch_app(), config, shutdown_trigger=stop.wait, mode="wsgi")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("server", choices=["hypercorn"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve_hypercorn(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
