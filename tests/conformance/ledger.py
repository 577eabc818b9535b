"""A transactional store for the conformance suite, and the transaction hooks over it.

The real database integrations are tested on their own; what the execution layer owes them
is shown here on the smallest thing that has a transaction: a dict whose writes go to the
transaction that a context variable names (as an integration binds a session), committed or
dropped as a whole. Every call is logged with where it ran (thread and task), so a test sees
the order ``begin``, members, ``commit``/``rollback``, and that they ran in one thread or task.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from dataclasses import dataclass, field
from typing import Any

from flask_batch.transactions import Group

#: A group whose name is this cannot begin; a write of this key cannot be committed.
NO_BEGIN = "no-begin"
NO_COMMIT = "no-commit"


@dataclass(frozen=True)
class Event:
    """One call: ``what`` (begin, member, commit, rollback), the group or key it is about,
    the transaction it saw (None: none), and where it ran."""

    what: str
    about: str
    transaction: int | None
    thread: int
    task: int | None


def where() -> tuple[int, int | None]:
    """The current thread, and the current asyncio task (None outside one)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return threading.get_ident(), None if task is None else id(task)


@dataclass
class Ledger:
    """The store: committed values, and the log of every call."""

    committed: dict[str, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(default_factory=threading.Condition)
    #: The transaction the current context works in (set by ``begin``).
    current: contextvars.ContextVar[Pending | None] = field(
        default_factory=lambda: contextvars.ContextVar("ledger_transaction", default=None)
    )
    _count: int = 0

    def log(self, what: str, about: str, transaction: Pending | None) -> None:
        with self.changed:
            number = None if transaction is None else transaction.number
            self.events.append(Event(what, about, number, *where()))
            self.changed.notify_all()

    def wait_for(self, what: str, timeout: float = 10.0) -> bool:
        """Whether an event ``what`` was logged (waiting ``timeout`` seconds at most)."""
        with self.changed:
            return self.changed.wait_for(lambda: any(e.what == what for e in self.events), timeout)

    def clear(self) -> None:
        with self.changed:
            self.committed.clear()
            self.events.clear()

    def write(self, key: str, value: str) -> None:
        """A view's write: into the current transaction, or straight in without one."""
        transaction = self.current.get()
        self.log("member", key, transaction)
        if transaction is None:
            with self.lock:
                self.committed[key] = value
        else:
            transaction.writes[key] = value

    def begin(self, group: Group) -> Pending:
        """The sync hook (Flask and WSGI routes)."""
        if group.name == NO_BEGIN:
            raise RuntimeError("the database is down")
        with self.lock:
            self._count += 1
            transaction = Pending(self, self._count)
        self.current.set(transaction)
        self.log("begin", group.name, transaction)
        return transaction

    async def abegin(self, group: Group) -> AsyncPending:
        """The async hook (ASGI routes)."""
        return AsyncPending(self.begin(group))


@dataclass
class Pending:
    """One group's transaction: its writes wait here until it commits."""

    ledger: Ledger
    number: int
    writes: dict[str, Any] = field(default_factory=dict)

    def commit(self) -> None:
        if NO_COMMIT in self.writes:
            self.ledger.log("commit failed", NO_COMMIT, self.ledger.current.get())
            raise RuntimeError("serialization failure")
        with self.ledger.lock:
            self.ledger.committed.update(self.writes)
        self.ledger.log("commit", ",".join(self.writes), self.ledger.current.get())

    def rollback(self) -> None:
        self.writes.clear()
        self.ledger.log("rollback", "", self.ledger.current.get())


@dataclass
class AsyncPending:
    """:class:`Pending` for an ASGI route."""

    pending: Pending

    async def commit(self) -> None:
        self.pending.commit()

    async def rollback(self) -> None:
        self.pending.rollback()
