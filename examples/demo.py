"""Flask-Batch demo: the same API calls made one by one, then all in one batch.

``make demo`` runs this. It serves the example people + todos API (``people_api.py``) on
127.0.0.1 and makes the same calls twice: over a plain ``requests.Session``, one HTTP round
trip per call, and inside ``flask_batch.client.Batching``, one round trip for them all. It
prints every answer, the round trips counted at the server, the wall time of each way and
the speed-up, and checks that both ways got the same answers. Then it sends a changeset
(``with s.changeset():``) whose second write fails, shows that the database is unchanged,
and sends it again fixed, committed.

A loopback round trip takes microseconds, which hides what batching is for, so the client
talks to the server through the benchmarks' latency proxy (``bench/latency_proxy.py``): a
TCP proxy that delays every byte by half the round trip time each way, ``--latency``
milliseconds in all (default 50, a mobile or cross-continent link). The demo's server,
Werkzeug's development server, closes every connection after one answer, where a production
server keeps it open; so the proxy charges nothing for opening a connection, and each call
costs one round trip, as over a kept-alive connection.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from people_api import create_app
from werkzeug.serving import make_server

from flask_batch.client import Batching

# The latency proxy lives with the benchmarks, in the repository's bench/ folder (standard
# library only): the demo runs from a checkout, as `make demo` does.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.latency_proxy import LatencyProxy

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: A call: method, path, JSON body.
Call = tuple[str, str, dict[str, Any] | None]

# What a client might do on opening its app, run in this order.
CALLS: list[Call] = [
    ("GET", "/people/", None),
    ("PATCH", "/people/alice/", {"age": 31}),
    ("POST", "/people/", {"name": "dave", "age": 22}),  # 201 Created
    ("POST", "/people/dave/todos/", {"title": "water the plants"}),
    ("GET", "/people/dave/todos/", None),
    ("POST", "/people/", {"name": "alice", "age": 99}),  # 409: alice exists
    ("DELETE", "/people/bob/", None),  # 204, and bob's todos go with him
    ("GET", "/people/bob/", None),  # 404: just deleted
    ("GET", "/people/zoe/todos/", None),  # 404: never existed
    ("GET", "/people/alice/todos/", None),
    ("GET", "/people/", None),
]

# A changeset: writes applied all together or not at all. Its second member fails at first
# (alice exists: 409), so the first is undone and the third does not run; then it is fixed.
CHANGESET: list[Call] = [
    ("POST", "/people/", {"name": "erin", "age": 28}),
    ("POST", "/people/", {"name": "alice", "age": 99}),
    ("PATCH", "/people/bob/", {"age": 26}),
]
FIXED: Call = ("POST", "/people/", {"name": "frank", "age": 35})
COMMITTED = "alice 30, bob 26, carol 41, erin 28, frank 35"

Client = Callable[[str], list[requests.Response]]


def one_by_one(base: str) -> list[requests.Response]:
    """Each call is its own HTTP request: one round trip each."""
    with requests.Session() as s:
        return [s.request(method, base + path, json=body) for method, path, body in CALLS]


def batched(base: str) -> list[requests.Response]:
    """The same code inside ``Batching``: calls are queued and sent as one request on exit."""
    with Batching(f"{base}/batch") as s:
        responses = [s.request(method, base + path, json=body) for method, path, body in CALLS]
    return responses  # noqa: RET504 (sent and filled in by the block's exit, not before)


class RoundTripCounter:
    """WSGI middleware that counts every request that comes off the socket.

    It wraps the app given to ``make_server``, not ``app.wsgi_app``: Flask-Batch dispatches
    sub-requests through ``app.wsgi_app`` in-process, so a counter there would count calls,
    not round trips.
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.count = 0
        self._lock = threading.Lock()  # the server handles each connection in a thread

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self.count += 1
        return self.app(environ, start_response)


@dataclass
class Run:
    responses: list[requests.Response]
    round_trips: int
    seconds: float


@contextmanager
def serving(app: WSGIApplication) -> Iterator[int]:
    """Serve ``app`` on 127.0.0.1 in a thread; its port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # A short poll interval: shutdown() waits for the serving loop's next look (0.5 s by default).
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:  # stop the server even if the client failed
        server.shutdown()
        thread.join()
        server.server_close()


def run(client: Client, latency: float) -> Run:
    """Run ``client`` against a freshly seeded API, so that every run starts from the same data.

    The client reaches the server through a latency proxy adding ``latency`` seconds to each
    round trip. Werkzeug's development server closes each connection after one answer, so the
    proxy does not charge a round trip for each new connection's handshake (``handshake``):
    every call then costs what it would cost over one kept-alive connection.
    """
    counter = RoundTripCounter(create_app())
    with (
        serving(counter) as port,
        LatencyProxy(("127.0.0.1", port), rtt=latency, handshake=False) as proxy,
    ):
        start = time.perf_counter()
        responses = client(f"http://127.0.0.1:{proxy.port}")
        seconds = time.perf_counter() - start
    return Run(responses, counter.count, seconds)


def changeset(base: str, calls: list[Call]) -> list[requests.Response]:
    """``calls`` as one changeset, in a batch of their own."""
    with Batching(f"{base}/batch") as s, s.changeset():
        responses = [s.request(method, base + path, json=body) for method, path, body in calls]
    return responses  # noqa: RET504 (sent and filled in by the block's exit, not before)


def people(database: str) -> str:
    """The people as the database has them, read on a connection of its own."""
    with closing(sqlite3.connect(database)) as connection:
        found = connection.execute("SELECT name, age FROM people ORDER BY name").fetchall()
    return ", ".join(f"{name} {age}" for name, age in found)


def changesets() -> bool:
    """Send the changeset, then the fixed one, printing the answers and the people table after
    each; whether the first changed nothing and the second everything."""
    app = create_app()
    database = app.config["DATABASE"]
    before = people(database)
    fixed = [CHANGESET[0], FIXED, CHANGESET[2]]
    with serving(app) as port:
        base = f"http://127.0.0.1:{port}"
        print("\nA changeset (with s.changeset()): all of it applied, or none of it")
        table(CHANGESET, changeset(base, CHANGESET))
        rolled_back = people(database)
        unchanged = "unchanged" if rolled_back == before else "CHANGED"
        print(f"  -> the people in the database: {rolled_back} ({unchanged})")
        print("\nThe same changeset, its second member fixed")
        table(fixed, changeset(base, fixed))
        committed = people(database)
        applied = "committed" if committed == COMMITTED else f"NOT {COMMITTED}"
        print(f"  -> the people in the database: {committed} ({applied})")
    return rolled_back == before and committed == COMMITTED


def short(text: str, width: int = 52) -> str:
    """``text`` on one line, cut to ``width`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def table(calls: list[Call], responses: list[requests.Response]) -> None:
    print(f"  {'#':>2}  {'method':<6}  {'path':<21}  status  body")
    for i, ((method, path, _), r) in enumerate(zip(calls, responses, strict=True), 1):
        problem = r.headers.get("Content-Type") == "application/problem+json"
        body = r.json()["detail"] if problem else r.text  # what a problem says, in words
        print(f"  {i:>2}  {method:<6}  {path:<21}  {r.status_code:>6}  {short(body)}")


def show(title: str, result: Run) -> None:
    print(f"\n{title}")
    table(CALLS, result.responses)
    trips = plural(result.round_trips, "HTTP round trip")
    print(f"  -> {trips}, {result.seconds * 1000:.0f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--latency",
        type=float,
        default=50.0,
        help="round trip time the latency proxy adds, ms (default 50)",
    )
    latency = parser.parse_args(argv).latency / 1000
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log between tables

    print(
        f"{plural(len(CALLS), 'API call')} through a latency proxy: {latency * 1000:g} ms per "
        f"round trip ({latency * 500:g} ms each way)"
    )
    separate = run(one_by_one, latency)
    show("Separate calls (requests.Session)", separate)
    batch = run(batched, latency)
    show("One batch (flask_batch.client.Batching)", batch)

    # Status and body; headers may differ (Date, and Location names each run's port).
    answers = [[(r.status_code, r.content) for r in x.responses] for x in (separate, batch)]
    differ = [i for i, (a, b) in enumerate(zip(*answers, strict=True), 1) if a != b]
    print("\nSummary")
    for name, result in (("separate calls", separate), ("one batch", batch)):
        trips = plural(result.round_trips, "round trip")
        print(f"  {name + ':':<15} {trips:<14} {result.seconds * 1000:>5.0f} ms")
    print(f"  speed-up:       {separate.seconds / batch.seconds:.1f}x faster with one batch")
    if differ:
        print(f"  answers identical: NO, calls {', '.join(map(str, differ))} differ")
    else:
        print(f"  answers identical: yes, all {len(CALLS)}")
    atomic = changesets()
    return 0 if atomic and not differ else 1


if __name__ == "__main__":
    sys.exit(main())
