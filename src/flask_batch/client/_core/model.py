"""The values that pass between a run, the driver that does its I/O, and a front end: the
batch to send, what came back for it, and each request's final result."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ...wire.model import SubResponse
from ...wire.multipart_answers import AnswerStream, ReadAnswer

#: The front end's own response object (``requests.Response``, ``httpx.Response``).
OuterT = TypeVar("OuterT")


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A batch ready to send: POST ``body`` with ``content_type`` to the batch URL."""

    #: Indices of the queued requests it carries, in order.
    items: tuple[int, ...]
    body: bytes
    content_type: str
    #: Seconds its whole exchange may take: the smallest timeout of its requests (None: none).
    timeout: float | None = None
    #: ``"gzip"`` when :attr:`body` is compressed (the endpoint said it takes it), else None.
    content_encoding: str | None = None

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The batch request's own headers: its media type and coding, and the coding its
        answer may come in (the front end decodes it)."""
        headers = [("Content-Type", self.content_type), ("Accept-Encoding", "gzip")]
        if self.content_encoding is not None:
            headers.append(("Content-Encoding", self.content_encoding))
        return headers

    def overdue(self) -> str:
        """What to say when the exchange outlived :attr:`timeout`."""
        return f"the batch exchange took longer than its timeout ({self.timeout:g} s)"


class Arrival:
    """A batch's answer as its body arrives (:meth:`.run.Run.arrival`): its answers read as
    their bytes come in, while the server is still writing the next ones. It holds nothing of
    the run's, so a driver may feed it from a thread of its own; what it read is acted on by
    the run, in the run's thread (:meth:`.run.Run.settle_early`, :meth:`.run.Run.feed`)."""

    __slots__ = ("items", "seen", "settling", "stream", "then")

    def __init__(self, stream: AnswerStream, items: tuple[int, ...]) -> None:
        self.stream = stream
        #: What the front end does with the answers each piece completed, in the thread that
        #: feeds them, or None: off the run's thread, work that changes nothing shared
        #: (``Batching`` works out how it fills each response); in it, settling them early
        #: (the async transport, on the run's event loop).
        self.then: Callable[[list[ReadAnswer]], object] | None = None
        #: The requests the batch carries (indices in the run).
        self.items = frozenset(items)
        #: Those answered so far (settled or not): a second answer naming one is a warning.
        self.seen: set[int] = set()
        #: Whether its answers may still be taken as final on their own as they come: not
        #: after one the run could not place (then the whole answer decides, as it arrived).
        self.settling = True

    def feed(self, data: bytes) -> list[ReadAnswer]:
        """The answers the next bytes of the body completed (nothing is raised: an answer
        that cannot be read fails when the run reads the rest, :meth:`AnswerStream.close`)."""
        answers = self.stream.feed(data)
        if answers and self.then is not None:
            self.then(answers)
        return answers


@dataclass(frozen=True, slots=True)
class Reply(Generic[OuterT]):
    """What the batch endpoint answered to a :class:`PreparedBatch`."""

    status: int
    reason: str
    content_type: str | None
    retry_after: str | None
    body: bytes
    #: The driver's response object, handed back in :class:`Failed`.
    outer: OuterT
    #: The codings the endpoint says it takes in batch bodies (its ``Accept-Encoding``).
    accept_encoding: str | None = None
    #: The body, read as it arrived (its answers are read from this, not from :attr:`body`);
    #: None if it was read whole.
    arrival: Arrival | None = None


@dataclass(frozen=True, slots=True)
class Lost:
    """A :class:`PreparedBatch` got no answer: the connection failed, or a timeout."""

    error: BaseException
    #: True when the request surely never left (connection refused): safe to send again.
    sent_nothing: bool = False


@dataclass(frozen=True, slots=True)
class Answered(Generic[OuterT]):
    """A request's final answer, how many attempts it took, the batch response it came in."""

    response: SubResponse
    attempts: int
    outer: OuterT | None = None


@dataclass(frozen=True, slots=True)
class Failed(Generic[OuterT]):
    """A request that got no answer: why, the batch's response or error, attempts made."""

    reason: str
    outer: OuterT | None
    error: BaseException | None
    attempts: int


Result = Answered[OuterT] | Failed[OuterT]


def smallest(timeouts: Iterable[float | None]) -> float | None:
    """The smallest of the timeouts that are set, or None (no bound) if none is."""
    return min((timeout for timeout in timeouts if timeout is not None), default=None)
