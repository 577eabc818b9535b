"""Real servers on 127.0.0.1 for any WSGI or ASGI application (end-to-end tests)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import uvicorn
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig


@contextmanager
def asgi_server(
    app: Callable[..., Awaitable[None]],
    loop: asyncio.AbstractEventLoop | None = None,
    **options: Any,
) -> Iterator[str]:
    """Serve an ASGI ``app`` with uvicorn on a free port, in a thread; yield its base URL.

    ``loop``: serve on that running event loop instead (an application whose database
    connections belong to it, as asyncpg's and aiosqlite's do). ``options`` go to
    :class:`uvicorn.Config` (``root_path``, ``lifespan``...).
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="auto", **options)
    server = uvicorn.Server(config)
    if loop is None:
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running, stopped = thread.is_alive, partial(thread.join, 10)
    else:
        serving = asyncio.run_coroutine_threadsafe(server.serve(sockets=[sock]), loop)
        running, stopped = (lambda: not serving.done()), partial(serving.result, 10)
    give_up = time.monotonic() + 10
    while not server.started:
        assert running(), "uvicorn did not start"
        assert time.monotonic() < give_up, "uvicorn did not start in time"
        time.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        stopped()
        sock.close()


@contextmanager
def hypercorn_server(app: Callable[..., Awaitable[None]], root_path: str = "") -> Iterator[str]:
    """Serve an ASGI ``app`` with hypercorn (asyncio) on a free port, in a thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = HypercornConfig()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn's to close
    config.root_path = root_path
    config.accesslog = None
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(hypercorn_serve(app, config, shutdown_trigger=stop.wait),),
        daemon=True,
    )
    thread.start()
    give_up = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < give_up, "hypercorn did not start in time"
            time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()
