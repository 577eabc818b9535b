"""Views that record how they ran: the tests of parallel parts, dependencies and the error
policy check the order in which parts ran, when, and how many at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from flask import Flask


class Tracker:
    """The views of one test app: the names they ran in start order, their (start, end)
    :func:`time.monotonic` spans, how many ran at once."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.spans: dict[str, tuple[float, float]] = {}
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()

    def span(self, name: str) -> tuple[float, float]:
        return self.spans[name]

    @contextmanager
    def running(self, name: str) -> Iterator[None]:
        """Record the view of part ``name`` running inside the block."""
        started = time.monotonic()
        with self.lock:
            self.names.append(name)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            yield
        finally:
            with self.lock:
                self.active -= 1
                self.spans[name] = (started, time.monotonic())

    def hold(self, query: Mapping[str, str]) -> None:
        """Wait as a view's ``query`` asks: ``sleep`` seconds."""
        time.sleep(float(query.get("sleep", "0")))


def tracker_of(app: Flask) -> Tracker:
    """The tracker of an app built by a helper that keeps one (tests/steps.py)."""
    tracker: Tracker = app.extensions["tracker"]
    return tracker
