from __future__ import annotations

from ..batching import sub
from .conftest import Server
from .wire import batch


def test_each_front_end_answers_a_batch(server: Server) -> None:
    answers = batch(server.base, "/batch", sub("GET", "/ok"), sub("POST", "/echo", b"hi"))
    assert [(a.status, a.body) for a in answers] == [(200, b"ok"), (200, b"hi")]
    assert server.ran == ["GET /ok", "POST /echo"]
