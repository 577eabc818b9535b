"""Atomic groups on SQLAlchemy 2 sessions: every session a group's members use joins one
transaction on one connection, so the group commits or rolls back as a whole.

This is SQLAlchemy's "join a Session into an external transaction" pattern. The group holds
a connection with an outer transaction, and each session a member's view uses is bound to
that connection with ``join_transaction_mode="create_savepoint"``: the view's own
``session.commit()`` releases a savepoint instead of committing, and its
``session.rollback()`` undoes its own work only. The open group travels from the hook's
``begin`` to the members' views in a context variable and, for a WSGI group, by its thread
(they run in one thread or one task, flask_batch/transactions.py), so sessions elsewhere
(parts running beside the group, requests outside batches) never see it. The connection is
opened when a member first needs it, by the engine its session resolves to (with
Flask-SQLAlchemy's bind keys, known only inside an app context). docs/design.md section 7
says why.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from contextvars import ContextVar
from typing import Any, ClassVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, RootTransaction
from sqlalchemy.orm import Session, SessionTransaction, scoped_session, sessionmaker
from sqlalchemy.orm.session import JoinTransactionMode

from ..transactions import Group, TransactionHook

__all__ = ["GroupBindError", "sqlalchemy_transactions"]


class GroupBindError(RuntimeError):
    """A session would work outside its group's transaction.

    Raised in the member's view, which fails, so the group rolls back: a group is never
    silently atomic in part only.
    """


def sqlalchemy_transactions(sessions: scoped_session[Any] | sessionmaker[Any]) -> TransactionHook:
    """The transaction hook for the sessions of ``sessions``:
    ``Batch(app, transaction=sqlalchemy_transactions(Session))``.

    Gives ``sessions``' factory, once, a session class that hands the open group's
    connection to every session made in the group's thread or task. Sessions made before
    this call keep their class: work they do in a group raises :class:`GroupBindError`.
    """
    factory = sessions.session_factory if isinstance(sessions, scoped_session) else sessions
    if not issubclass(factory.class_, _JoinsGroups):
        joining = _joining_class(factory.class_)
        # On the factory's own class (sessionmaker makes one per factory), whose sessions
        # made before this are refused in a group.
        event.listen(factory.class_, "after_begin", joining.groups.after_begin)
        factory.class_ = joining
    groups = factory.class_.groups

    def begin(group: Group) -> _GroupTransaction:
        return _GroupTransaction(groups, _OpenGroup(group), on_thread=True)

    return begin


class _OpenGroup:
    """One group's connection and outer transaction, and the sessions that joined it."""

    def __init__(self, group: Group, connection: Connection | None = None) -> None:
        self.group = group
        #: Opened by the first session that needs it, unless given (the asyncio hook's).
        self.connection = connection
        self.transaction: RootTransaction | None = None
        #: The thread of a WSGI group (see _Groups).
        self.thread: int | None = None
        #: Each joined session (by identity), with the join mode to give back at the end.
        self.sessions: dict[int, tuple[Session, JoinTransactionMode]] = {}

    def bind_for(self, session: Session, resolved: Engine | Connection) -> Connection:
        """The group's connection, for ``session``, whose own bind is ``resolved``."""
        if isinstance(resolved, Connection):
            raise GroupBindError(
                f"a session bound to a connection of its own cannot join atomic group "
                f"{self.group.name!r}: bind it to an engine"
            )
        connection = self.connection or self._open(resolved)
        if resolved.pool is not connection.engine.pool:
            raise GroupBindError(
                f"a session in atomic group {self.group.name!r} needs {resolved.url!r} "
                f"besides {connection.engine.url!r}: a group's transaction covers one database"
            )
        if id(session) not in self.sessions:
            self.sessions[id(session)] = (session, session.join_transaction_mode)
            session.join_transaction_mode = "create_savepoint"
        return connection

    def _open(self, engine: Engine) -> Connection:
        connection = engine.connect()
        try:
            self.transaction = connection.begin()
            _begin_on_sqlite(connection)
        except BaseException:
            connection.close()
            raise
        self.connection = connection
        return connection

    def close_sessions(self) -> None:
        """Close every joined session (what a view left uncommitted is dropped, as outside
        a batch), so the next request finds it unbound and empty; all are closed even if
        one fails."""
        with ExitStack() as closing:
            for session, mode in self.sessions.values():
                session.join_transaction_mode = mode
                closing.callback(session.close)


class _Groups:
    """The groups open on one session factory: one per task (a context variable) and, for
    a WSGI group, per thread too.

    A WSGI group's members run on its thread, which the execution layer may enter each in a
    context of its own (parts run in an empty ``contextvars.Context``); a member's view may
    also hop threads carrying its context (``asyncio.to_thread``, asgiref's
    ``async_to_sync``). Looking in both finds the group either way.
    """

    def __init__(self) -> None:
        self._in_context: ContextVar[_OpenGroup | None] = ContextVar("group", default=None)
        self._on_thread: dict[int, _OpenGroup] = {}

    def current(self) -> _OpenGroup | None:
        return self._in_context.get() or self._on_thread.get(threading.get_ident())

    def enter(self, group: _OpenGroup, *, on_thread: bool) -> None:
        if self.current() is not None:
            raise RuntimeError(
                f"atomic group {group.group.name!r} begins while another group is open in "
                f"this thread or task"
            )
        self._in_context.set(group)
        if on_thread:
            group.thread = threading.get_ident()
            self._on_thread[group.thread] = group

    def leave(self, group: _OpenGroup) -> None:
        self._in_context.set(None)
        if group.thread is not None:
            self._on_thread.pop(group.thread, None)

    def after_begin(
        self, session: Session, transaction: SessionTransaction, connection: Connection
    ) -> None:
        """Refuse a session that, in a group, began a transaction off the group's
        connection (one made before the hook was installed keeps the old class)."""
        group = self.current()
        if group is not None and connection is not group.connection:
            raise GroupBindError(
                f"a session made before its factory was given to the transaction hook began "
                f"a transaction of its own in atomic group {group.group.name!r}"
            )


class _JoinsGroups(Session):
    """A session that works on the open group's connection, if its context has one."""

    groups: ClassVar[_Groups]

    def get_bind(
        self, mapper: Any = None, *, clause: Any = None, bind: Any = None, **kw: Any
    ) -> Engine | Connection:
        resolved = super().get_bind(mapper, clause=clause, bind=bind, **kw)
        group = self.groups.current()
        return resolved if group is None else group.bind_for(self, resolved)


def _joining_class(base: type[Session]) -> type[_JoinsGroups]:
    """``base`` with :class:`_JoinsGroups` before it (``base`` itself if it has it)."""
    if issubclass(base, _JoinsGroups):
        return base
    joining: type[_JoinsGroups] = type(base.__name__, (_JoinsGroups, base), {"groups": _Groups()})
    return joining


class _Ending:
    """What the sync and asyncio transactions share: the group is open in its context from
    begin to the end, and ends once."""

    def __init__(self, groups: _Groups, group: _OpenGroup, *, on_thread: bool) -> None:
        groups.enter(group, on_thread=on_thread)
        self._groups = groups
        self._group = group
        self._ended = False

    def _ends_now(self, *, commit: bool) -> bool:
        """Whether this call ends the group; a rollback after a commit that raised (and so
        rolled back) does nothing, a commit after the end is refused."""
        if self._ended and commit:
            raise RuntimeError(f"atomic group {self._group.group.name!r} has ended already")
        if self._ended:
            return False
        self._ended = True
        self._groups.leave(self._group)
        return True


class _GroupTransaction(_Ending):
    """One group's transaction (WSGI and Flask): see flask_batch/transactions.py."""

    def commit(self) -> None:
        if self._ends_now(commit=True):
            self._end(commit=True)

    def rollback(self) -> None:
        if self._ends_now(commit=False):
            self._end(commit=False)

    def _end(self, *, commit: bool) -> None:
        group = self._group
        connection, transaction = group.connection, group.transaction
        if connection is None or transaction is None:  # no member used the database
            group.close_sessions()
            return
        try:
            group.close_sessions()
            if commit:
                transaction.commit()
            else:
                transaction.rollback()
        except BaseException:
            # Its state is unknown: SQLite keeps the transaction a failed COMMIT leaves
            # open (and its lock), while SQLAlchemy takes it as ended and so would not roll
            # it back on the way to the pool. A closed DB-API connection holds nothing.
            connection.invalidate()
            raise
        finally:
            connection.close()


def _begin_on_sqlite(connection: Connection) -> None:
    """Begin SQLite's transaction for real, before the first savepoint.

    Python's sqlite3 (and aiosqlite, over it) sends ``BEGIN`` only before a write, so the
    first ``SAVEPOINT`` would begin SQLite's transaction itself, and releasing it, which a
    view's ``session.commit()`` does, would commit: SQLite's ``RELEASE`` of the outermost
    savepoint is a ``COMMIT``. A driver set up otherwise (SQLAlchemy's recipe for SQLite,
    or sqlite3's ``autocommit=False``) is in a transaction already and is left alone.
    """
    if connection.dialect.name != "sqlite":
        return
    if getattr(connection.connection.driver_connection, "in_transaction", True) is False:
        connection.exec_driver_sql("BEGIN")
