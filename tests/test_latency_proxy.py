"""The benchmarks' latency proxy delays each direction, keeps every byte, and stops cleanly.

Why: every end-to-end number in docs/benchmarks.md (and the speed-up ``make demo`` shows)
rests on the proxy adding the round trip it claims and nothing else. When each chunk leaves
is checked exactly on a virtual clock; over real sockets, only lower bounds are checked,
which a slow machine cannot break. What the proxy really adds on this machine is measured
by ``make bench`` (the proxy's round trips in docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import selectors
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.latency_proxy import LatencyProxy, _pipe

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10.0


@contextmanager
def tcp_server(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A threaded TCP server on 127.0.0.1 running ``handle`` per connection; yields its port."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.settimeout(TIMEOUT)
            handle(self.request)

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128

    with Server(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
        thread.start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()
            thread.join(TIMEOUT)


def echo(sock: socket.socket) -> None:
    while data := sock.recv(65536):
        sock.sendall(data)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def receive_all(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def round_trip(sock: socket.socket) -> float:
    """Seconds for one byte to go to the echo server and back."""
    start = time.perf_counter()
    sock.sendall(b"x")
    assert sock.recv(1) == b"x"
    return time.perf_counter() - start


class VirtualClock(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps over every wait instead of waiting: timers fire in
    order, each at exactly its time, whatever the machine's speed. Only for coroutines that
    wait for nothing but timers and each other (no sockets)."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.now


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self.clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if not ready and timeout:
            self.clock.now += timeout  # the loop waits for its next timer: jump to it
        assert ready or timeout is not None, "nothing left to wait for: the test would hang"
        return ready


class RecordingWriter:
    """The side :func:`_pipe` writes to: (virtual time, bytes) of each write, EOF as None."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.written: list[tuple[float, bytes | None]] = []

    def write(self, data: bytes) -> None:
        self.written.append((self.clock.time(), data))

    def write_eof(self) -> None:
        self.written.append((self.clock.time(), None))

    def can_write_eof(self) -> bool:
        return True

    def is_closing(self) -> bool:
        return False

    async def drain(self) -> None:
        return None


def piped(
    arrivals: list[tuple[float, bytes | None]], delay: float, opened: float = 0.0
) -> list[tuple[float, bytes | None]]:
    """What :func:`_pipe` writes, and when (to the microsecond), for chunks arriving at the
    given virtual times (None: the end of the stream)."""
    clock = VirtualClock()
    writer = RecordingWriter(clock)

    async def scenario() -> None:
        reader = asyncio.StreamReader()

        async def arrive() -> None:
            for at, data in arrivals:
                await asyncio.sleep(at - clock.time())
                if data is None:
                    reader.feed_eof()
                else:
                    reader.feed_data(data)

        await asyncio.gather(
            arrive(),
            _pipe(reader, writer, delay, opened, lambda n: None),  # type: ignore[arg-type]
        )

    try:
        clock.run_until_complete(scenario())
    finally:
        clock.close()
    return [(round(at, 6), data) for at, data in writer.written]


def test_each_chunk_leaves_exactly_its_delay_after_it_arrived_in_order() -> None:
    arrivals: list[tuple[float, bytes | None]] = [(0.0, b"a"), (0.01, b"b"), (0.5, b"c")]
    written = piped([*arrivals, (0.7, None)], delay=0.1)
    assert written == [(0.1, b"a"), (0.11, b"b"), (0.6, b"c"), (0.8, None)]  # EOF: half-close


def test_nothing_leaves_before_the_handshake_and_it_is_paid_once() -> None:
    arrivals: list[tuple[float, bytes | None]] = [(0.0, b"a"), (0.1, b"b"), (0.5, b"c")]
    written = piped([*arrivals, (0.6, None)], delay=0.05, opened=0.2)
    # Bytes sent before the handshake's round trip is over wait for it; later ones do not.
    assert written == [(0.25, b"a"), (0.25, b"b"), (0.55, b"c"), (0.65, None)]


def test_each_round_trip_takes_at_least_the_configured_delay() -> None:
    with (
        tcp_server(echo) as port,
        LatencyProxy(("127.0.0.1", port), rtt=0.1, handshake=False) as proxy,
        connect(proxy.port) as proxied,
    ):
        proxied_times = [round_trip(proxied) for _ in range(3)]
    assert min(proxied_times) >= 0.1, proxied_times


def test_up_and_down_delays_add_up_to_the_round_trip() -> None:
    with (
        tcp_server(echo) as port,
        LatencyProxy(("127.0.0.1", port), up=0.06, down=0.02, handshake=False) as proxy,
    ):
        assert proxy.rtt == pytest.approx(0.08)
        with connect(proxy.port) as sock:
            seconds = round_trip(sock)
    assert seconds >= 0.08


def test_a_new_connection_pays_one_more_round_trip_for_its_handshake() -> None:
    with (
        tcp_server(echo) as port,
        LatencyProxy(("127.0.0.1", port), rtt=0.06) as proxy,
        connect(proxy.port) as sock,
    ):
        first = round_trip(sock)  # handshake + request
        second = round_trip(sock)  # the connection is open: one round trip
    assert first >= 0.12
    assert second >= 0.06


@pytest.mark.parametrize("size", [1, 1000, 100_000, 6 * 1024 * 1024])
def test_bytes_arrive_unaltered_and_in_order_both_ways(size: int) -> None:
    rng = random.Random(size)
    upload = rng.randbytes(size)
    download = rng.randbytes(size + 17)  # another payload, so each direction is checked
    received: list[bytes] = []

    def exchange(sock: socket.socket) -> None:
        received.append(receive_all(sock))  # until the client's half-close
        sock.sendall(download)

    with (
        tcp_server(exchange) as port,
        LatencyProxy(("127.0.0.1", port), rtt=0.01) as proxy,
        connect(proxy.port) as sock,
    ):
        sock.sendall(upload)
        sock.shutdown(socket.SHUT_WR)  # forwarded as a half-close
        answer = receive_all(sock)
    assert hashlib.sha256(received[0]).hexdigest() == hashlib.sha256(upload).hexdigest()
    assert hashlib.sha256(answer).hexdigest() == hashlib.sha256(download).hexdigest()
    assert proxy.stats.bytes_up == len(upload)
    assert proxy.stats.bytes_down == len(download)


def test_many_connections_are_open_at_once() -> None:
    n = 40
    # The server answers no connection until all of them are open: sequential handling
    # through the proxy would deadlock here (and time out) instead of passing.
    all_open = threading.Barrier(n, timeout=TIMEOUT)

    def greet_when_all_are_open(sock: socket.socket) -> None:
        name = sock.recv(64)
        all_open.wait()
        sock.sendall(b"hello " + name)

    results: dict[int, bytes] = {}

    def client(i: int, port: int) -> None:
        with connect(port) as sock:
            sock.sendall(f"client-{i}".encode())
            results[i] = sock.recv(64)

    with (
        tcp_server(greet_when_all_are_open) as port,
        LatencyProxy(("127.0.0.1", port), rtt=0.02) as proxy,
    ):
        threads = [threading.Thread(target=client, args=(i, proxy.port)) for i in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
    assert results == {i: f"hello client-{i}".encode() for i in range(n)}
    assert proxy.stats.connections == n


def test_stop_closes_the_listener_and_open_connections_and_can_start_again() -> None:
    threads_before = threading.active_count()
    with tcp_server(echo) as port:
        proxy = LatencyProxy(("127.0.0.1", port))
        proxy.start()
        listening = proxy.port
        with connect(listening) as sock:
            round_trip(sock)
            proxy.stop()
            assert sock.recv(1) == b""  # the open connection was closed
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", listening), timeout=TIMEOUT).close()
        proxy.stop()  # stopping twice is harmless
        with proxy, connect(proxy.port) as sock:
            round_trip(sock)
    assert threading.active_count() == threads_before


def test_a_target_that_refuses_closes_the_client_connection() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens there once closed
    with LatencyProxy(("127.0.0.1", port)) as proxy, connect(proxy.port) as sock:
        assert sock.recv(1) == b""


def test_command_line_prints_its_port_and_stops_on_sigterm() -> None:
    with tcp_server(echo) as port:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.latency_proxy", str(port), "--rtt", "20"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert "ms up" in line, line
            listening = int(line.split()[2].rsplit(":", 1)[1])
            with connect(listening) as sock:
                assert round_trip(sock) >= 0.02
            process.send_signal(signal.SIGTERM)
            assert process.wait(TIMEOUT) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
