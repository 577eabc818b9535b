"""A batch's WSGI answer is closed, and what ends with it ends, even if never read.

A server calls ``close()`` on every answer body (PEP 3333), including one it never started
(an error before the first chunk, a client gone at once); closing a generator that never
started runs none of its ``finally``. Each wrapper of the answer (gzip, the batch's span,
the head sent with the first chunk) must still close the batch under it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from flask_batch.answers import ClosingBody, gzipped
from flask_batch.intake import Answer
from flask_batch.observe import Tally
from flask_batch.tracing import BatchTrace
from flask_batch.wsgi import start_with_first_chunk


class Inner:
    """An answer body that records how it was read and closed."""

    def __init__(self, *chunks: bytes) -> None:
        self._chunks = iter(chunks)
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        self.closed += 1


class Span:
    def __init__(self) -> None:
        self.ended = 0
        self.attributes: dict[str, Any] = {}

    def set_attribute(self, name: str, value: Any) -> None:
        self.attributes[name] = value

    def end(self) -> None:
        self.ended += 1


def test_a_gzipped_answer_closed_unread_closes_the_batch() -> None:
    inner = Inner(b"part 1", b"part 2")
    gzipped(inner).close()
    assert inner.closed == 1


def test_a_gzipped_answer_read_through_is_the_whole_answer_and_closes_once() -> None:
    inner = Inner(b"part 1", b"part 2")
    body = gzipped(inner)
    assert zlib.decompress(b"".join(body), wbits=31) == b"part 1part 2"
    body.close()
    body.close()
    assert inner.closed == 1


def test_the_batch_span_ends_when_its_answer_is_closed_unread() -> None:
    span, inner = Span(), Inner(b"part 1")
    body = BatchTrace((), span).ending(inner, 200)
    assert isinstance(body, ClosingBody)
    body.close()
    assert (span.ended, span.attributes, inner.closed) == (1, {"http.response.status_code": 200}, 1)


def test_a_head_sent_with_the_first_chunk_closes_the_batch_if_never_started() -> None:
    inner, started = Inner(b"part 1"), []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        started.append(status)
        return lambda data: None

    body = start_with_first_chunk(Answer("200 OK", [], inner, Tally()), start_response)
    assert isinstance(body, ClosingBody)
    body.close()
    assert (inner.closed, started) == (1, [])


def test_then_runs_once_even_if_closing_the_inner_body_fails() -> None:
    class Failing(Inner):
        def close(self) -> None:
            raise OSError("gone")

    ran: list[int] = []
    body = ClosingBody(iter([b"x"]), Failing(), lambda: ran.append(1))
    with pytest.raises(OSError, match="gone"):
        body.close()
    body.close()
    assert ran == [1]
