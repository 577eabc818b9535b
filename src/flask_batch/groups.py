"""How an atomic group runs (docs/design.md section 3): its members one after another, in one
thread (WSGI) or one task (ASGI), wrapped in the route's transaction; and what each member
answers once the group is over.

The hook's ``begin``, each member's dispatch and ``commit`` or ``rollback`` run in that
thread or task, in that order, inside one context of the group's own (empty at first, like a
part's), so a context variable or thread-local that ``begin`` sets is what the members'
views see (:mod:`flask_batch.transactions`). Each member runs in a copy of that context: what
a view sets stays in it. :class:`GroupRun` is the bookkeeping both drivers share;
:func:`run_group` and :func:`arun_group` do the calls.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, cast

from .schedule import AsyncDispatch, Dispatch, GroupOutcome, Schedule
from .transactions import AsyncTransaction, AsyncTransactionHook, Transaction, TransactionHook
from .wire.errors import problem_response
from .wire.model import SubResponse

__all__ = ["Gone", "GroupRun", "arun_group", "check_hook", "run_group"]

logger = logging.getLogger("flask_batch")

#: How a driver learns that the client went away (checked before each member and the commit).
Gone = Callable[[], bool]


def check_hook(hook: object, *, asynchronous: bool) -> None:
    """Refuse (TypeError) a transaction hook of the wrong kind for its route: a coroutine
    function on a WSGI route (begin and commit would never run), a plain function on an ASGI
    one (its database calls would block the event loop, and a thread would not share the
    members' task)."""
    if hook is None:
        return
    # A coroutine function, or an object whose __call__ is one.
    is_async = inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(type(hook).__call__)
    if asynchronous and not is_async:
        raise TypeError(
            f"the transaction hook {hook!r} of an ASGI route must be a coroutine function "
            "(async def begin(group) -> AsyncTransaction): begin, the members and commit run "
            "in one task on the event loop"
        )
    if not asynchronous and is_async:
        raise TypeError(
            f"the transaction hook {hook!r} of a Flask or WSGI route must be a function "
            "(def begin(group) -> Transaction), not a coroutine function"
        )


class GroupRun:
    """One group's run, without I/O: which members may run, and what every member answers
    once the group is over (:class:`~flask_batch.schedule.GroupOutcome`)."""

    def __init__(self, schedule: Schedule, first: int) -> None:
        self.schedule = schedule
        self.group = schedule.groups[first]
        self.first = first
        self.members = range(first, first + self.group.size)
        #: The answers of the members that ran (or were refused), in order.
        self.answers: list[SubResponse] = []
        #: The client went away during the group: the batch stops.
        self.gone = False
        self._atomic = schedule.policy.transaction is not None

    def __getitem__(self, index: int) -> SubResponse | None:
        """The answer of part ``index`` as the group's members see it (their dependencies)."""
        if index in self.members:
            offset = index - self.first
            return self.answers[offset] if offset < len(self.answers) else None
        return self.schedule.answers[index]

    def refused(self) -> GroupOutcome | None:
        """The outcome of a group that must not begin: a member is invalid or depends on a
        request that failed, the batch stopped on an error, or its deadline passed. Decided
        for every member before anything of the group runs (no transaction is begun)."""
        late = self.schedule.too_late()
        for index in self.members:
            answer = self.schedule.refusal(index, self) or late
            if answer is not None:
                return self._failed(index, answer, ran=[])
        return None

    def before(self, index: int, gone: bool) -> SubResponse | None:
        """The answer of member ``index`` if it must not run: a dependency on an earlier
        member failed, the deadline passed, or the client left."""
        if gone:
            self.gone = True
            return _CLIENT_GONE
        return self.schedule.refusal(index, self) or self.schedule.past_deadline()

    def record(self, answer: SubResponse) -> bool:
        """The next member answered ``answer``; whether the group goes on."""
        self.answers.append(answer)
        return answer.status < 400

    def ending(self, gone: bool) -> GroupOutcome | None:
        """Once the members ran: the outcome of a group that must not commit (a member
        failed, the client left, the deadline passed), or None."""
        answer = self.answers[-1]
        if answer.status >= 400:
            return self._failed(self.first + len(self.answers) - 1, answer, self.answers[:-1])
        if not self._atomic:
            return None
        if gone:
            self.gone = True
            return self._every(_CLIENT_GONE)
        if self.schedule.past_deadline() is not None:
            return self._every(_TOO_LATE_TO_COMMIT)
        return None

    def committed(self) -> GroupOutcome:
        """Every member succeeded (and, for an atomic group, the commit too)."""
        return GroupOutcome(self.answers, abandoned=self.gone)

    def transaction_failed(self, stage: str) -> GroupOutcome:
        """The transaction could not be begun or committed (``stage``): every member fails
        alike, and nothing of the group was applied."""
        return self._every(
            problem_response(
                500,
                "Transaction failed",
                f"the transaction of the atomic group {self.group.name!r} could not be {stage}; "
                "none of its requests was applied",
            )
        )

    def _every(self, answer: SubResponse) -> GroupOutcome:
        return GroupOutcome([answer] * self.group.size, (answer, None), abandoned=self.gone)

    def _failed(self, failing: int, answer: SubResponse, ran: list[SubResponse]) -> GroupOutcome:
        """Member ``failing`` answered ``answer`` after the members before it answered
        ``ran`` (if they ran): it keeps its answer, the others are answered 424 (as OData JSON
        4.01 allows): rolled back if they ran in an atomic group, their own answers if they
        ran in a non-atomic one, not run otherwise."""
        position = failing - self.first
        said = f"member {position + 1} of the group {self.group.name!r} answered {answer.status}"
        before = [_rolled_back(said)] * len(ran) if self._atomic else ran
        before += [_not_run(said)] * (position - len(ran))
        after = [_not_run(said)] * (self.group.size - position - 1)
        failure = (answer, failing) if self._atomic else None
        return GroupOutcome([*before, answer, *after], failure, abandoned=self.gone)


def run_group(schedule: Schedule, first: int, dispatch: Dispatch, gone: Gone) -> GroupOutcome:
    """Run the group at ``first`` in this thread, in a context of its own; ``dispatch`` runs a
    member in (a copy of) the current context."""
    run = GroupRun(schedule, first)
    refused = run.refused()
    if refused is not None:
        return refused
    hook = cast("TransactionHook | None", schedule.policy.transaction)
    return contextvars.Context().run(_run, run, hook, dispatch, gone)


def _run(
    run: GroupRun, hook: TransactionHook | None, dispatch: Dispatch, gone: Gone
) -> GroupOutcome:
    transaction: Transaction | None = None
    if hook is not None:
        try:
            transaction = _begun(hook(run.group))
        except Exception:
            logger.exception("the transaction of the group %r could not begin", run.group.name)
            return run.transaction_failed("begun")
    try:
        for index in run.members:
            answer = run.before(index, gone()) or run.schedule.call(index, dispatch, run)
            if not run.record(answer):
                break
        ending = run.ending(gone())
    except BaseException:  # interrupted (the worker is shutting down): undo, then go on
        if transaction is not None:
            _quietly(transaction.rollback, run)
        raise
    if transaction is None:
        return ending or run.committed()
    if ending is not None:
        _quietly(transaction.rollback, run)
        return ending
    try:
        transaction.commit()
    except Exception:
        logger.exception("the transaction of the group %r could not commit", run.group.name)
        return run.transaction_failed("committed")
    return run.committed()


async def arun_group(
    schedule: Schedule,
    first: int,
    dispatch: AsyncDispatch,
    gone: Gone,
    limiter: AbstractAsyncContextManager[object] | None = None,
) -> GroupOutcome:
    """:func:`run_group` on an event loop, as one task in a context of its own (holding
    ``limiter`` throughout); ``dispatch`` runs a member in the current task."""
    if limiter is not None:
        async with limiter:
            return await arun_group(schedule, first, dispatch, gone)
    run = GroupRun(schedule, first)
    refused = run.refused()
    if refused is not None:
        return refused
    hook = cast("AsyncTransactionHook | None", schedule.policy.transaction)
    # Cancelling this cancels the task it awaits, whose rollback runs before this ends.
    return await asyncio.get_running_loop().create_task(
        _arun(run, hook, dispatch, gone), context=contextvars.Context()
    )


async def _arun(
    run: GroupRun, hook: AsyncTransactionHook | None, dispatch: AsyncDispatch, gone: Gone
) -> GroupOutcome:
    transaction: AsyncTransaction | None = None
    if hook is not None:
        try:
            transaction = await _abegun(hook(run.group))
        except Exception:
            logger.exception("the transaction of the group %r could not begin", run.group.name)
            return run.transaction_failed("begun")
    try:
        for index in run.members:
            answer = run.before(index, gone()) or await run.schedule.acall(index, dispatch, run)
            if not run.record(answer):
                break
        ending = run.ending(gone())
    except BaseException:  # cancelled (the client left, the server stops): undo, then go on
        if transaction is not None:
            await _aquietly(transaction.rollback, run)
        raise
    if transaction is None:
        return ending or run.committed()
    if ending is not None:
        await _aquietly(transaction.rollback, run)
        return ending
    try:
        await transaction.commit()
    except Exception:
        logger.exception("the transaction of the group %r could not commit", run.group.name)
        return run.transaction_failed("committed")
    return run.committed()


def _begun(transaction: Any) -> Transaction:
    if inspect.isawaitable(transaction):
        if inspect.iscoroutine(transaction):
            transaction.close()  # never awaited, and said so
        raise TypeError("a Flask or WSGI route's transaction hook returned an awaitable")
    return cast("Transaction", transaction)


async def _abegun(begun: Any) -> AsyncTransaction:
    if not inspect.isawaitable(begun):
        raise TypeError("an ASGI route's transaction hook must return an awaitable")
    return cast("AsyncTransaction", await begun)


def _quietly(rollback: Callable[[], object], run: GroupRun) -> None:
    try:
        rollback()
    except Exception:
        logger.exception("the transaction of the group %r could not roll back", run.group.name)


async def _aquietly(rollback: Callable[[], Awaitable[object]], run: GroupRun) -> None:
    try:
        await rollback()
    except Exception:
        logger.exception("the transaction of the group %r could not roll back", run.group.name)


def _rolled_back(said: str) -> SubResponse:
    return problem_response(424, "Rolled back", f"this request ran, then was rolled back: {said}")


def _not_run(said: str) -> SubResponse:
    return problem_response(424, "Not run", f"this request was not run: {said}")


#: What the members answer when the client went away (no one reads it: the batch stops).
_CLIENT_GONE = problem_response(
    503, "Client gone", "the client went away before the group was over; it was rolled back"
)
_TOO_LATE_TO_COMMIT = problem_response(
    503,
    "Batch deadline passed",
    "the batch's deadline passed before the group could commit; it was rolled back",
    (("Retry-After", "1"),),
)
