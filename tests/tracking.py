"""Views that record how they ran, and that wait for one another instead of sleeping.

The tests of parallel parts, dependencies and the error policy check the order in which parts
ran and how many ran at once. A view asked to wait until another part has started or ended,
or until a number of parts meet, makes that order with events: a slow or loaded machine can
delay it, but not change it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from flask import Flask

#: Seconds a view waits for an event that comes at once when the library behaves as it
#: should: only a part that never starts (a hang, a wrong order) runs out of it.
PATIENCE = 10.0


class Tracker:
    """The views of one test app: the names they ran in start order, their (start, end)
    :func:`time.monotonic` spans, how many ran at once, and the events :meth:`hold` waits for.

    ``meeting``: how many parts meet at the barrier of a view asked to ``meet`` (0: none).
    """

    def __init__(self, meeting: int = 0) -> None:
        self.names: list[str] = []
        self.spans: dict[str, tuple[float, float]] = {}
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        self.meeting = threading.Barrier(meeting, timeout=PATIENCE) if meeting else None
        self._events: dict[tuple[str, str], threading.Event] = {}

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
        self._event("started", name).set()
        try:
            yield
        finally:
            with self.lock:
                self.active -= 1
                self.spans[name] = (started, time.monotonic())
            self._event("ended", name).set()

    def hold(self, query: Mapping[str, str]) -> None:
        """Wait as a view's ``query`` asks: until the parts named in ``until_started`` and
        ``until_ended`` (comma-separated) have started or ended, then at the ``meet``ing,
        then ``sleep`` seconds. A wait that runs out fails the view (its part is a 500)."""
        for kind in ("started", "ended"):
            for name in filter(None, query.get(f"until_{kind}", "").split(",")):
                if not self._event(kind, name).wait(PATIENCE):
                    raise AssertionError(f"part {name!r} never {kind}")
        if "meet" in query:
            assert self.meeting is not None, "Tracker(meeting=N) to meet"
            self.meeting.wait()
        time.sleep(float(query.get("sleep", "0")))

    def _event(self, kind: str, name: str) -> threading.Event:
        with self.lock:
            return self._events.setdefault((kind, name), threading.Event())


def tracker_of(app: Flask) -> Tracker:
    """The tracker of an app built by a helper that keeps one (tests/steps.py)."""
    tracker: Tracker = app.extensions["tracker"]
    return tracker
