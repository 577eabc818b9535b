"""A part's answer: gathered from the application under its bound, written in pieces, and
the problem answers of parts that do not run or whose answer cannot be sent."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from .wire.content_coding import GzipEncoder
from .wire.errors import problem_response
from .wire.model import SubResponse

__all__ = [
    "DEADLINE_PASSED",
    "INVALID_RESPONSE",
    "LARGE_BODY",
    "SKIPPED",
    "SLICE",
    "UNHANDLED",
    "AnswerBody",
    "ClosingBody",
    "Pieces",
    "answer_too_large",
    "gzipped",
    "slices",
]

DEADLINE_PASSED = problem_response(
    503,
    "Batch deadline passed",
    "the batch's deadline passed before this part started; it was not run",
    (("Retry-After", "1"),),
)
SKIPPED = problem_response(
    424,
    "Skipped",
    "an earlier part failed and the batch asked to stop on errors (continue-on-error=false); "
    "this part was not run",
)
UNHANDLED = problem_response(
    500, "Internal Server Error", "the sub-request failed with an unhandled exception"
)
INVALID_RESPONSE = problem_response(
    500, "Invalid response", "the application's response could not be sent"
)


#: A part written: a head, a body to send as it is (empty when the part is all in the head),
#: and a tail.
Pieces = tuple[bytes, "bytes | bytearray", bytes]
#: An answer body this large is sent in slices of its own instead of being copied into a part.
LARGE_BODY = 64 * 1024
#: The size of those slices: each is a copy (servers take bytes), made as it is sent.
SLICE = 1024 * 1024


def slices(body: bytes | bytearray) -> Iterator[bytes]:
    """``body`` in slices of at most :data:`SLICE` bytes, each made when it is asked for."""
    with memoryview(body) as view:
        for start in range(0, len(body), SLICE):
            yield view[start : start + SLICE].tobytes()


class ClosingBody:
    """A WSGI answer body made from another (``inner``), which its ``close()`` closes, then
    runs ``then``: once, whether the body was read to its end, in part, or not at all.

    Why not a generator with ``finally``: a server calls ``close()`` on every body (PEP
    3333), even one it never started, and closing a generator that never started runs none
    of its ``finally``; the batch under it would stay open. Every wrapper of a batch's answer
    (gzip, the trace's end, the head sent with the first chunk) is one of these.
    """

    __slots__ = ("_chunks", "_inner", "_then")

    def __init__(
        self,
        chunks: Iterator[bytes],
        inner: Iterable[bytes],
        then: Callable[[], object] | None = None,
    ) -> None:
        self._chunks = chunks
        self._inner: Iterable[bytes] | None = inner
        self._then = then

    def __iter__(self) -> ClosingBody:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        inner, then = self._inner, self._then
        if inner is None:
            return  # closed already
        self._inner = self._then = None
        try:
            for body in (self._chunks, inner) if self._chunks is not inner else (inner,):
                close = getattr(body, "close", None)
                if close is not None:
                    close()
        finally:
            if then is not None:
                then()


def gzipped(chunks: Iterator[bytes]) -> ClosingBody:
    """The answer ``chunks`` in gzip, each as it comes (closing it closes ``chunks``, so a
    client that leaves stops the batch as it would uncompressed)."""
    return ClosingBody(_gzip(chunks), chunks)


def _gzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    encoder = GzipEncoder()
    for chunk in chunks:
        yield encoder.encode(chunk)
    yield encoder.finish()


def answer_too_large(limit: str, value: int) -> SubResponse:
    """The 502 part standing for an answer over ``limit`` (which is ``value`` bytes)."""
    what = "this part's answer" if limit == "max_answer_part_size" else "the batch's answer"
    return problem_response(
        502,
        "Answer too large",
        f"the part ran, but its answer was not sent: {what} would be larger than {limit} "
        f"({value} bytes)",
    )


class AnswerBody:
    """An application's answer body as it streams in, up to ``limit`` bytes.

    The first chunk is kept as it is (most answers are one chunk: no copy); more are appended
    to one buffer, so there is never a list of chunks and their join alive at once. Past the
    limit, what was held is dropped and :attr:`over` is set.
    """

    __slots__ = ("_room", "over", "value")

    def __init__(self, limit: int) -> None:
        self._room = limit
        self.over = False
        self.value: bytes | bytearray = b""

    def add(self, chunk: bytes) -> bool:
        """Take the next chunk; False once the body is over the limit (and dropped)."""
        room = self._room - len(chunk)
        if room < 0 or self.over:
            self.over = True
            self.value = b""
            return False
        self._room = room
        value = self.value
        if not value:
            self.value = chunk
        elif chunk:
            if type(value) is bytes:
                self.value = value = bytearray(value)
            value += chunk  # a bytearray grows in place
        return True
