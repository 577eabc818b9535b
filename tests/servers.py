"""Real HTTP servers on 127.0.0.1 for end-to-end tests."""

from __future__ import annotations

import select
import socket
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from uvicorn.middleware.wsgi import _WSGIMiddleware  # uvicorn's own, even with a2wsgi
from werkzeug.serving import make_server

from .frameworks.serving import asgi_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

#: Seconds between two looks of the serving loop at its stop flag: shutdown() waits for the
#: next one (Werkzeug's default, 0.5 s, was waited out at the end of every test server).
POLL_INTERVAL = 0.01


@contextmanager
def live_server(app: WSGIApplication) -> Iterator[str]:
    """Serve any WSGI ``app`` (Flask, Django...) with Werkzeug's threaded server on a free
    port; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(POLL_INTERVAL,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@dataclass
class Served:
    """A :func:`keep_alive_server`: its base URL, and the client addresses (host, port) of
    the HTTP requests it served: one per connection."""

    base: str
    clients: set[tuple[str, int]] = field(default_factory=set)

    @property
    def connections(self) -> int:
        return len(self.clients)


@contextmanager
def keep_alive_server(app: WSGIApplication, threads: int = 32) -> Iterator[Served]:
    """Serve the WSGI ``app`` with uvicorn, which keeps connections alive (Werkzeug's server
    closes each after one answer), in up to ``threads`` threads at once; the connections it
    served are counted by their client address, what tells a client that reuses its
    connections from one that opens a new one each time."""
    with warnings.catch_warnings():  # uvicorn's WSGI middleware says it is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        wsgi = _WSGIMiddleware(app, workers=threads)  # type: ignore[arg-type]

    async def counted(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("client"):
            served.clients.add(tuple(scope["client"]))
        await wsgi(scope, receive, send)  # type: ignore[arg-type]

    with asgi_server(counted) as base:
        served = Served(base)
        yield served
    wsgi.executor.shutdown(wait=False)


@dataclass
class Trickle:
    """A :func:`trickling_server`: its base URL, and for each connection it answered, how
    many bytes it trickled before the client went away (None: it gave up first)."""

    base: str
    left_after: list[int | None] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def ended(self, connections: int) -> list[int | None]:
        """``left_after`` once ``connections`` connections ended (waiting 10 s at most)."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.left_after) >= connections, timeout=10)
            return list(self.left_after)


@contextmanager
def trickling_server(head: bytes, trickled: bytes, interval: float = 0.05) -> Iterator[Trickle]:
    """A server that answers every request with ``head`` at once, then ``trickled`` one byte
    every ``interval`` seconds, each byte arriving well within any read timeout; it gives up
    (closing the connection) when ``trickled`` runs out, and stops when a client leaves.

    Why: requests' and httpx's timeouts bound each read, so only a deadline on the whole
    exchange stops such an answer. The count of bytes sent before the client left is what a
    test checks, not the time it took.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    trickle = Trickle(f"http://127.0.0.1:{listener.getsockname()[1]}")

    def serve(connection: socket.socket) -> None:
        with connection:
            if not _read_request(connection):
                return
            connection.sendall(head)
            left_after = None
            for count in range(len(trickled)):
                readable, _, _ = select.select([connection], [], [], interval)
                if stop.is_set():
                    return
                if readable and not _recv_or_empty(connection):  # the client closed
                    left_after = count
                    break
                connection.sendall(trickled[count : count + 1])
            with trickle.changed:
                trickle.left_after.append(left_after)
                trickle.changed.notify_all()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:  # the listener was closed
                return
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield trickle
    finally:
        stop.set()
        with suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()
        thread.join(timeout=10)


def _read_request(connection: socket.socket) -> bool:
    """Read one request (head and Content-Length body); False if the client left first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = _recv_or_empty(connection)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = _recv_or_empty(connection)
        if not chunk:
            return False
        body += chunk
    return True


def _recv_or_empty(connection: socket.socket) -> bytes:
    with suppress(OSError):
        return connection.recv(65536)
    return b""
