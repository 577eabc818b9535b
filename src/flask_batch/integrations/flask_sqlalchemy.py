"""Atomic groups on Flask-SQLAlchemy 3.1's ``db.session``.

``db.session`` is a ``scoped_session`` scoped to the app context: each member of a group
runs in its own app context, so it gets its own session, which Flask-SQLAlchemy removes at
the member's teardown. Every one of them joins the group's transaction, as
:mod:`flask_batch.integrations.sqlalchemy` says; requests outside the group (another
thread, another task) keep their own connections.
"""

from __future__ import annotations

from flask_sqlalchemy import SQLAlchemy

from ..transactions import TransactionHook
from .sqlalchemy import sqlalchemy_transactions

__all__ = ["flask_sqlalchemy_transactions"]


def flask_sqlalchemy_transactions(db: SQLAlchemy) -> TransactionHook:
    """The transaction hook for ``db``'s sessions:
    ``Batch(app, transaction=flask_sqlalchemy_transactions(db))``.

    A group's transaction covers one database: the engine of the first model or query a
    member uses (the default one, or a ``bind_key``'s); a member that uses another in the
    same group fails (:class:`~flask_batch.integrations.sqlalchemy.GroupBindError`), and
    the group rolls back.
    """
    return sqlalchemy_transactions(db.session)
