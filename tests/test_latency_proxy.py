"""The benchmarks' latency proxy delays each direction, keeps every byte, and stops cleanly.

Why: every end-to-end number in docs/benchmarks.md (and the speed-up ``make demo`` shows)
rests on the proxy adding the round trip it claims and nothing else. When each chunk leaves
is checked exactly on a virtual clock; over real sockets, only lower bounds are checked,
which a slow machine cannot break. What the proxy really adds on this machine is measured
by ``make bench`` (the proxy's round trips in docs/benchmarks.md). The TCP slow-start model
(:class:`~bench.latency_proxy.Link`) is pure arithmetic on times: its schedule, which byte
arrives when, is checked exactly, since the end-to-end targets of issue 14 are measured
through it.
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

from bench.latency_proxy import INITIAL_WINDOW, SEGMENT, LatencyProxy, Link, _pipe, main

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
    arrivals: list[tuple[float, bytes | None]], link: Link
) -> list[tuple[float, bytes | None]]:
    """What :func:`_pipe` writes through ``link``, and when (to the microsecond), for chunks
    arriving at the given virtual times (None: the end of the stream)."""
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
            _pipe(reader, writer, link, lambda n: None),  # type: ignore[arg-type]
        )

    try:
        clock.run_until_complete(scenario())
    finally:
        clock.close()
    return [(round(at, 6), data) for at, data in writer.written]


def test_each_chunk_leaves_exactly_its_delay_after_it_arrived_in_order() -> None:
    arrivals: list[tuple[float, bytes | None]] = [(0.0, b"a"), (0.01, b"b"), (0.5, b"c")]
    written = piped([*arrivals, (0.7, None)], Link(delay=0.1))
    assert written == [(0.1, b"a"), (0.11, b"b"), (0.6, b"c"), (0.8, None)]  # EOF: half-close


def test_nothing_leaves_before_the_handshake_and_it_is_paid_once() -> None:
    arrivals: list[tuple[float, bytes | None]] = [(0.0, b"a"), (0.1, b"b"), (0.5, b"c")]
    written = piped([*arrivals, (0.6, None)], Link(delay=0.05, opened=0.2))
    # Bytes sent before the handshake's round trip is over wait for it; later ones do not.
    assert written == [(0.25, b"a"), (0.25, b"b"), (0.55, b"c"), (0.65, None)]


# -- the slow-start model: its schedule, exactly -------------------------------------------

IW = INITIAL_WINDOW * SEGMENT  # 14,480 bytes


def slow_start(opened: float = 0.0, bandwidth: float | None = None) -> Link:
    """A direction of a 100 ms path (50 ms each way) with RFC 6928's initial window."""
    return Link(0.05, opened, IW, 0.1, bandwidth)


def rounded(pieces: list[tuple[float, int]]) -> list[tuple[float, int]]:
    return [(round(at, 6), size) for at, size in pieces]


def test_bytes_beyond_the_initial_window_wait_one_round_trip() -> None:
    assert IW == 14_480
    link = slow_start()
    # A 16 kB batch body: the first 10 segments now, the rest a round trip later.
    assert rounded(link.send(0.0, 16_000)) == [(0.05, IW), (0.15, 16_000 - IW)]


def test_the_window_doubles_with_each_round_trip_it_filled() -> None:
    link = slow_start()
    # 100,000 bytes: flights of 14,480, 28,960 and 57,920 bytes would carry 101,360.
    assert rounded(link.send(0.0, 100_000)) == [
        (0.05, IW),
        (0.15, 2 * IW),
        (0.25, 100_000 - 3 * IW),
    ]
    # The third flight was not full: the next round trip may carry 4 windows, not 8.
    assert rounded(link.send(0.4, 5 * IW)) == [(0.45, 4 * IW), (0.55, IW)]


def test_a_flight_the_sender_did_not_fill_leaves_the_window_as_it_was() -> None:
    link = slow_start()
    assert rounded(link.send(0.0, 1_000)) == [(0.05, 1_000)]  # a small request
    # Long after, an answer larger than the window: still 10 segments first.
    assert rounded(link.send(1.0, 20_000)) == [(1.05, IW), (1.15, 20_000 - IW)]


def test_bytes_given_within_a_round_trip_join_its_flight_while_it_has_room() -> None:
    link = slow_start()
    assert rounded(link.send(0.0, 10_000)) == [(0.05, 10_000)]
    assert rounded(link.send(0.02, 10_000)) == [(0.07, IW - 10_000), (0.15, 10_000 - (IW - 10_000))]
    # The second flight (0.1) has 2 windows; these bytes fit in what is left of it.
    assert rounded(link.send(0.12, 1_000)) == [(0.17, 1_000)]


def test_the_order_is_kept_when_later_bytes_would_find_room() -> None:
    link = slow_start()
    link.send(0.0, IW + 1)  # one byte waits for the flight at 0.1
    # Given at 0.05, before that flight leaves: they go with it, not before it.
    assert rounded(link.send(0.05, 100)) == [(0.15, 100)]


def test_nothing_leaves_before_the_handshake_is_over() -> None:
    link = slow_start(opened=0.1)
    assert rounded(link.send(0.0, 2 * IW)) == [(0.15, IW), (0.25, IW)]
    assert round(link.end(0.0), 6) == 0.25  # the end of the stream after the last byte


def test_a_bandwidth_sends_each_byte_after_the_ones_before_it() -> None:
    link = Link(0.05, bandwidth=1_000_000)  # 1 MB/s, no window
    assert rounded(link.send(0.0, 10_000)) == [(0.06, 10_000)]  # 10 ms on the line
    assert rounded(link.send(0.001, 10_000)) == [(0.07, 10_000)]  # queued behind it
    assert rounded(link.send(0.5, 1_000)) == [(0.551, 1_000)]  # the line was free
    assert round(link.end(0.5), 6) == 0.551


def test_with_slow_start_and_a_bandwidth_both_apply() -> None:
    link = slow_start(bandwidth=IW / 0.01)  # a window takes 10 ms on the line
    assert rounded(link.send(0.0, 2 * IW)) == [(0.06, IW), (0.16, IW)]


def test_no_window_and_no_bandwidth_is_the_pure_delay() -> None:
    link = Link(0.025, opened=0.05)
    assert rounded(link.send(0.0, 10**7)) == [(0.075, 10**7)]
    assert rounded(link.send(0.2, 1)) == [(0.225, 1)]


def test_the_pipe_splits_a_chunk_at_the_window_and_delays_the_rest() -> None:
    written = piped([(0.0, b"a" * 20_000), (0.01, None)], slow_start())
    assert [(at, None if data is None else len(data)) for at, data in written] == [
        (0.05, IW),
        (0.15, 20_000 - IW),
        (0.15, None),
    ]
    assert b"".join(data for _, data in written if data) == b"a" * 20_000


def test_the_proxy_gives_each_connection_and_direction_its_own_window() -> None:
    proxy = LatencyProxy(("127.0.0.1", 1), rtt=0.1, initial_window=4, bandwidth=1e6)
    up, down = proxy.link(proxy.up, 0.1), proxy.link(proxy.down, 0.0)
    assert (up.window, up.round_trip, up.bandwidth) == (4 * SEGMENT, 0.1, 1e6)
    up.send(0.1, 10 * SEGMENT)  # the window grows on the link it was filled on only
    assert up.window == 8 * SEGMENT
    assert down.window == 4 * SEGMENT
    assert proxy.link(proxy.up, 0.0).window == 4 * SEGMENT  # a new connection starts over
    assert LatencyProxy(("127.0.0.1", 1)).link(0.0, 0.0).window is None


@pytest.mark.parametrize(
    "options", [{"initial_window": 0}, {"bandwidth": 0.0}, {"bandwidth": -1.0}]
)
def test_a_window_or_bandwidth_that_cannot_carry_anything_is_refused(
    options: dict[str, float],
) -> None:
    with pytest.raises(ValueError, match=r"initial window|bandwidth"):
        LatencyProxy(("127.0.0.1", 1), **options)  # type: ignore[arg-type]


def test_command_line_refuses_an_empty_window(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["1", "--initial-window", "0"])
    assert exit_.value.code == 2
    assert "at least 1 segment" in capsys.readouterr().err


def test_with_slow_start_a_large_body_takes_more_round_trips() -> None:
    # A lower bound only: 60 kB up through a 60 ms path needs 3 flights (14,480, 28,960,
    # then the rest), so the echo's first byte comes back no sooner than 3 round trips.
    received: list[bytes] = []

    def reply_when_all_is_in(sock: socket.socket) -> None:
        received.append(receive_all(sock))
        sock.sendall(b"done")

    with (
        tcp_server(reply_when_all_is_in) as port,
        LatencyProxy(
            ("127.0.0.1", port), rtt=0.06, handshake=False, initial_window=INITIAL_WINDOW
        ) as proxy,
        connect(proxy.port) as sock,
    ):
        start = time.perf_counter()
        sock.sendall(b"x" * 60_000)
        sock.shutdown(socket.SHUT_WR)
        assert receive_all(sock) == b"done"
        seconds = time.perf_counter() - start
    assert received == [b"x" * 60_000]
    assert seconds >= 0.18


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
