"""The bookkeeping of one batch's run, without I/O: which parts may start, the answers of
parts that must not run, and the answer's bytes in request order (docs/design.md section 3).

Two drivers run it (:mod:`flask_batch.execution`): one on threads for WSGI, one on an event
loop for ASGI. (Just over 400 lines: :class:`Schedule` is the one state both drivers share,
and the sync and async calls of a part stand side by side.)
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from .answers import (
    DEADLINE_PASSED,
    INVALID_RESPONSE,
    LARGE_BODY,
    SKIPPED,
    UNHANDLED,
    Pieces,
    answer_too_large,
    slices,
)
from .observe import Observer, Tally
from .transactions import AsyncTransactionHook, TransactionHook
from .wire.errors import problem_response
from .wire.formats import Writer
from .wire.model import Group, SubRequest, SubResponse

__all__ = [
    "DEFAULT_POLICY",
    "HOLD_BYTES",
    "HOLD_PARTS",
    "QUICK_PART",
    "Answers",
    "AsyncDispatch",
    "Dispatch",
    "GroupOutcome",
    "Policy",
    "Resolve",
    "Schedule",
]

logger = logging.getLogger("flask_batch")

#: Runs a part: its request, and its index in the batch (from 0, each member counted).
Dispatch = Callable[[SubRequest, int], SubResponse]


class Answers(Protocol):
    """The answers of a batch's parts by index (None: not answered yet)."""

    def __getitem__(self, index: int, /) -> SubResponse | None: ...


AsyncDispatch = Callable[[SubRequest, int], Awaitable[SubResponse]]


@dataclass(frozen=True, slots=True)
class Policy:
    """How one batch runs."""

    #: A :func:`time.monotonic` instant: parts not started by then are answered 503.
    deadline: float | None = None
    #: Parts of this batch that may run at once (1: one after another, in order).
    workers: int = 1
    #: False: once a part answers >= 400, start no more parts (the rest are answered 424).
    continue_on_error: bool = True
    #: With continue_on_error False: the answer ends with the part that failed (OData's
    #: multipart rule), instead of answering the parts not run 424 (Google's).
    end_on_error: bool = False
    #: Bytes of answer bodies the whole batch may send (None: no bound); a part whose answer
    #: would go past it is answered 502 instead.
    max_answer_size: int | None = None
    #: What makes an atomic group all or nothing (None: its members run in order, without
    #: atomicity; a batch reaches a route without either only if it holds no group).
    transaction: TransactionHook | AsyncTransactionHook | None = None


class Resolve(Protocol):
    """Resolves the references of a batch's requests (flask_batch.references.Resolver)."""

    @property
    def referenced(self) -> AbstractSet[int]:
        """The parts some reference names: their answers are kept whole once written."""

    def __call__(self, index: int, answers: Answers) -> SubRequest | SubResponse:
        """Request ``index`` as it goes to the application, its references resolved from
        ``answers``, or the answer of one that cannot be."""


@dataclass(frozen=True, slots=True)
class GroupOutcome:
    """What the members of a group answer, once it is over."""

    #: Each member's answer, in order (what dependencies on the member see).
    answers: list[SubResponse]
    #: For a group that failed atomically, the one answer that stands for all of it, and the
    #: index of the member whose Content-ID it carries (None: no member's): how multipart
    #: answers a failed changeset (OData), where the writer lays groups out nested.
    failure: tuple[SubResponse, int | None] | None = None
    #: The client went away during the group: the batch stops.
    abandoned: bool = False


DEFAULT_POLICY = Policy()

# The answers of quick parts run one after another are held back and sent together, up to
# these bounds: each chunk costs the server a send call and a chunked-encoding frame (an ASGI
# message), and the writer runs in a tight loop. A part slower than QUICK_PART releases what
# is held at once, so a slow part never waits for the next one to be sent.
HOLD_PARTS = 16
HOLD_BYTES = 64 * 1024
QUICK_PART = 0.001


class Schedule:
    """The bookkeeping of one batch, without I/O, shared by the thread and event-loop drivers.

    Which parts may start (dependencies answered, a free worker), the answers of parts that
    must not run (refused, failed dependency, skipped by the error policy, past the deadline),
    and the answer's bytes in request order, each part written as soon as it and every part
    before it are answered.
    """

    def __init__(
        self,
        requests: Sequence[SubRequest],
        dependencies: Sequence[tuple[int, ...]],
        writer: Writer,
        policy: Policy,
        resolve: Resolve | None = None,
        *,
        tally: Tally | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.requests = requests
        self.dependencies = dependencies
        self.writer = writer
        self.policy = policy
        self._resolve = resolve
        #: How the answer went: its parts written, and how many failed.
        self.tally = tally or Tally()
        #: Who logs and signals each part written (None: nobody listens).
        self.observer = observer
        self.answers: list[SubResponse | None] = [None] * len(requests)
        # Once written, an answer is read again for its status only (whether a dependency
        # failed), unless a reference reads its headers or body (flush).
        self._referenced = resolve.referenced if resolve is not None else frozenset()
        self.stopped = False
        self._end = len(requests)  # the parts the answer holds (end_on_error cuts it short)
        # No deadline and not stopped: too_late() is None without a look at the clock.
        self._unhindered = policy.deadline is None
        #: The atomic groups, by the index of their first member: each runs as one unit.
        self.groups = {r.group.first: r.group for r in requests if r.group is not None}
        # The units not started yet, in order (a deque: taking from its front costs the same
        # at any length; a list's front is moved, each time, by all that follows it).
        self._waiting = deque(range(len(requests)))
        # What each unit waits for: a part, its dependencies; a group, its members' outside it.
        self._waits_for = dependencies
        if self.groups:
            self._waiting = deque(i for i in self._waiting if _unit_start(requests[i].group, i))
            self._waits_for = list(dependencies)
            for first, group in self.groups.items():
                members = range(first, first + group.size)
                outside = {d for i in members for d in dependencies[i] if d not in members}
                self._waits_for[first] = tuple(sorted(outside))
        # A failed group answered by one part (GroupOutcome.failure): that part, by its first
        # member's index, and the other members, which the answer leaves out.
        self._collapsed: dict[int, tuple[SubResponse, SubRequest]] = {}
        self._left_out: set[int] = set()
        self._written = 0
        self._held = 0  # answers held back, and the size of their bodies (release())
        self._held_bytes = 0
        self._answered_bytes = 0  # bytes of answer bodies written (max_answer_size)
        # The opening goes out with the first part: the status line waits for an answer.
        self._opening = writer.start()
        # The next part's opening, sent ahead with the parts before it (flush).
        self._sent_ahead = b""

    @property
    def done(self) -> bool:
        """Every part the answer holds is answered and written."""
        return self._written == self._end

    @property
    def ended(self) -> bool:
        """The answer ends early, with a part that failed (``Policy.end_on_error``)."""
        return self._end < len(self.requests)

    def startable(self, running: int, workers: int) -> list[int]:
        """The waiting parts to start now, in request order, with ``running`` parts running
        and room for ``workers``; parts that must not run are answered on the way."""
        start: list[int] = []
        still_waiting = []
        waiting = self._waiting
        while waiting and running + len(start) < workers:
            index = waiting.popleft()
            waits_for = self._waits_for[index]
            if waits_for and not all(self.answers[i] is not None for i in waits_for):
                still_waiting.append(index)
                continue
            settled = None if index in self.groups else self.settle(index)
            if settled is not None:
                self.finish(index, settled)
            else:
                start.append(index)
        waiting.extendleft(reversed(still_waiting))
        return start

    def settle(self, index: int) -> SubResponse | None:
        """The answer of a part that must not run, or None if it may run now."""
        request = self.requests[index]
        dependencies = self.dependencies[index]
        if request.invalid_reason is None and not dependencies and self._unhindered:
            return None  # the common case, decided at once
        return self.refusal(index, self.answers) or self.too_late()

    def refusal(self, index: int, answers: Answers) -> SubResponse | None:
        """The answer of part ``index`` if it is invalid or a dependency of it failed, its
        dependencies' answers looked up in ``answers`` (None: not answered yet)."""
        request = self.requests[index]
        if request.invalid_reason is not None:
            return problem_response(400, "Invalid request", request.invalid_reason)
        for dependency in self.dependencies[index]:
            answer = answers[dependency]
            if answer is not None and not 200 <= answer.status < 300:
                name = self.requests[dependency].content_id
                return problem_response(
                    424,
                    "Failed dependency",
                    f"this part depends on {name!r}, which answered {answer.status}; "
                    "it was not run",
                )
        return None

    def too_late(self) -> SubResponse | None:
        """SKIPPED after a failure under stop-on-error, DEADLINE_PASSED past the deadline."""
        if self.stopped:
            return SKIPPED
        return self.past_deadline()

    def past_deadline(self) -> SubResponse | None:
        """DEADLINE_PASSED once the batch's deadline has passed."""
        if self.policy.deadline is not None and time.monotonic() >= self.policy.deadline:
            return DEADLINE_PASSED
        return None

    def run(self, index: int, dispatch: Dispatch) -> SubResponse:
        # Checked again as the part really starts: a shared pool may start it late.
        return self.too_late() or self.call(index, dispatch)

    def call(self, index: int, dispatch: Dispatch, answers: Answers | None = None) -> SubResponse:
        """Dispatch part ``index`` now, its references resolved from ``answers`` (by default
        the batch's); an exception becomes its 500 answer."""
        try:
            if self._resolve is None and self.observer is None:
                return dispatch(self.requests[index], index)  # the common case, at once
            request = self._resolved(index, answers)
            if isinstance(request, SubResponse):
                return request
            if self.observer is None:
                return dispatch(request, index)
            since = time.perf_counter()
            try:
                return dispatch(request, index)
            finally:
                self.observer.ran(index, since)
        except Exception:
            return self.failed(index)

    async def arun(
        self,
        index: int,
        dispatch: AsyncDispatch,
        limiter: AbstractAsyncContextManager[object] | None = None,
    ) -> SubResponse:
        if limiter is not None:
            async with limiter:  # a part waiting here has not started yet
                return await self.arun(index, dispatch)
        # Checked again as the part really starts: a shared limiter may start it late.
        return self.too_late() or await self.acall(index, dispatch)

    async def acall(
        self, index: int, dispatch: AsyncDispatch, answers: Answers | None = None
    ) -> SubResponse:
        """:meth:`call` with a coroutine function."""
        try:
            request = self._resolved(index, answers)
            if isinstance(request, SubResponse):
                return request
            if self.observer is None:
                return await dispatch(request, index)
            since = time.perf_counter()
            try:
                return await dispatch(request, index)
            finally:
                self.observer.ran(index, since)
        except Exception:
            return self.failed(index)

    def _resolved(self, index: int, answers: Answers | None) -> SubRequest | SubResponse:
        """Part ``index`` with its references resolved from ``answers`` (by default the
        batch's; :mod:`flask_batch.references`), or the answer it gets instead of running."""
        request = self.requests[index]
        if self._resolve is None:
            return request
        return self._resolve(index, self.answers if answers is None else answers)

    def failed(self, index: int) -> SubResponse:
        """The answer of a part whose dispatch raised (call from the ``except`` clause)."""
        # An exception escaping the application stays inside its own part (the answer is
        # already streaming); the batch goes on.
        request = self.requests[index]
        logger.exception("part %d (%s %s) raised", index + 1, request.method, request.target)
        return UNHANDLED

    def finish(self, index: int, answer: SubResponse) -> None:
        self.answers[index] = answer
        if answer.status >= 400 and not self.policy.continue_on_error:
            self.stopped = True
            self._unhindered = False
            if self.policy.end_on_error:
                self._end = min(self._end, index + 1)

    def finish_group(self, first: int, outcome: GroupOutcome) -> None:
        """Every member of the group at ``first`` is answered: ``outcome``."""
        for offset, answer in enumerate(outcome.answers):
            self.finish(first + offset, answer)
        if first < self._end < first + len(outcome.answers):  # it ends with the whole group
            self._end = first + len(outcome.answers)
        if outcome.failure is not None and self.writer.collapses_failed_groups:
            answer, carrier = outcome.failure
            request = self.requests[first]._replace(group=None, content_id=None)
            if carrier is not None:  # the failing member's Content-ID
                request = request._replace(content_id=self.requests[carrier].content_id)
            self._collapsed[first] = (answer, request)
            self._left_out.update(range(first + 1, first + len(outcome.answers)))

    def release(self, answer: SubResponse, seconds: float) -> bool:
        """Whether the answers held so far go out now, ``answer`` having taken ``seconds``.

        For the one-after-another drivers: False holds them back (see HOLD_PARTS).
        """
        self._held += 1
        self._held_bytes += len(answer.body)
        if self._held < HOLD_PARTS and self._held_bytes < HOLD_BYTES and seconds < QUICK_PART:
            return False
        self._held = self._held_bytes = 0
        return True

    def release_all(self) -> bool:
        """What is held back goes out now (around a group, which may take long); whether
        anything was held."""
        held = self._held > 0
        self._held = self._held_bytes = 0
        return held

    @property
    def holding(self) -> bool:
        """Answers are held back (:meth:`release`)."""
        return self._held > 0

    def flush(self, ending: bytes = b"") -> Iterator[bytes]:
        """The parts that can be written now, in request order: the small ones as one chunk,
        a large answer's body in slices of its own, read in place (never copied whole);
        ``ending`` goes out with the last chunk.

        When more parts are to come, the next one's opening goes out too, if it is certain
        (the writer's ``next_opening``, a multipart delimiter line): a client reads a part
        as ended only once the delimiter after it has arrived, so it reads the parts flushed
        now while the next ones run. The answer's bytes are the same; only where its chunks
        end moves."""
        small: list[bytes | bytearray] = []
        answers = self.answers
        referenced = self._referenced
        while self._written < self._end and (answer := answers[self._written]) is not None:
            head, body, tail = self.write(self._written)
            if self._sent_ahead and head:  # (a member left out of its group's answer has none)
                assert head.startswith(self._sent_ahead), "the part sent ahead is not this one"
                head = head[len(self._sent_ahead) :]
                self._sent_ahead = b""
            if not referenced or self._written not in referenced:
                answers[self._written] = _outcome(answer.status)
            self._written += 1
            if self._opening:  # the opening goes out with the first part
                head = self._opening + head
                self._opening = b""
            if len(body) < LARGE_BODY:  # copied once, with the parts around it
                small += (head, body, tail)
            else:
                small.append(head)
                yield b"".join(small)
                small = [tail]
                yield from slices(body)
        if self._written == self._end:
            self.tally.complete = True  # every part is written: the tally is final
        elif small and not self._sent_ahead:
            # A part that fails later may end the answer (end_on_error), but only after
            # itself: whatever comes, another part is written.
            self._sent_ahead = self.writer.next_opening
            if self._sent_ahead:
                small.append(self._sent_ahead)
        if ending:
            small.append(ending)
        if small and (chunk := b"".join(small)):
            yield chunk

    def close(self) -> Iterator[bytes]:
        """The rest of the answer once every part is answered: the parts held back, the end."""
        if not self.requests:
            self.tally.complete = True
            yield self._opening + self.writer.close()
        else:
            yield from self.flush(ending=self.writer.close())
            assert self.done
        if self.observer is not None:
            self.observer.end()

    def write(self, index: int) -> Pieces:
        """Part ``index`` written: its head, its body (not copied) and its tail.

        An answer past the batch's ``max_answer_size`` is replaced by a 502 part.
        """
        answer, request = self.answers[index], self.requests[index]
        if self._left_out and index in self._left_out:
            return _NOTHING
        if self._collapsed and index in self._collapsed:  # a failed group: its one part
            answer, request = self._collapsed.pop(index)
        assert answer is not None
        budget = self.policy.max_answer_size
        if budget is not None:
            self._answered_bytes += len(answer.body)
            if self._answered_bytes > budget:
                self._answered_bytes -= len(answer.body)
                answer = answer_too_large("max_answer_size", budget)
        try:
            pieces = self.writer.part_pieces(answer, request)
        except ValueError as error:
            # A response that cannot be framed (CR/LF in a header, say) must not reach the wire.
            logger.error("part %d: cannot send the application's response: %s", index + 1, error)
            answer = INVALID_RESPONSE
            pieces = self.writer.part_pieces(answer, request)
        tally = self.tally
        tally.parts += 1
        if answer.status >= 400:
            tally.failures += 1
        if self.observer is not None:
            self.observer.part(index, request, answer)
        return pieces


#: A part the answer leaves out (a member of a failed changeset answered by one part).
_NOTHING: Pieces = (b"", b"", b"")


def _outcome(status: int) -> SubResponse:
    """What a batch keeps of an answer once it is written: its status, for the parts that
    depend on it. The rest goes, so a batch holds only the answers it has not written yet:
    memory bounded by what is pending rather than by the whole answer, and each part's
    objects freed for the next part to reuse while they are still in the CPU's cache
    (docs/performance.md, "Issue 14, seventh round")."""
    outcome = _OUTCOMES.get(status)
    if outcome is None:
        outcome = SubResponse(status, "", (), b"")
        if len(_OUTCOMES) < _KNOWN_OUTCOMES:
            _OUTCOMES[status] = outcome
    return outcome


#: The stand-ins of written answers, by status (a few recur in every batch); bounded.
_OUTCOMES: dict[int, SubResponse] = {}
_KNOWN_OUTCOMES = 64


def _unit_start(group: Group | None, index: int) -> bool:
    """Whether ``index`` starts a unit of the run: a part, or a group's first member."""
    return group is None or group.first == index
