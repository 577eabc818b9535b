"""A small ledger API on every integration of flask_batch.integrations, driven in groups as
the execution layer drives them (flask_batch/transactions.py): on one thread (or one task),
the hook begins, each member goes through the real application in turn, then the group
commits if every member succeeded, or rolls back.

The API, the same in Flask (plain SQLAlchemy and Flask-SQLAlchemy), Django
(tests/frameworks/django_ledger.py) and FastAPI (tests/frameworks/fastapi_ledger.py):

- ``POST /entries`` ``{"name", "amount"}``: adds an entry and commits as the view's own
  code does (``session.commit()``, Django's ``atomic``); ``201``, or ``409`` for a negative
  amount (a ``CHECK``) or a name taken; with ``"crash": true`` the view raises after its
  commit (``500``);
- ``GET /entries``: every entry, ``[[name, amount], ...]``, as this request sees them;
- ``POST /holds`` ``{"entry"}``: a hold on an entry, whose foreign key is checked only when
  the transaction commits (``DEFERRABLE INITIALLY DEFERRED``), so a group's commit can fail;
- ``GET /session``: ``{"clean": bool, "state": ...}``: whether the request's session (or
  Django's connection) is as a request outside any batch finds it;
- ``POST /checkpoint`` ``{"at"}``: hands the entries this request sees to the test's
  ``CHECKPOINTS[at]`` (which may record them, look at the database, meet other requests at a
  barrier), then answers ``{"seen": entries}``: how a test served on a real server steps in
  between two members of a group.

The same ledger behind real batch routes on real servers: tests/served_ledgers.py. (Over
400 lines: the API, its Flask versions and the two ways of driving a group belong together,
and every integration's tests read them side by side.)
"""

from __future__ import annotations

import asyncio
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Blueprint, Flask, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Engine, String, create_engine, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, scoped_session
from sqlalchemy.orm import sessionmaker as make_sessionmaker
from werkzeug.test import Client

from flask_batch.integrations.flask_sqlalchemy import flask_sqlalchemy_transactions
from flask_batch.integrations.sqlalchemy import sqlalchemy_transactions
from flask_batch.transactions import AsyncTransactionHook, Group, TransactionHook

from .databases import Database
from .frameworks.driving import App
from .frameworks.driving import request as asgi_request

T = TypeVar("T")

SCHEMA = """
CREATE TABLE entries (
    name VARCHAR(40) PRIMARY KEY,
    amount INTEGER NOT NULL CHECK (amount >= 0)
);
CREATE TABLE holds (
    entry VARCHAR(40) PRIMARY KEY REFERENCES entries (name) DEFERRABLE INITIALLY DEFERRED
)
"""
#: Every kind of ledger: one per integration, and its variants.
KINDS = (
    "sqlalchemy-scoped",
    "sqlalchemy-sessionmaker",
    "flask-sqlalchemy",
    "django",
    "django-atomic-requests",
    "sqlalchemy-asyncio",
)
#: A guard against a hang only: a step that needs a fraction of a second.
GUARD = 60
#: What ``POST /checkpoint`` calls, by the name its body gives, with the entries it sees (run
#: on the view's thread; in a worker thread of its own for an async view).
CHECKPOINTS: dict[str, Callable[[list[list[Any]]], object]] = {}


class Base(DeclarativeBase):
    pass


class Entry(Base):
    __tablename__ = "entries"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    amount: Mapped[int]


class Hold(Base):
    __tablename__ = "holds"
    entry: Mapped[str] = mapped_column(String(40), primary_key=True)


@dataclass(frozen=True)
class Call:
    """A request: a member of a group, or one on its own."""

    method: str
    path: str
    body: Any = None


def post(path: str, **body: Any) -> Call:
    return Call("POST", path, body)


def get(path: str) -> Call:
    return Call("GET", path)


#: Three writes whose second is refused (a negative amount breaks the ``CHECK``).
SECOND_FAILS = (
    post("/entries", name="bob", amount=5),
    post("/entries", name="carol", amount=-1),
    post("/entries", name="dave", amount=7),
)
#: Three writes that all succeed, and what ``GET /entries`` finds once they are committed.
ALL_SUCCEED = (
    post("/entries", name="bob", amount=5),
    post("/holds", entry="bob"),
    post("/entries", name="carol", amount=3),
)
ENTRIES_AFTER_ALL_SUCCEED = [["alice", 10], ["bob", 5], ["carol", 3]]


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


#: A group's step: a member, or something to do between two members on the group's thread
#: (meet another thread at a barrier, look at the database).
Step = Call | Callable[[], object]


class Ledger(ABC):
    """An application with its transaction hook."""

    #: What a commit that fails raises (a deferred constraint broken).
    commit_error: type[BaseException]

    @abstractmethod
    def request(self, call: Call) -> Answer:
        """``call`` on its own, outside any group, on this thread."""

    @abstractmethod
    def group(self, *steps: Step, rollback: bool = False) -> list[Answer]:
        """Run ``steps`` as one group on this thread (or one task); commit if every member
        succeeded, unless ``rollback`` (as when the deadline passes); raise what the commit
        raises."""

    def entries(self) -> list[list[Any]]:
        answer = self.request(get("/entries"))
        assert answer.status == 200, answer
        entries: list[list[Any]] = answer.body
        return entries


Rows = list[tuple[Any, ...]]


def tables(database: Database) -> tuple[Rows, Rows]:
    """Every row of the ledger, as committed (on a connection of its own)."""
    entries = database.rows("SELECT name, amount FROM entries ORDER BY name")
    return entries, database.rows("SELECT entry FROM holds ORDER BY entry")


#: The tables with the one entry the tests begin with.
BEFORE: tuple[Rows, Rows] = ([("alice", 10)], [])


def group_of(steps: Sequence[Step]) -> Group:
    return Group("group-1", sum(isinstance(step, Call) for step in steps), 0)


def commits(answers: Sequence[Answer], rollback: bool) -> bool:
    """The execution layer's rule: commit when every member succeeded."""
    return not rollback and all(answer.status < 400 for answer in answers)


class WsgiLedger(Ledger):
    """A WSGI application (Flask, Django), each call through its whole pipeline."""

    def __init__(self, app: Any, hook: TransactionHook, commit_error: type[BaseException]) -> None:
        self.app = app
        self.hook = hook
        self.commit_error = commit_error

    def request(self, call: Call) -> Answer:
        response = Client(self.app).open(call.path, method=call.method, json=call.body)
        body = json.loads(response.get_data()) if response.is_json else None
        return Answer(response.status_code, body)

    def group(self, *steps: Step, rollback: bool = False) -> list[Answer]:
        transaction = self.hook(group_of(steps))
        answers = []
        try:
            for step in steps:
                if isinstance(step, Call):
                    answers.append(self.request(step))
                else:
                    step()
        except BaseException:
            transaction.rollback()
            raise
        if commits(answers, rollback):
            transaction.commit()
        else:
            transaction.rollback()
        return answers


class AsgiLedger(Ledger):
    """An ASGI application, on an event loop of its own in another thread (as a server's):
    each group is one task there, each call goes through the whole application."""

    def __init__(
        self,
        app: App,
        hook: AsyncTransactionHook,
        commit_error: type[BaseException],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.app = app
        self.hook = hook
        self.commit_error = commit_error
        self.loop = loop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(GUARD)

    def request(self, call: Call) -> Answer:
        return self.run(self.send(call))

    def group(self, *steps: Step, rollback: bool = False) -> list[Answer]:
        return self.run(self._group(steps, rollback))

    async def send(self, call: Call) -> Answer:
        body = b"" if call.body is None else json.dumps(call.body).encode()
        headers = [("content-type", "application/json")] if call.body is not None else []
        try:
            exchange = await asgi_request(
                self.app, call.method, call.path, headers=headers, body=body
            )
        except Exception:  # a view that raised: the execution layer's failed member
            return Answer(500, None)
        return Answer(exchange.status, exchange.json() if exchange.body else None)

    async def _group(self, steps: Sequence[Step], rollback: bool) -> list[Answer]:
        transaction = await self.hook(group_of(steps))
        answers = []
        try:
            for step in steps:
                if isinstance(step, Call):
                    answers.append(await self.send(step))
                else:
                    await asyncio.to_thread(step)
        except BaseException:
            await transaction.rollback()
            raise
        if commits(answers, rollback):
            await transaction.commit()
        else:
            await transaction.rollback()
        return answers


@contextmanager
def event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        asyncio.run_coroutine_threadsafe(loop.shutdown_default_executor(), loop).result(GUARD)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(GUARD)
        loop.close()


# --------------------------------------------------------------------------------------
# The Flask ledger, on plain SQLAlchemy or on Flask-SQLAlchemy
# --------------------------------------------------------------------------------------

SessionScope = Callable[[], AbstractContextManager[Session]]


def ledger_views(scope: SessionScope) -> Blueprint:
    """The ledger's views, each using the session ``scope`` gives."""
    views = Blueprint("ledger", __name__)

    @views.post("/entries")
    def add_entry() -> Any:
        body = request.get_json()
        with scope() as session:
            session.add(Entry(name=body["name"], amount=body["amount"]))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return {"detail": f"entry {body['name']!r} refused"}, 409
        if body.get("crash"):
            raise RuntimeError("the view crashed after its commit")
        return {"name": body["name"]}, 201

    @views.get("/entries")
    def list_entries() -> Any:
        with scope() as session:
            return entries_seen(session)

    @views.post("/checkpoint")
    def checkpoint() -> Any:
        with scope() as session:
            seen = entries_seen(session)
        CHECKPOINTS[request.get_json()["at"]](seen)
        return {"seen": seen}

    @views.post("/holds")
    def add_hold() -> Any:
        entry = request.get_json()["entry"]
        with scope() as session:
            session.add(Hold(entry=entry))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return {"detail": f"no entry {entry!r}"}, 409
        return {"entry": entry}, 201

    @views.get("/session")
    def session_state() -> Any:
        with scope() as session:
            state = clean_session(session)
            session.scalar(select(func.count()).select_from(Entry))  # and it works
        return state

    return views


def entries_seen(session: Session) -> list[list[Any]]:
    """Every entry, as ``session`` sees them."""
    found = session.execute(select(Entry.name, Entry.amount).order_by(Entry.name))
    return [list(row) for row in found]


def clean_session(session: Session) -> dict[str, Any]:
    """What ``GET /session`` answers: whether ``session`` is as a request outside any batch
    finds it (no transaction, no objects, bound to the engine, its join mode its own)."""
    state = {
        "in_transaction": session.in_transaction(),
        "objects": len(session.identity_map) + len(session.new) + len(session.dirty),
        "bound_to": type(session.get_bind()).__name__,
        "join_transaction_mode": session.join_transaction_mode,
    }
    clean = state == {
        "in_transaction": False,
        "objects": 0,
        "bound_to": "Engine",
        "join_transaction_mode": Session().join_transaction_mode,
    }
    return {"clean": clean, "state": state}


def enforce_sqlite_foreign_keys(engine: Engine) -> None:
    """SQLite checks foreign keys only when each connection asks it to."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()


@contextmanager
def sqlalchemy_ledger(database: Database, style: str, *, served: bool = False) -> Iterator[Ledger]:
    """Flask on plain SQLAlchemy: a ``scoped_session`` (thread-local, never removed, so what
    a group leaves in it is what the thread's next request finds), or a ``sessionmaker``
    whose views open and close a session each. ``served`` (on a real server, whose threads
    come and go): the scoped session is removed as each request ends, as Flask's docs say."""
    engine = create_engine(database.url)
    enforce_sqlite_foreign_keys(engine)
    factory = make_sessionmaker(engine)
    app = Flask(__name__)
    sessions = scoped_session(factory)
    if style == "scoped":
        app.register_blueprint(ledger_views(lambda: nullcontext(sessions())))
        hook = sqlalchemy_transactions(sessions)
        if served:
            app.teardown_appcontext(lambda error: sessions.remove())
    else:
        app.register_blueprint(ledger_views(factory))
        hook = sqlalchemy_transactions(factory)
    try:
        yield WsgiLedger(app, hook, IntegrityError)
    finally:
        sessions.remove()  # this thread's (a connection left to the garbage collector warns)
        engine.dispose()


@contextmanager
def flask_sqlalchemy_ledger(database: Database) -> Iterator[Ledger]:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database.url
    db = SQLAlchemy(app)
    app.register_blueprint(ledger_views(lambda: nullcontext(db.session())))
    with app.app_context():
        enforce_sqlite_foreign_keys(db.engine)
    try:
        yield WsgiLedger(app, flask_sqlalchemy_transactions(db), IntegrityError)
    finally:
        with app.app_context():
            db.engine.dispose()


@contextmanager
def make_ledger(kind: str, database: Database, *, served: bool = False) -> Iterator[Ledger]:
    """The ledger of ``kind`` (one of :data:`KINDS`) on ``database``, its tables made;
    ``served``: for a real server (:func:`sqlalchemy_ledger`)."""
    database.execute(SCHEMA)
    if kind.startswith("django"):
        from .frameworks import django_ledger  # noqa: PLC0415 (Django's settings are global)

        context = django_ledger.ledger(database, atomic_requests=kind.endswith("requests"))
    elif kind == "sqlalchemy-asyncio":
        from .frameworks import fastapi_ledger  # noqa: PLC0415

        context = fastapi_ledger.ledger(database)
    elif kind == "flask-sqlalchemy":
        context = flask_sqlalchemy_ledger(database)
    else:
        context = sqlalchemy_ledger(database, kind.removeprefix("sqlalchemy-"), served=served)
    with context as ledger:
        yield ledger
