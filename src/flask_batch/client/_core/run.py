"""One run: queued requests sent as batches until each has its final answer.

(Over 400 lines on purpose: :class:`Run` is one state machine, and its rules, listed below,
act on the same state of each request; it stays whole so that each rule reads beside the
state it changes. What is not that state has a module of its own: the formats, the limits
and packing, the retry policy, the report, atomic groups and the matching of answers.)

:class:`Run` is the client's protocol logic with no I/O (the sans-IO model of h11): it says
which batch to send next (:meth:`Run.next_batch`), takes what came back (:meth:`Run.feed`),
and decides what is final, what is retried and after how long, and how a refused batch is
re-split. The loops in :mod:`.._drivers` do the I/O with callables a front end gives them,
so the ``requests`` client and both ``httpx`` transports share every decision.

Rules, in one place:

- A part with a final answer is never sent again; a follow-up batch carries only the parts
  being retried. A part's ``attempts`` counts the batches it was sent in whose answer (or
  loss) could have involved it; a batch refused with ``413`` before anything ran does not
  count.
- A part answered 424 because a dependency is being retried never ran: it is retried with
  that dependency, in the same batch. A dependency already answered 2xx is not re-sent, and
  the part that depended on it is sent without the dependency.
- An answer that ends with a failure, every request before it answered and none after it,
  stopped at its first error (OData's default): the requests after it never ran. They go
  again with that failure if it is retried, whatever their method; otherwise each fails
  saying so (:func:`.report.stopped`), and is not sent again on its own: the batch stopped
  so that nothing after the failure would run.
- When a later attempt fails as a whole, a part that already had an answer keeps it (the
  last answer stands); a part with none fails.
- An answer that names one Content-ID twice fails its whole batch: which of the two answers
  belongs to that request, and whether another request lost its own, cannot be told.
- The members of an atomic group (adjacent, one :class:`~flask_batch.wire.model.Group`) go
  in one batch, every time, and are retried as a whole or not at all: the server applied
  all of them or none, so re-sending only the member that failed would apply it without the
  others. A group is retried when the status it failed with (its first failing member's,
  ``424`` aside) is one the policy retries and the policy allows every member's method, or
  when it was answered ``424`` because something it depends on is being retried; a batch
  lost as a whole retries it only if every member may be retried; on an endpoint that says
  it runs groups in order without atomicity, only if nothing of it ran (the writes before a
  failure stayed applied). A group larger than the endpoint's known ``max_group_size`` or
  ``max_parts``, or for an endpoint that says it refuses groups, is never sent. Which answer
  is whose: :mod:`.matching`.
- An answer is read as it arrives. A request alone (in no atomic group) whose answer is
  final on its own (a status the policy does not retry, and not ``424``) may be settled
  then (:meth:`Run.settle_early`, which the event-loop driver uses: the caller's task goes
  on while the rest of the answer comes); what comes after cannot take it back. Everything
  else is decided once the whole answer is in, as if it had been read at once.
- A batch's exchange (connect, send, the whole answer) ends by a deadline: the smallest
  timeout of the requests it carries (:attr:`.model.PreparedBatch.timeout`), which the
  driver keeps.
- While the endpoint's description is on its way, it holds one of the ``concurrency``
  slots, and the first batches go in the others, cut to the limits known or assumed until
  then (:meth:`Run.discover_beside`); not with one slot, nor beside an atomic group.
"""

from __future__ import annotations

import heapq
import json
import random as _random
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import replace
from enum import Enum, auto
from typing import Any, Generic

from ...wire.content_coding import gzip_body
from ...wire.errors import MalformedBatch
from ...wire.model import SubRequest, SubResponse, first_header
from ...wire.multipart_answers import ReadAnswer
from .formats import Format, MultipartFormat
from .groups import culprit, failed_with, group_members, units
from .limits import (
    BATCH_LIMITS,
    PART_LIMITS,
    KnownLimits,
    body_size,
    groups_of,
    pack,
    read_too_large,
)
from .matching import Sent, match, repeated_id, request_ids, stopped_at
from .model import Answered, Arrival, Failed, Lost, OuterT, PreparedBatch, Reply, Result, smallest
from .policy import Retry, parse_retry_after
from .report import (
    BATCH_ANSWER_STATUSES,
    NO_PART,
    media_type_of,
    not_a_batch_answer,
    said,
    status_line,
    stopped,
)

#: A batch body larger than this goes in gzip where the endpoint takes it: one TCP segment's
#: payload (RFC 6928's 1,460 less options), below which compressing saves no round trip.
COMPRESS_ABOVE = 1400


class _State(Enum):
    WAITING = auto()
    IN_FLIGHT = auto()
    DONE = auto()


class _Item:
    __slots__ = (
        "attempts",
        "content_id",
        "depends_on",
        "encoded",
        "index",
        "last",
        "last_outer",
        "not_before",
        "request",
        "result",
        "state",
    )

    def __init__(self, index: int, request: SubRequest, depends_on: tuple[int, ...]) -> None:
        self.index = index
        self.request = request
        self.depends_on = depends_on
        self.content_id = ""
        self.encoded = b""
        self.attempts = 0
        self.state = _State.WAITING
        self.not_before = 0.0
        self.last: SubResponse | None = None
        self.last_outer: object = None
        self.result: Result[Any] | None = None


class Run(Generic[OuterT]):
    """The batches that answer ``requests``; ``depends_on[i]`` are earlier indices, and
    ``timeouts[i]`` the seconds the exchange of any batch carrying request ``i`` may take
    (None: no deadline).

    ``clock`` (monotonic seconds) and ``random`` (in [0, 1)) are injectable for tests; so is
    the driver's sleep: after each :meth:`pause` the driver calls :meth:`waited`, and the run
    takes that much time as passed even if the clock says otherwise.

    ``concurrency`` bounds the batches in flight at once (None: no bound): :meth:`next_batch`
    gives no more until one is fed back, so the run, not the driver, decides what may be in
    flight.
    """

    def __init__(
        self,
        requests: Sequence[SubRequest],
        depends_on: Sequence[tuple[int, ...]] | None = None,
        *,
        format: type[Format] = MultipartFormat,
        retry: Retry | None = None,
        limits: KnownLimits | None = None,
        split: bool = True,
        timeouts: Sequence[float | None] | None = None,
        concurrency: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
    ) -> None:
        depends_on = depends_on or [()] * len(requests)
        if len(depends_on) != len(requests):
            raise ValueError("depends_on needs one entry per request")
        self._timeouts = list(timeouts or [None] * len(requests))
        if len(self._timeouts) != len(requests):
            raise ValueError("timeouts needs one entry per request")
        self.format = format()
        self.retry = retry or Retry()
        self.limits = limits or KnownLimits()
        self.split = split
        self.concurrency = concurrency
        #: Batches given out by :meth:`next_batch` and not fed back yet.
        self._in_flight = 0
        #: The endpoint's description is being fetched beside the batches: it takes one of
        #: the :attr:`concurrency` slots (:meth:`discover_beside`).
        self._discovering = False
        self._clock = clock
        self._random = random
        self._skew = 0.0
        self._started = clock()
        self._due = 0.0
        #: A cap on parts per batch after an unexplained 413 (halved each time).
        self._cap: int | None = None
        self._items: list[_Item] = []
        for index, (request, dependencies) in enumerate(zip(requests, depends_on, strict=True)):
            if dependencies and any(not 0 <= d < index for d in dependencies):
                raise ValueError("a request may only depend on requests queued before it")
            self._items.append(_Item(index, request, tuple(dependencies)))
        #: The members of each atomic group, by the index of its first member.
        self._groups = group_members(requests)
        for members in self._groups.values():
            for index in members:
                self.format.check(requests[index], in_group=True)
        for item, content_id in zip(self._items, request_ids(requests, self.format), strict=True):
            item.content_id = content_id
        #: Each request by its id: whose an answer read as it arrives is.
        self._by_id = {item.content_id: item.index for item in self._items}
        #: Requests settled while their batch's answer arrived, that batch not fed back yet.
        self._early: set[int] = set()
        for item in self._items:
            item.encoded = self._encode(item, item.depends_on)
        self._depends_on = {item.index: item.depends_on for item in self._items}
        #: What must go in one batch with each request: its dependencies, and for a member of
        #: a group, the group's first member (so, the whole group).
        self._links: dict[int, tuple[int, ...]] = {}
        for item in self._items:
            group = item.request.group  # its first member: group_members checked where it is
            first = item.index if group is None else group.first
            self._links[item.index] = item.depends_on + ((first,) if first != item.index else ())
        #: Whether any request must go with another (a dependency, a group): if not, each is
        #: a group of its own, and a batch is the next ready requests in order.
        self._linked = any(self._links.values())
        #: No request before this index waits to go for the first time: where a look for
        #: waiting ones starts.
        self._fresh = 0
        #: Requests put back to wait (a retry, a re-split); some may have gone again since.
        self._put_back: set[int] = set()
        #: Requests without their final result yet.
        self._unfinished = len(self._items)

    # -- what the driver asks -------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Every request has its final result, and no batch is still arriving (one whose
        requests were all settled as it arrived is read to its end: its connection is then
        kept)."""
        return self._unfinished == 0 and self._in_flight == 0

    @property
    def timeout(self) -> float | None:
        """The smallest timeout of all the requests: what bounds asking for the limits."""
        return smallest(self._timeouts)

    def results(self) -> list[Result[OuterT]]:
        """Each request's final result, in order (once :attr:`done`)."""
        results: list[Result[OuterT]] = []
        for item in self._items:
            assert item.result is not None, "the run is not done"
            results.append(item.result)
        return results

    def needs_discovery(self) -> bool:
        """Whether asking the endpoint its limits could help before sending: the queue would
        be split under what is known so far, or it holds an atomic group (a route that takes
        none refuses the whole batch: asked first, the client fails only the group), and
        discovery was not tried yet."""
        if not (self.split and self.limits.discoverable):
            return False
        if self._waiting_groups():  # whether the endpoint takes them, and how many members
            return True
        return len(self._pack([item.index for item in self._waiting()])) > 1

    def discover_beside(self) -> bool:
        """The driver is about to fetch the endpoint's description (:meth:`needs_discovery`):
        whether batches may go meanwhile. If so, the discovery takes one of the
        :attr:`concurrency` slots until :meth:`discovered`, and the first batches go
        beside it, packed under the limits known or assumed until then (the server's
        defaults): a new process's queue then waits one round trip less, and its other
        connections open meanwhile. Limits lower than assumed cost what they would without
        a discovery: a ``413`` before anything ran, and the batch re-split. Not with one slot,
        nor when the queue holds an atomic group: a route that takes none would refuse the
        whole batch, where asked first the client fails only the group."""
        if self.concurrency == 1 or self._waiting_groups():
            return False
        self._discovering = True
        return True

    def discovered(self, document: object) -> None:
        """What the discovery answered (None: it failed); it is not tried again."""
        self._discovering = False
        self.limits.discovered(document)

    def next_batch(self) -> PreparedBatch | None:
        """The next batch to send now, or None (everything ready is in flight or done, or
        :attr:`concurrency` batches are in flight)."""
        if self._full():
            return None
        if self._groups and self.split:
            self._refuse_groups()
        while True:
            ready = self._ready()
            if not ready:
                return None
            indices = self._pack(ready, first_only=True)[0]
            unsendable = self._unsendable(indices)
            if unsendable is None:
                return self._prepare(indices)
            for index in indices:
                self._give_up(self._items[index], unsendable)

    def arrival(
        self, batch: PreparedBatch, status: int, content_type: str | None
    ) -> Arrival | None:
        """How to read the body of ``batch``'s answer as it arrives, given its status and
        media type, or None to read it whole (not a batch answer, or a format read whole).
        It changes nothing in the run: a driver may call it from a thread of its own."""
        if status not in BATCH_ANSWER_STATUSES:
            return None
        if media_type_of(content_type) != self.format.answer_type:
            return None
        stream = self.format.stream(content_type)
        return None if stream is None else Arrival(stream, batch.items)

    def whose(self, answer: ReadAnswer) -> int | None:
        """The request ``answer`` names by the id it echoes, if any (what :meth:`feed` will
        make of it may still differ: an atomic group's answer, an id answered twice). It
        changes nothing in the run."""
        return None if answer.content_id is None else self._by_id.get(answer.content_id)

    def settle_early(
        self, arrival: Arrival, answers: Sequence[ReadAnswer], outer: OuterT
    ) -> list[tuple[int, Answered[OuterT]]]:
        """Take the ``answers`` just read of a batch's answer (``arrival``, ``outer`` the
        front end's response to it) that are final on their own, before the rest arrives;
        the requests they settled (index, result), in order.

        That is an answer to a request alone, by the id it echoes, with a status the policy
        does not retry and not ``424`` (what :meth:`feed` would decide of it). Once an answer
        cannot be placed so (no id, an id of no request of the batch, an id answered
        already), nothing more is settled early: the whole answer decides the rest."""
        settled: list[tuple[int, Answered[OuterT]]] = []
        statuses = self.retry.statuses
        for answer in answers:
            if not arrival.settling:
                break
            index = self.whose(answer)
            if index is None or index not in arrival.items or index in arrival.seen:
                arrival.settling = False
                break
            arrival.seen.add(index)
            item = self._items[index]
            status = answer.response.status
            if item.request.group is not None or status in statuses or status == 424:
                continue
            item.attempts += 1
            item.last, item.last_outer = answer.response, outer
            result = Answered(answer.response, item.attempts, outer)
            self._finish(item, result)
            self._early.add(index)
            settled.append((index, result))
        return settled

    def feed(self, batch: PreparedBatch, outcome: Reply[OuterT] | Lost) -> None:
        """What came back for ``batch``."""
        settled = self._early.intersection(batch.items)
        for index in batch.items:
            assert self._items[index].state is _State.IN_FLIGHT or index in settled, "fed twice"
        self._in_flight -= 1
        whole = batch
        if settled:  # final already: the rest of the batch is what is decided now
            self._early -= settled
            batch = replace(batch, items=tuple(i for i in batch.items if i not in settled))
        if isinstance(outcome, Lost):
            self._outer_failure(
                batch,
                f"the batch could not be sent: {outcome.error}",
                outer=None,
                error=outcome.error,
                retryable=True,
                nothing_ran=outcome.sent_nothing,
                retry_after=None,
            )
            return
        self.limits.heard(outcome.accept_encoding)
        if outcome.status == 415 and batch.content_encoding is not None:
            # The endpoint takes no compressed body after all (a proxy in front of it, say):
            # nothing ran, and the batch goes again as it is.
            self.limits.refuse_gzip()
            self._requeue(list(batch.items))
            return
        if outcome.status == 413 and self.split:
            self._too_large(batch, outcome)
            return
        problem = not_a_batch_answer(outcome, self.format.answer_type)
        if problem is not None:
            self._outer_failure(
                batch,
                problem,
                outer=outcome.outer,
                error=None,
                retryable=outcome.status in self.retry.batch_statuses,
                nothing_ran=outcome.status == 429,
                retry_after=parse_retry_after(outcome.retry_after),
            )
            return
        try:
            if outcome.arrival is not None:
                answers = outcome.arrival.stream.close()
            else:
                answers = self.format.read(outcome.content_type, outcome.body)
        except MalformedBatch as error:
            self._unusable(batch, f"the batch answer is malformed: {error}", outcome.outer)
            return
        repeated = repeated_id(answers)
        if repeated is not None:
            name = self.format.id_name
            self._unusable(batch, f"the server answered {name} {repeated} twice", outcome.outer)
            return
        self._answered(whole, answers, outcome.outer, settled)

    def pause(self) -> float:
        """Seconds to wait before :meth:`next_batch` has something again. Call it only when
        the run is not :attr:`done` and nothing is in flight, then sleep, then :meth:`waited`."""
        waiting = [item.not_before for item in self._waiting()]
        if not waiting:  # pragma: no cover - a run that is not done has something waiting
            raise RuntimeError("the batch run stalled")
        self._due = min(waiting)
        return max(0.0, self._due - self.now())

    def wake_in(self) -> float | None:
        """While batches are in flight: seconds until a waiting request (a retry) may go
        although none of them has come back yet, or None (nothing could go before one does)."""
        if self._full():
            return None
        if not self._linked:
            due = [item.not_before for item in self._waiting()]
            return max(0.0, min(due) - self.now()) if due else None
        waiting = [item.index for item in self._waiting()]
        due = [
            max(self._items[index].not_before for index in group)
            for group in groups_of(waiting, self._links)
            if all(self._deps_settled(index) for index in group)
        ]
        return max(0.0, min(due) - self.now()) if due else None

    def waited(self) -> None:
        """The driver slept the last :meth:`pause`: that time has passed, whatever the clock."""
        self._skew = max(self._skew, self._due - self._clock())

    def now(self) -> float:
        return self._clock() + self._skew

    # -- sending --------------------------------------------------------------------------

    def _full(self) -> bool:
        return (
            self.concurrency is not None and self._in_flight + self._discovering >= self.concurrency
        )

    def _waiting(self) -> Iterator[_Item]:
        """The waiting requests, in order: those put back to wait, then those not sent yet.
        What went before the first of these is not looked at again, so that sending a long
        queue batch by batch looks at each request about once, not once a batch (a retry
        waiting for seconds does not hold the look back either)."""
        items = self._items
        again = sorted(i for i in self._put_back if items[i].state is _State.WAITING)
        put_back = self._put_back = set(again)
        fresh, end = self._fresh, len(items)
        while fresh < end and (items[fresh].state is not _State.WAITING or fresh in put_back):
            fresh += 1
        self._fresh = fresh
        waiting = (
            index
            for index in range(fresh, end)
            if items[index].state is _State.WAITING and index not in put_back
        )
        for index in heapq.merge(again, waiting) if again else waiting:
            yield items[index]

    def _ready(self) -> list[int]:
        """Waiting requests that may go now, whole dependency groups only; without links
        between requests, only as many as the next batch can take (:meth:`_most_parts` and
        one more, which :func:`.limits.pack` needs to close it)."""
        now = self.now()
        if not self._linked:
            most = self._most_parts() + 1 if self.split else None
            alone = []
            for item in self._waiting():
                if item.not_before <= now:
                    alone.append(item.index)
                    if len(alone) == most:
                        break
            return alone
        waiting = [item.index for item in self._waiting()]
        ready = []
        for group in groups_of(waiting, self._links):
            if all(self._items[i].not_before <= now and self._deps_settled(i) for i in group):
                ready += group
        ready.sort()
        return ready

    def _deps_settled(self, index: int) -> bool:
        """No dependency of ``index`` is in flight (it would go with it otherwise)."""
        depends_on = self._depends_on[index]
        return not depends_on or all(
            self._items[dependency].state is not _State.IN_FLIGHT for dependency in depends_on
        )

    def _pending_deps(self, index: int) -> tuple[int, ...]:
        """What must still go in one batch with ``index``: its links not answered yet."""
        links = self._links[index]
        if not links:
            return links
        return tuple(d for d in links if self._items[d].state is not _State.DONE)

    def _members(self, index: int) -> range:
        """The members of the group of request ``index``, or that request alone."""
        group = self._items[index].request.group
        return range(index, index + 1) if group is None else self._groups[group.first]

    def _waiting_groups(self) -> list[range]:
        return [m for m in self._groups.values() if self._items[m[0]].state is _State.WAITING]

    def _refuse_groups(self) -> None:
        """Give up, before sending, the waiting groups the endpoint is known to refuse."""
        max_group_size, known = self.limits.bound("max_group_size")
        refused: dict[int, str] = {}
        for members in self._waiting_groups():
            if self.limits.groups == "refused":
                refused[members[0]] = (
                    "the batch endpoint takes no atomic groups (its description says so)"
                )
            elif known and len(members) > max_group_size:
                refused[members[0]] = (
                    f"an atomic group of {len(members)} requests cannot be split, and the batch "
                    f"endpoint takes at most {max_group_size} requests in a group"
                )
        if refused:
            self._doom(refused, [item.index for item in self._waiting()], None)

    def _sent(self, item: _Item) -> Sent:
        request = item.request
        return Sent(item.content_id, request.group, request.method, request.target)

    def _most_parts(self) -> int:
        """The parts a batch may have now: the endpoint's limit, or the cap a 413 set."""
        max_parts = self.limits.max_parts
        return max_parts if self._cap is None else min(max_parts, self._cap)

    def _pack(self, indices: list[int], *, first_only: bool = False) -> list[list[int]]:
        """``indices`` cut into batches; ``first_only``: the first batch is all that is
        needed, and the rest may be left unpacked."""
        if not indices:
            return []
        if self._linked:
            groups = groups_of(indices, {i: self._pending_deps(i) for i in indices})
        else:
            groups = [[index] for index in indices]
        if not self.split:
            return [[index for group in groups for index in group]]
        return pack(
            groups,
            self._sizes(indices),
            max_parts=self._most_parts(),
            max_body_size=self.limits.max_body_size,
            overhead=self.format.overhead,
            separator=self.format.separator,
            first_only=first_only,
        )

    def _sizes(self, indices: list[int]) -> dict[int, int]:
        return {index: len(self._items[index].encoded) for index in indices}

    def _body_size(self, indices: list[int]) -> int:
        """The bytes of a batch body of ``indices``."""
        format = self.format
        sizes = self._sizes(indices)
        return body_size(indices, sizes, overhead=format.overhead, separator=format.separator)

    def _unsendable(self, indices: list[int]) -> str | None:
        """Why a batch of ``indices`` (one dependency group, if it breaks a limit) cannot be
        sent, or None."""
        if not self.split:
            return None
        max_parts, known_parts = self.limits.bound("max_parts")
        if known_parts and len(indices) > max_parts:
            what = "requests that depend on each other"
            if len(self._members(indices[0])) == len(indices):
                what = "requests of an atomic group"
            return (
                f"{len(indices)} {what} cannot be split, and the batch endpoint takes at most "
                f"{max_parts} parts"
            )
        max_body, known_body = self.limits.bound("max_body_size")
        size = self._body_size(indices)
        if known_body and size > max_body:
            what = "this request" if len(indices) == 1 else f"these {len(indices)} requests"
            return (
                f"a batch of {what} would be {size} bytes, and the batch endpoint takes at "
                f"most {max_body}"
            )
        return None

    def _prepare(self, indices: list[int]) -> PreparedBatch:
        indices = sorted(indices)  # request order: a dependency always comes before its dependents
        in_batch = set(indices)
        chunks = []
        for index in indices:
            item = self._items[index]
            item.state = _State.IN_FLIGHT
            dependencies = tuple(d for d in item.depends_on if d in in_batch)
            chunks.append(
                item.encoded
                if dependencies == item.depends_on
                else self._encode(item, dependencies)
            )
        timeout = smallest([self._timeouts[index] for index in indices])
        body = self.format.join(chunks)
        self._in_flight += 1
        if len(body) <= COMPRESS_ABOVE or not self.limits.compresses:
            return PreparedBatch(tuple(indices), body, self.format.content_type, timeout)
        compressed = gzip_body(body)
        return PreparedBatch(tuple(indices), compressed, self.format.content_type, timeout, "gzip")

    def _encode(self, item: _Item, dependencies: tuple[int, ...]) -> bytes:
        """``item`` as it goes in a batch that holds ``dependencies``: a dependency in another
        atomic group is named by its group, as OData JSON requires (and the group stands for
        all its members)."""
        own = item.request.group
        names: list[str] = []
        for dependency in dependencies:
            other = self._items[dependency]
            group = other.request.group
            name = group.name if group is not None and group is not own else other.content_id
            if name not in names:
                names.append(name)
        request = item.request._replace(content_id=item.content_id, depends_on=tuple(names))
        return self.format.encode(request, item.index)

    # -- what came back -------------------------------------------------------------------

    def _unusable(self, batch: PreparedBatch, reason: str, outer: OuterT) -> None:
        """An answer that cannot be trusted fails its batch (not retried: it would be again)."""
        self._outer_failure(
            batch,
            reason,
            outer=outer,
            error=None,
            retryable=False,
            nothing_ran=False,
            retry_after=None,
        )

    def _answered(
        self,
        batch: PreparedBatch,
        answers: list[ReadAnswer],
        outer: OuterT,
        settled: Collection[int] = (),
    ) -> None:
        """Decide each request of ``batch`` by ``answers``, but those ``settled`` already as
        the answer arrived (matched again alike, so that a failure the batch stopped at is
        named whichever way it was settled)."""
        items = [self._items[index] for index in batch.items]
        matched = match([self._sent(item) for item in items], answers)
        found_units = units([item.request.group for item in items])
        stop = stopped_at(matched, found_units)
        retrying: list[_Item] = []
        retrying_indices: set[int] = set()
        final: list[tuple[_Item, SubResponse | None]] = []
        not_run: list[_Item] = []  # after the failure the batch stopped at
        statuses = self.retry.statuses
        for number, unit in enumerate(found_units):
            if len(unit) == 1 and items[unit[0]].index in settled:
                continue
            if len(unit) == 1 and (stop is None or number <= stop):
                # A request alone, answered with what is never retried: final at once (what
                # _again would say), without the lists a group needs. Most requests are.
                item, answer = items[unit[0]], matched[unit[0]]
                if answer is not None and answer.status not in statuses and answer.status != 424:
                    item.attempts += 1
                    item.last, item.last_outer = answer, outer
                    final.append((item, answer))
                    continue
            members = [items[place] for place in unit]
            found = [matched[place] for place in unit]
            for item, answer in zip(members, found, strict=True):
                item.attempts += 1
                if answer is not None:
                    item.last, item.last_outer = answer, outer
            if stop is not None and number > stop:
                not_run += members
            elif self._again(members, found, retrying_indices):
                retrying += members
                retrying_indices.update(item.index for item in members)
            else:
                final += zip(members, found, strict=True)
        if retrying:
            delay = max(
                self.retry.delay(
                    item.attempts,
                    parse_retry_after(first_header(item.last.headers, "Retry-After")),
                    self._random,
                )
                for item in retrying
                if item.last is not None
            )
            if self._within_budget(delay):
                if stop is not None and items[found_units[stop][0]].index in retrying_indices:
                    retrying += not_run  # they never ran: they go again after it
                    not_run = []
                self._wait(retrying, delay)
            else:
                final += [(item, item.last) for item in retrying]
        for item, answer in final:
            if answer is None:
                self._give_up(item, NO_PART, outer)
            else:
                self._finish(item, Answered(answer, item.attempts, outer))
        if not_run:
            assert stop is not None
            unit = found_units[stop]
            at = _failure([items[p].request for p in unit], [matched[p] for p in unit])
            for item in not_run:
                self._give_up(item, stopped(at), outer)

    def _again(
        self, members: list[_Item], answers: list[SubResponse | None], retrying: set[int]
    ) -> bool:
        """Whether a request, or a group's ``members`` (as a whole), answered ``answers``, is
        sent again (``retrying``: the requests of the batch already being retried)."""
        if members[0].attempts >= self.retry.attempts or None in answers:
            return False
        if members[0].request.group is not None and self.limits.groups == "in-order":
            return False  # what its members wrote before a failure stayed applied
        status = failed_with([answer.status for answer in answers if answer is not None])
        if status in self.retry.statuses and all(
            self.retry.allows(item.request.method) for item in members
        ):
            return True
        # It never ran: something it depends on is being retried, and it goes along.
        return status == 424 and any(d in retrying for item in members for d in item.depends_on)

    def _too_large(self, batch: PreparedBatch, reply: Reply[OuterT]) -> None:
        """A 413: learn the limit and re-split, or drop the part that can never be sent."""
        try:
            exceeded = read_too_large(json.loads(reply.body))
        except ValueError:
            exceeded = read_too_large(None)
        items = list(batch.items)
        what = f"{exceeded.limit} ({exceeded.value})" if exceeded.value else exceeded.limit
        in_groups = [self._items[index].request.group for index in items]
        place = culprit(in_groups, exceeded.part, exceeded.member, self.format.group_is_one_part)
        bad = None if place is None else items[place]
        if exceeded.limit in PART_LIMITS and bad is not None:
            reason = f"the request exceeds the batch endpoint's {what}: it cannot be sent"
            self._requeue(self._doom({bad: reason}, items, reply.outer))
            return
        if exceeded.limit == "max_group_size" and exceeded.value is not None:
            self.limits.learn(exceeded.limit, exceeded.value)
            too_large = {
                index: f"the atomic group exceeds the batch endpoint's {what}: it cannot be split"
                for index in items
                if index in self._groups and len(self._groups[index]) > exceeded.value
            }
            if too_large:
                self._requeue(self._doom(too_large, items, reply.outer))
                return
        if exceeded.limit in BATCH_LIMITS and exceeded.value is not None:
            self.limits.learn(exceeded.limit, exceeded.value)
            if self._exceeds(items, exceeded.limit, exceeded.value):
                self._requeue(items)  # the next batches are cut to the limit just learned
                return
            # Otherwise the server contradicts itself: fall back to halving.
        # An unexplained (or inconsistent) 413: halve, unless there is nothing left to split.
        groups = groups_of(items, {i: self._pending_deps(i) for i in items})
        if len(groups) == 1:
            quoted = said(reply)
            reason = (
                f"the batch was refused with {status_line(reply)} and cannot be split further"
                + (f": {quoted}" if quoted else f" ({media_type_of(reply.content_type)})")
            )
            for index in items:
                self._give_up(self._items[index], reason, reply.outer)
            return
        self._cap = max(1, len(items) // 2)
        self._requeue(items)

    def _doom(self, bad: dict[int, str], among: list[int], outer: OuterT | None) -> list[int]:
        """Give up the requests of ``bad`` (each with why), the other members of their
        groups, and every request of ``among`` that depends on one of them; the rest of
        ``among``, in order, which may still go."""
        doomed: dict[int, str] = {}
        for index, reason in bad.items():
            for member in self._members(index):
                doomed.setdefault(member, f"a request of its atomic group cannot be sent: {reason}")
            doomed[index] = reason
        for index in among:  # in order: what a request depends on comes before it
            if index not in doomed and any(d in doomed for d in self._depends_on[index]):
                for member in self._members(index):
                    doomed[member] = "it depends on a request that cannot be sent"
        for index in sorted(doomed):
            self._give_up(self._items[index], doomed[index], outer)
        return [index for index in among if index not in doomed]

    def _exceeds(self, items: list[int], limit: str, value: int) -> bool:
        if limit == "max_parts":
            return len(items) > value
        return self._body_size(items) > value

    def _requeue(self, indices: list[int]) -> None:
        """Send ``indices`` again, at once (nothing in their batch ran)."""
        self._wait([self._items[index] for index in indices], 0.0)

    def _wait(self, items: list[_Item], delay: float) -> None:
        """Send ``items`` again after ``delay`` seconds."""
        not_before = self.now() + delay
        for item in items:
            item.state = _State.WAITING
            item.not_before = not_before
            self._put_back.add(item.index)

    def _outer_failure(
        self,
        batch: PreparedBatch,
        reason: str,
        *,
        outer: OuterT | None,
        error: BaseException | None,
        retryable: bool,
        nothing_ran: bool,
        retry_after: float | None,
    ) -> None:
        eligible: list[_Item] = []
        eligible_indices: set[int] = set()
        others: list[_Item] = []
        items = [self._items[index] for index in batch.items]
        for unit in units([item.request.group for item in items]):
            members = [items[place] for place in unit]
            own = {item.index for item in members}
            for item in members:
                item.attempts += 1
            # Run without atomicity, a group may have written something: not again, unless
            # nothing ran.
            in_order = members[0].request.group is not None and self.limits.groups == "in-order"
            if (
                retryable
                and (nothing_ran or not in_order)
                and all(
                    item.attempts < self.retry.attempts
                    and (nothing_ran or self.retry.allows(item.request.method))
                    # Its dependencies in this batch must go again with it.
                    and all(
                        d in eligible_indices
                        for d in self._depends_on[item.index]
                        if d in batch.items and d not in own
                    )
                    for item in members
                )
            ):
                eligible += members
                eligible_indices |= own
            else:
                others += members
        if eligible:
            delay = self.retry.delay(
                max(item.attempts for item in eligible), retry_after, self._random
            )
            if self._within_budget(delay):
                self._wait(eligible, delay)
            else:
                others += eligible
        for item in others:
            self._give_up(item, reason, outer, error)

    def _within_budget(self, delay: float) -> bool:
        return self.now() + delay - self._started <= self.retry.budget

    def _give_up(
        self,
        item: _Item,
        reason: str,
        outer: OuterT | None = None,
        error: BaseException | None = None,
    ) -> None:
        """``item`` gets nothing this time, for good: it keeps the answer it had, if any, or
        fails for ``reason``."""
        if item.last is not None:
            self._finish(item, Answered(item.last, item.attempts, item.last_outer))
        else:
            self._finish(item, Failed(reason, outer, error, item.attempts))

    def _finish(self, item: _Item, result: Result[Any]) -> None:
        if item.state is not _State.DONE:
            self._unfinished -= 1
        item.state = _State.DONE
        item.result = result


def _failure(requests: Sequence[SubRequest], answers: Sequence[SubResponse | None]) -> str:
    """``METHOD target (status reason)`` of the request a unit failed with: a request's own,
    or a group's member whose answer has the status the group failed with."""
    status = failed_with([answer.status for answer in answers if answer is not None])
    request, answer = next(
        (request, answer)
        for request, answer in zip(requests, answers, strict=True)
        if answer is not None and answer.status == status
    )
    return f"{request.method} {request.target} ({f'{answer.status} {answer.reason}'.rstrip()})"
