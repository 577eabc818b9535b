"""A TCP proxy on 127.0.0.1 that adds network latency: a fixed one-way delay per direction.

Kernel traffic shaping (``tc netem``) is not available on these machines, so this is how the
benchmarks and ``make demo`` put a realistic network between a client and a server on one
machine. Every chunk of bytes read from one side is written to the other side ``delay``
seconds later, in the order it was read: a 50 ms round trip is 25 ms each way. Connections
are independent, so any number of them can be open at once.

A real TCP connection also pays one round trip for its handshake before the client can send
anything. A local ``connect()`` finishes at once, so by default the proxy models that cost:
bytes from the client are forwarded no earlier than one round trip after the connection was
accepted (``handshake=False`` turns that off). TLS handshakes are not modelled.

Two more costs of a real path are optional. **TCP slow start** (``initial_window=10``, the
command line's ``--slow-start``): each direction of each connection may have only its
congestion window in flight, 10 segments of 1,448 bytes at first (RFC 6928); the window
doubles with each round trip that filled it (slow start, no loss), and bytes beyond it wait
for the next round trip. **Bandwidth** (``bandwidth``, bytes per second each way): a chunk
leaves only once the bytes before it have been sent. Without them, bandwidth is loopback's
and a large body crosses in one round trip, which flatters large bodies. When each byte
leaves is decided by :class:`Link`, which knows no sockets and no clock of its own.

From Python::

    with LatencyProxy(("127.0.0.1", 5000), rtt=0.050) as proxy:
        requests.get(f"http://127.0.0.1:{proxy.port}/")       # about 100 ms: handshake + request

From the command line (runs until interrupted; prints the port it listens on)::

    python -m bench.latency_proxy 5000 --rtt 50 [--slow-start] [--bandwidth 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

CHUNK_SIZE = 64 * 1024
#: Chunks in flight per direction before the proxy stops reading (64 KiB each: 16 MiB).
MAX_CHUNKS_IN_FLIGHT = 256
#: A TCP segment's payload on Ethernet: 1,500 bytes less the IP and TCP headers and the
#: timestamp option.
SEGMENT = 1448
#: RFC 6928's initial congestion window, in segments (Linux's default since 3.0).
INITIAL_WINDOW = 10

_EOF = b""


@dataclass
class Link:
    """One direction of one connection: when the bytes given to it reach the other side.

    ``delay`` is the one-way delay; nothing leaves before ``opened`` (the end of the
    handshake). With ``window`` (bytes), a *flight* of at most ``window`` bytes leaves, and
    the next may leave once the first is acknowledged, ``round_trip`` after it left, with the
    window doubled if the flight filled it (slow start without loss; a flight the sender did
    not fill leaves the window as it was, as Linux does for an application-limited sender).
    With ``bandwidth`` (bytes per second), a piece leaves only once the link has sent what it
    was given before. ``None`` for either: unlimited. Pure arithmetic on the times it is
    given, so that its schedule can be checked exactly.
    """

    delay: float
    opened: float = 0.0
    window: int | None = None
    round_trip: float = 0.0
    bandwidth: float | None = None
    _flight_start: float = field(default=float("-inf"), repr=False)
    _flight_sent: int = field(default=0, repr=False)
    _last_left: float = field(default=float("-inf"), repr=False)
    _line_free: float = field(default=float("-inf"), repr=False)

    def send(self, now: float, size: int) -> list[tuple[float, int]]:
        """``size`` bytes given at ``now``, as (time they arrive, how many) in order: one
        piece per flight they need."""
        pieces: list[tuple[float, int]] = []
        while size > 0:
            leaves = max(now, self.opened, self._last_left)
            take = size if self.window is None else self._room(leaves)
            if take == 0:  # the window is full: wait for the flight's acknowledgements
                now = self._flight_start + self.round_trip
                continue
            take = min(take, size)
            self._flight_sent += take
            self._last_left = leaves
            pieces.append((self._transmitted(leaves, take) + self.delay, take))
            size -= take
        return pieces

    def end(self, now: float) -> float:
        """When the end of the stream, given at ``now``, arrives: after every byte before it."""
        return max(now, self.opened, self._last_left, self._line_free) + self.delay

    def _room(self, at: float) -> int:
        """Bytes that may still leave at ``at`` in the current flight, or a new one."""
        assert self.window is not None
        if at >= self._flight_start + self.round_trip:  # the last flight is acknowledged
            if self._flight_sent >= self.window:
                self.window *= 2
            self._flight_start, self._flight_sent = at, 0
        return self.window - self._flight_sent

    def _transmitted(self, leaves: float, size: int) -> float:
        """When the last of ``size`` bytes that may leave at ``leaves`` has been sent."""
        if self.bandwidth is None:
            return leaves
        self._line_free = max(leaves, self._line_free) + size / self.bandwidth
        return self._line_free


@dataclass
class Stats:
    """What went through the proxy, for tests and reports."""

    connections: int = 0
    bytes_up: int = 0  # client -> server
    bytes_down: int = 0  # server -> client
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, connections: int = 0, up: int = 0, down: int = 0) -> None:
        with self._lock:
            self.connections += connections
            self.bytes_up += up
            self.bytes_down += down


class LatencyProxy:
    """Forwards connections on ``host:port`` to ``target``, delaying each direction.

    ``rtt`` (seconds) splits evenly into the two one-way delays; ``up`` (client to server)
    and ``down`` (server to client) set them separately and win over ``rtt``.
    ``initial_window`` (segments of :data:`SEGMENT` bytes; RFC 6928: :data:`INITIAL_WINDOW`)
    turns on TCP slow start, ``bandwidth`` (bytes per second, each direction) a limited
    link; see :class:`Link`. ``port=0`` picks a free port: read :attr:`port` after
    :meth:`start`.

    :meth:`start` runs the proxy on its own event loop in a background thread and
    :meth:`stop` closes every connection and joins the thread; the object is also a context
    manager. :meth:`serve` runs it on the caller's event loop instead.
    """

    def __init__(
        self,
        target: tuple[str, int],
        *,
        rtt: float = 0.0,
        up: float | None = None,
        down: float | None = None,
        handshake: bool = True,
        initial_window: int | None = None,
        bandwidth: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.target = target
        self.up = rtt / 2 if up is None else up
        self.down = rtt / 2 if down is None else down
        if self.up < 0 or self.down < 0:
            raise ValueError("delays cannot be negative")
        if initial_window is not None and initial_window < 1:
            raise ValueError(f"the initial window must be at least 1 segment: {initial_window}")
        if bandwidth is not None and not bandwidth > 0:
            raise ValueError(f"the bandwidth must be positive: {bandwidth}")
        self.handshake = handshake
        self.initial_window = initial_window
        self.bandwidth = bandwidth
        self.host = host
        self._requested_port = port
        self.port = 0
        self.stats = Stats()
        self._connections: set[asyncio.Task[None]] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def rtt(self) -> float:
        return self.up + self.down

    # -- in a background thread -------------------------------------------------------

    def start(self) -> LatencyProxy:
        """Start listening in a background thread; returns once :attr:`port` is known."""
        if self._thread is not None:
            raise RuntimeError("the proxy is already running")
        self._ready.clear()
        self._thread = threading.Thread(
            target=self._run_thread, name=f"latency-proxy-{self.target[1]}", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError("the latency proxy could not start") from self._failure
        return self

    def stop(self) -> None:
        """Close the listener and every connection, and wait for the thread to end."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(self.request_stop)
        thread.join()
        self._thread = None

    def request_stop(self) -> None:
        """Make :meth:`serve` return; call it on the proxy's own event loop."""
        if self._stopping is not None:
            self._stopping.set()

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run_thread(self) -> None:
        try:
            asyncio.run(self.serve(ready=self._ready.set))
        except BaseException as error:  # reported by start()
            self._failure = error
            self._ready.set()

    # -- on an event loop ---------------------------------------------------------------

    async def serve(self, ready: Callable[[], object] | None = None) -> None:
        """Serve until :meth:`stop` (or until cancelled); ``ready`` is called once listening."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(
            self._accept, self.host, self._requested_port, backlog=1024
        )
        self.port = server.sockets[0].getsockname()[1]
        if ready is not None:
            ready()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for task in list(self._connections):
                task.cancel()
            if self._connections:
                await asyncio.gather(*self._connections, return_exceptions=True)
            await server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._connection(reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        accepted = loop.time()
        self.stats.add(connections=1)
        writers = [client_writer]
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
            writers.append(server_writer)
            # Nothing leaves the client before its handshake (one round trip) is over.
            opened = accepted + self.rtt if self.handshake else accepted
            await asyncio.gather(
                _pipe(client_reader, server_writer, self.link(self.up, opened), self._count_up),
                _pipe(
                    server_reader, client_writer, self.link(self.down, accepted), self._count_down
                ),
            )
        except (ConnectionError, OSError):
            pass  # a side went away: close both, as a network would
        finally:
            for writer in writers:
                writer.close()
            for writer in writers:
                with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                    await writer.wait_closed()

    def link(self, delay: float, opened: float) -> Link:
        """A new connection's link in one direction, as this proxy is configured."""
        window = None if self.initial_window is None else self.initial_window * SEGMENT
        return Link(delay, opened, window, self.rtt, self.bandwidth)

    def _count_up(self, n: int) -> None:
        self.stats.add(up=n)

    def _count_down(self, n: int) -> None:
        self.stats.add(down=n)


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    link: Link,
    count: Callable[[int], object],
) -> None:
    """Copy ``reader`` to ``writer``, each chunk when ``link`` says it arrives.

    A link's times never decrease, so order is kept. The end of the stream travels after the
    last byte and becomes a half-close on the other side.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(MAX_CHUNKS_IN_FLIGHT)

    async def receive() -> None:
        while True:
            try:
                data = await reader.read(CHUNK_SIZE)
            except (ConnectionError, OSError):
                data = _EOF
            if not data:
                await queue.put((link.end(loop.time()), _EOF))
                return
            start = 0
            for due, size in link.send(loop.time(), len(data)):
                await queue.put((due, data[start : start + size]))
                start += size

    async def send() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof() and not writer.is_closing():
                    writer.write_eof()
                return
            writer.write(data)
            count(len(data))
            await writer.drain()

    await _both(receive(), send())


async def _both(first: Awaitable[None], second: Awaitable[None]) -> None:
    """Run both; if one fails, cancel the other and raise."""
    tasks = [asyncio.ensure_future(first), asyncio.ensure_future(second)]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency_proxy",
        description="A TCP proxy on 127.0.0.1 that delays each direction (simulated latency).",
    )
    parser.add_argument("target_port", type=int, help="the port to forward to")
    parser.add_argument("--target-host", default="127.0.0.1", help="default 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: free)")
    parser.add_argument("--rtt", type=float, default=50.0, help="round trip to add, ms")
    parser.add_argument("--up", type=float, help="client-to-server delay, ms (default rtt/2)")
    parser.add_argument("--down", type=float, help="server-to-client delay, ms (default rtt/2)")
    parser.add_argument(
        "--no-handshake",
        action="store_true",
        help="do not charge one round trip for each new connection's TCP handshake",
    )
    parser.add_argument(
        "--slow-start",
        action="store_true",
        help=f"model TCP slow start from an initial window of {INITIAL_WINDOW} segments",
    )
    parser.add_argument(
        "--initial-window",
        type=int,
        metavar="SEGMENTS",
        help=f"model slow start from this initial window ({SEGMENT}-byte segments)",
    )
    parser.add_argument("--bandwidth", type=float, help="each direction's bandwidth, Mbit/s")
    args = parser.parse_args(argv)
    window = args.initial_window
    if window is None and args.slow_start:
        window = INITIAL_WINDOW
    try:
        proxy = LatencyProxy(
            (args.target_host, args.target_port),
            rtt=args.rtt / 1000,
            up=None if args.up is None else args.up / 1000,
            down=None if args.down is None else args.down / 1000,
            handshake=not args.no_handshake,
            initial_window=window,
            bandwidth=None if args.bandwidth is None else args.bandwidth * 1e6 / 8,
            port=args.port,
        )
    except ValueError as error:
        parser.error(str(error))

    def ready() -> None:
        extras = "".join(
            [
                f", slow start from {window} segments" if window else "",
                f", {args.bandwidth:g} Mbit/s" if args.bandwidth else "",
            ]
        )
        print(
            f"listening on 127.0.0.1:{proxy.port} -> {args.target_host}:{args.target_port}, "
            f"{proxy.up * 1000:g} ms up, {proxy.down * 1000:g} ms down{extras}",
            flush=True,
        )

    async def run() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(proxy.serve(ready))
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, proxy.request_stop)
        await task

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
