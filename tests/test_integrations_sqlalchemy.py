"""What the SQLAlchemy integrations (sync and asyncio) refuse, and how their transactions
end; what every integration does with a group is in tests/test_integrations.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from flask_batch.integrations.sqlalchemy import GroupBindError, sqlalchemy_transactions
from flask_batch.integrations.sqlalchemy_asyncio import async_sqlalchemy_transactions
from flask_batch.transactions import Group

from .databases import Database
from .ledger import SCHEMA, Entry, Hold, WsgiLedger, enforce_sqlite_foreign_keys, ledger_views, post

GROUP = Group("changeset-1", 2, 0)


@pytest.fixture
def engine(database: Database) -> Iterator[Engine]:
    database.execute(SCHEMA)
    made = create_engine(database.url)
    enforce_sqlite_foreign_keys(made)
    yield made
    made.dispose()


def raised(caplog: pytest.LogCaptureFixture) -> list[BaseException]:
    """What the views raised, as Flask logged it."""
    return [r.exc_info[1] for r in caplog.records if r.exc_info and r.exc_info[1] is not None]


def test_a_group_covers_one_database(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = Database("sqlite", str(tmp_path / "first.sqlite3"))
    second = Database("sqlite", str(tmp_path / "second.sqlite3"))
    for database in (first, second):
        database.execute(SCHEMA)
    engines = {Entry: create_engine(first.url), Hold: create_engine(second.url)}
    factory = sessionmaker(binds=engines)
    app = Flask(__name__)
    app.register_blueprint(ledger_views(factory))
    ledger = WsgiLedger(app, sqlalchemy_transactions(factory), IntegrityError)

    answers = ledger.group(post("/entries", name="bob", amount=1), post("/holds", entry="bob"))

    assert [answer.status for answer in answers] == [201, 500]
    [error] = raised(caplog)
    assert isinstance(error, GroupBindError)
    assert "a group's transaction covers one database" in str(error)
    assert first.rows("SELECT * FROM entries") == second.rows("SELECT * FROM holds") == []
    for engine in engines.values():
        engine.dispose()


def test_a_session_made_before_the_hook_is_refused_in_a_group(
    engine: Engine, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = scoped_session(sessionmaker(engine))
    sessions()  # this thread's session, of the factory's class as it was
    hook = sqlalchemy_transactions(sessions)
    app = Flask(__name__)
    app.register_blueprint(ledger_views(lambda: nullcontext(sessions())))
    ledger = WsgiLedger(app, hook, IntegrityError)

    answers = ledger.group(post("/entries", name="bob", amount=1))

    assert answers[0].status == 500
    [error] = raised(caplog)
    assert isinstance(error, GroupBindError)
    assert "made before its factory was given to the transaction hook" in str(error)
    assert database.rows("SELECT * FROM entries") == []
    sessions.remove()
    # A session made now joins the group.
    assert ledger.group(post("/entries", name="bob", amount=1))[0].status == 201
    sessions.remove()
    assert database.rows("SELECT * FROM entries") == [("bob", 1)]


def test_a_session_bound_to_a_connection_of_its_own_is_refused(engine: Engine) -> None:
    factory = sessionmaker(engine)
    transaction = sqlalchemy_transactions(factory)(GROUP)
    with (
        engine.connect() as connection,
        factory(bind=connection) as session,
        pytest.raises(GroupBindError, match="a connection of its own"),
    ):
        session.execute(text("SELECT 1"))
    transaction.rollback()


def test_one_factory_given_to_two_hooks_gets_one_session_class(
    engine: Engine, database: Database
) -> None:
    factory = sessionmaker(engine)
    first = sqlalchemy_transactions(factory)
    joining = factory.class_
    second = sqlalchemy_transactions(scoped_session(factory))
    assert factory.class_ is joining
    for hook, name in ((first, "bob"), (second, "carol")):
        transaction = hook(GROUP)
        with factory() as session:
            session.add(Entry(name=name, amount=1))
            session.commit()
        transaction.commit()
    assert database.rows("SELECT name FROM entries ORDER BY name") == [("bob",), ("carol",)]


def test_a_transaction_ends_once(engine: Engine, database: Database) -> None:
    factory = sessionmaker(engine)
    hook = sqlalchemy_transactions(factory)
    transaction = hook(GROUP)
    with factory() as session:
        session.add(Hold(entry="nobody"))  # its foreign key fails the commit
        session.commit()
    with pytest.raises(IntegrityError):
        transaction.commit()
    transaction.rollback()  # after a commit that raised: nothing to do
    with pytest.raises(RuntimeError, match="has ended already"):
        transaction.commit()
    assert database.open_transactions() == 0


def test_a_second_group_in_the_same_thread_is_refused(engine: Engine, database: Database) -> None:
    factory = sessionmaker(engine)
    hook = sqlalchemy_transactions(factory)
    transaction = hook(GROUP)
    with pytest.raises(RuntimeError, match="while another group is open in this thread"):
        hook(Group("changeset-2", 1, 2))
    with factory() as session:
        session.add(Entry(name="bob", amount=1))
        session.commit()
    transaction.commit()
    assert database.rows("SELECT name FROM entries") == [("bob",)]


def test_an_async_factory_without_an_engine_needs_one() -> None:
    with pytest.raises(TypeError, match="name the group's engine with engine="):
        async_sqlalchemy_transactions(async_sessionmaker())


def test_an_async_transaction_ends_once(database: Database) -> None:
    database.execute(SCHEMA)

    async def run() -> None:
        engine = create_async_engine(database.async_url)
        factory = async_sessionmaker(binds={Entry: engine})  # bound by mapper: engine= says
        hook = async_sqlalchemy_transactions(factory, engine=engine)
        transaction = await hook(GROUP)
        async with factory() as session:
            session.add(Entry(name="bob", amount=1))
            await session.commit()
        await transaction.commit()
        await transaction.rollback()  # nothing to do
        with pytest.raises(RuntimeError, match="has ended already"):
            await transaction.commit()
        await engine.dispose()

    asyncio.run(run())
    assert database.rows("SELECT name FROM entries") == [("bob",)]


def test_the_session_class_is_a_subclass_of_the_factory_own(engine: Engine) -> None:
    factory = sessionmaker(engine)
    base = factory.class_
    sqlalchemy_transactions(factory)
    assert issubclass(factory.class_, base)
    assert factory.class_.__name__ == base.__name__ == Session.__name__
    assert isinstance(factory(), base)
