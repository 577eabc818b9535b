"""The benchmarks' latency proxy delays each direction, keeps every byte, and stops cleanly.

Why: every end-to-end number in docs/benchmarks.md (and the speed-up ``make demo`` shows)
rests on the proxy adding the round trip it claims and nothing else. The timing checks are
lower bounds, which a slow machine cannot break, with generous upper bounds.
"""

from __future__ import annotations

import hashlib
import os
import random
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

from bench.latency_proxy import LatencyProxy

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


def test_each_round_trip_takes_the_configured_delay() -> None:
    with (
        tcp_server(echo) as port,
        LatencyProxy(("127.0.0.1", port), rtt=0.1, handshake=False) as proxy,
    ):
        with connect(port) as direct:
            direct_best = min(round_trip(direct) for _ in range(3))
        with connect(proxy.port) as proxied:
            proxied_times = [round_trip(proxied) for _ in range(3)]
    assert direct_best < 0.05
    for seconds in proxied_times:
        assert 0.1 <= seconds < 0.1 + 1.0, proxied_times


def test_up_and_down_delays_add_up_to_the_round_trip() -> None:
    with (
        tcp_server(echo) as port,
        LatencyProxy(("127.0.0.1", port), up=0.06, down=0.02, handshake=False) as proxy,
    ):
        assert proxy.rtt == pytest.approx(0.08)
        with connect(proxy.port) as sock:
            seconds = round_trip(sock)
    assert 0.08 <= seconds < 0.08 + 1.0


def test_a_new_connection_pays_one_more_round_trip_for_its_handshake() -> None:
    with (
        tcp_server(echo) as port,
        LatencyProxy(("127.0.0.1", port), rtt=0.06) as proxy,
        connect(proxy.port) as sock,
    ):
        first = round_trip(sock)  # handshake + request
        second = round_trip(sock)  # the connection is open: one round trip
    assert 0.12 <= first < 0.12 + 1.0
    assert 0.06 <= second < first


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
