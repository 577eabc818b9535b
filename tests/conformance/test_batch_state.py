"""Nothing of a batch outlives it in the process, on every front end and in the clients.

Why: what the readers and writers remember to save work (the header blocks a batch's parts
repeat) must be the batch's own. A process-wide table of encoded header fields kept up to
4,096 of them, a client's ``Authorization`` and an answer's ``Set-Cookie`` among them: a
gateway carrying many users' batches would have held their credentials. The servers run in
this process's threads, so one look through every live object sees both ends.
"""

from __future__ import annotations

import gc
import secrets
import time
from collections import deque

import pytest

from flask_batch.client import Batching
from flask_batch.client._core.formats import FormatName

from .conftest import Server

_CONTAINERS = (dict, list, tuple, set, frozenset, deque)


def held_by(text: str) -> list[str]:
    """The containers alive in the process that hold a string or bytes with ``text``: what a
    cache would keep. From every container the collector tracks, two levels down: a table of
    strings (a dict of tuples of str and bytes) is not tracked itself, but its holder is."""
    wanted = text.encode("ascii")
    found: list[str] = []

    # By type(), not isinstance(): a lazy proxy (Django's settings) answers __class__ by
    # loading what it stands for.
    def holds(value: object) -> bool:
        kind = type(value)
        if issubclass(kind, str):
            return text in value  # type: ignore[operator]
        return issubclass(kind, (bytes, bytearray)) and wanted in value  # type: ignore[operator]

    def look(container: object, depth: int) -> bool:
        items = (
            [*container.keys(), *container.values()]  # type: ignore[attr-defined]
            if issubclass(type(container), dict)
            else list(container)  # type: ignore[call-overload]
        )
        for item in items:
            if holds(item) or (
                depth and issubclass(type(item), _CONTAINERS) and look(item, depth - 1)
            ):
                return True
        return False

    for container in gc.get_objects():
        if issubclass(type(container), _CONTAINERS) and look(container, 2):
            found.append(f"{type(container).__name__} {str(container)[:120]}")
    return found


@pytest.mark.parametrize("format", ["multipart", "json"])
def test_no_header_value_outlives_its_batch(server: Server, format: FormatName) -> None:
    # The client encodes each part's Authorization, the server reads it and answers a
    # Set-Cookie with it, the client reads that: once the batch and its responses are gone,
    # neither end may keep the value.
    secret = secrets.token_hex(16)
    with Batching(f"{server.base}/batch", format=format) as session:
        for _ in range(3):
            session.get(f"{server.base}/credentials", headers={"Authorization": f"Bearer {secret}"})
        answered = session.send_batch()
        assert [r.cookies.get("token") for r in answered] == [secret] * 3
        session.cookies.clear()  # the session keeps the cookies its parts set, as requests does
    del answered, session
    # The server may still be ending the batch when the client has read the whole answer
    # (on ASGI, the batch's task after its last message): what it holds then goes with it.
    deadline = time.monotonic() + 10
    gc.collect()
    while (held := held_by(secret)) and time.monotonic() < deadline:
        time.sleep(0.05)
        gc.collect()
    assert held == []
