"""Atomic groups on SQLAlchemy's asyncio sessions, for ASGI applications (FastAPI,
Starlette, Litestar...).

The pattern of :mod:`flask_batch.integrations.sqlalchemy` with ``AsyncEngine`` and
``AsyncSession``: the hook's ``begin`` opens one ``AsyncConnection`` with an outer
transaction, and the session inside each ``AsyncSession`` a member's view uses is bound to
it with ``join_transaction_mode="create_savepoint"``. The group travels to the views in a
context variable: the members run in the hook's task, and SQLAlchemy runs a session's work
in a greenlet that keeps the task's context.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncTransaction,
    async_scoped_session,
    async_sessionmaker,
)

from ..transactions import AsyncTransactionHook, Group
from .sqlalchemy import _begin_on_sqlite, _Ending, _Groups, _joining_class, _OpenGroup

__all__ = ["async_sqlalchemy_transactions"]


def async_sqlalchemy_transactions(
    sessions: async_scoped_session[Any] | async_sessionmaker[Any],
    *,
    engine: AsyncEngine | None = None,
) -> AsyncTransactionHook:
    """The transaction hook for the sessions of ``sessions``, on ``engine`` (by default the
    engine ``sessions`` is bound to):
    ``BatchMiddleware(app, transaction=async_sqlalchemy_transactions(Session))``.

    Gives ``sessions``' factory, once, a ``sync_session_class`` that hands the open group's
    connection to every session made in the group's task; make sessions after this call
    (as a dependency that opens one per request does).
    """
    factory = sessions.session_factory if isinstance(sessions, async_scoped_session) else sessions
    bound = engine or factory.kw.get("bind")
    if not isinstance(bound, AsyncEngine):
        raise TypeError(
            f"{factory!r} is bound to no AsyncEngine: name the group's engine with engine="
        )
    sync_class = factory.kw.get("sync_session_class") or factory.class_.sync_session_class
    joining = _joining_class(sync_class)
    factory.kw["sync_session_class"] = joining
    groups = joining.groups

    async def begin(group: Group) -> _AsyncGroupTransaction:
        connection = await bound.connect()
        try:
            transaction = await connection.begin()
            await connection.run_sync(_begin_on_sqlite)
        except BaseException:
            await connection.close()
            raise
        open_group = _OpenGroup(group, connection.sync_connection)
        return _AsyncGroupTransaction(groups, open_group, connection, transaction)

    return begin


class _AsyncGroupTransaction(_Ending):
    """One group's transaction (ASGI): see flask_batch/transactions.py."""

    def __init__(
        self,
        groups: _Groups,
        group: _OpenGroup,
        connection: AsyncConnection,
        transaction: AsyncTransaction,
    ) -> None:
        super().__init__(groups, group, on_thread=False)  # an event loop's thread is shared
        self._connection = connection
        self._transaction = transaction

    async def commit(self) -> None:
        if self._ends_now(commit=True):
            await self._end(commit=True)

    async def rollback(self) -> None:
        if self._ends_now(commit=False):
            await self._end(commit=False)

    async def _end(self, *, commit: bool) -> None:
        try:
            await self._connection.run_sync(lambda _: self._group.close_sessions())
            if commit:
                await self._transaction.commit()
            else:
                await self._transaction.rollback()
        except BaseException:
            await self._connection.invalidate()  # as _GroupTransaction._end says
            raise
        finally:
            await self._connection.close()
