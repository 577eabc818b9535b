"""Runs inside ``bench/.alpha-venv`` (Flask 1.1.4, ``flask-batch==0.0.2``): prints JSON.

The same workload and the same batch bodies as ``bench.server_cost``: (a) each call's
environ dispatched into ``app.wsgi_app`` (Flask 1.1's floor), (b) one batch body answered by
the alpha's endpoint. Started by ``bench.alpha``; not meant to be imported elsewhere.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import io
import json
import sys
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import TYPE_CHECKING, Any

from werkzeug.test import EnvironBuilder

from bench.timing import start_response as discard
from bench.workload import batch_body, calls, create_app, json_body, multipart_content_type

if TYPE_CHECKING:
    from _typeshed import OptExcInfo


def drain(chunks: Iterable[bytes]) -> bytes:
    try:
        return b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, nargs="+", required=True)
    parser.add_argument("--rounds", type=int, nargs="+", required=True)
    args = parser.parse_args(argv)
    alpha: Any = importlib.import_module("flask_batch")  # the alpha release, not this repo's
    app = create_app(alpha.add_batch_route)
    results: list[dict[str, Any]] = []
    statuses: list[str] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        statuses.append(status)
        return discard(status, headers, exc_info)

    for n, rounds in zip(args.n, args.rounds, strict=True):
        work = calls(n)
        body = batch_body(work)
        result: dict[str, Any] = {"n": n, "direct": [], "batch": [], "error": None}
        for _ in range(rounds):
            environs = []
            for call in work:
                data = json_body(call)
                builder = EnvironBuilder(
                    path=call.path,
                    method=call.method,
                    data=data or None,
                    content_type="application/json" if data else None,
                    headers=[("Accept", "application/json")],
                )
                environs.append(builder.get_environ())
            gc.collect()
            start = time.perf_counter()
            for environ in environs:
                drain(app.wsgi_app(environ, start_response))
            result["direct"].append(time.perf_counter() - start)

            environ = EnvironBuilder(
                path="/batch", method="POST", content_type=multipart_content_type()
            ).get_environ()
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            statuses.clear()
            gc.collect()
            start = time.perf_counter()
            answer = drain(app.wsgi_app(environ, start_response))
            result["batch"].append(time.perf_counter() - start)
            ok = answer.count(b"HTTP/1.1 200 OK")
            if statuses != ["200 OK"] or ok != n:
                result["error"] = f"answered {statuses}, {ok} of {n} parts 200 OK"
                break
        results.append(result)
    versions = {"python": sys.version.split()[0]}
    for package in ("flask", "werkzeug", "flask-batch", "werkzeug-raw"):
        versions[package] = metadata.version(package)
    print(json.dumps({"versions": versions, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
