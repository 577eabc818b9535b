"""A SQLite database for the services: one connection per request, or the group's while an
atomic group (a changeset) runs, and the transaction hook that makes it so.

Why: the clients' changesets are all or nothing on the real services, so the services here
write to a real database and the tests check its tables by query. A request outside a group
commits when it answers below 400 and rolls back otherwise; inside a group nothing commits
until the hook does (:mod:`flask_batch.transactions`: ``begin``, every member and
``commit`` or ``rollback`` run in one thread, so a context variable carries the group's
connection to the members' views).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, g

from flask_batch.transactions import Group, Transaction


@dataclass
class Store:
    """A database file and the connection each request (or group) writes through."""

    path: Path
    schema: str
    #: The connection of the atomic group running in this context, if any.
    _group: ContextVar[sqlite3.Connection | None] = field(
        default_factory=lambda: ContextVar("group_connection", default=None)
    )
    #: Names of the groups begun, committed and rolled back, in order (what the hook saw).
    groups: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        with sqlite3.connect(self.path) as connection:
            connection.executescript(self.schema)

    def flask_app(self, import_name: str) -> Flask:
        """A Flask app whose requests end their own connection: commit below 400, roll back
        otherwise."""
        app = Flask(import_name)

        @app.after_request
        def commit_or_roll_back(response: Response) -> Response:
            connection: sqlite3.Connection | None = g.pop("connection", None)
            if connection is not None:
                if response.status_code < 400:
                    connection.commit()
                connection.close()  # closing without a commit rolls back
            return response

        @app.teardown_request
        def close(_error: BaseException | None) -> None:
            connection: sqlite3.Connection | None = g.pop("connection", None)
            if connection is not None:  # the view raised: nothing it wrote stays
                connection.close()

        return app

    def connection(self) -> sqlite3.Connection:
        """The group's connection inside an atomic group, else this request's own."""
        group = self._group.get()
        if group is not None:
            return group
        if "connection" not in g:
            g.connection = sqlite3.connect(self.path)
        connection: sqlite3.Connection = g.connection
        return connection

    def exists(self, table: str, name: str) -> bool:
        """Whether ``table`` (of containers, tables...) has a row named ``name``."""
        found = self.connection().execute(f"SELECT 1 FROM {table} WHERE name = ?", (name,))
        return found.fetchone() is not None

    def begin(self, group: Group) -> Transaction:
        """The transaction hook (:data:`flask_batch.transactions.TransactionHook`)."""
        connection = sqlite3.connect(self.path)
        connection.execute("BEGIN IMMEDIATE")  # SQLite's write lock, taken once for the group
        self._group.set(connection)
        self.groups.append(f"begin {group.name} ({group.size})")
        return _GroupTransaction(self, group, connection)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """What the database holds now, from a connection of the test's own."""
        with sqlite3.connect(self.path) as connection:
            return connection.execute(sql, params).fetchall()


@dataclass
class _GroupTransaction:
    store: Store
    group: Group
    connection: sqlite3.Connection

    def commit(self) -> None:
        self._end("commit", self.connection.commit)

    def rollback(self) -> None:
        self._end("rollback", self.connection.rollback)

    def _end(self, how: str, end: Any) -> None:
        try:
            end()
        finally:
            self.connection.close()
            self.store._group.set(None)
            self.store.groups.append(f"{how} {self.group.name}")


#: A batch route's options for a service, given its store (the hook needs the store).
RouteOptions = Callable[[Store], dict[str, Any]]


def no_options(store: Store) -> dict[str, Any]:
    """Today's defaults."""
    return {}
