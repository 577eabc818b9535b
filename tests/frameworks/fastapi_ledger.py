"""The ledger API of tests/ledger.py in FastAPI, on SQLAlchemy's asyncio sessions (one per
request, from a dependency, as FastAPI's users write it)."""

# No ``from __future__ import annotations``: FastAPI reads the annotations at run time.
import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from flask_batch.integrations.sqlalchemy_asyncio import async_sqlalchemy_transactions

from ..databases import Database
from ..ledger import (
    CHECKPOINTS,
    GUARD,
    AsgiLedger,
    Entry,
    Hold,
    Ledger,
    clean_session,
    enforce_sqlite_foreign_keys,
    entries_seen,
    event_loop,
)


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


Db = Annotated[AsyncSession, Depends(_session)]


def ledger_api(sessions: async_sessionmaker[AsyncSession]) -> FastAPI:
    app = FastAPI()
    app.state.sessions = sessions

    @app.post("/entries")
    async def add_entry(body: dict[str, Any], session: Db) -> JSONResponse:
        session.add(Entry(name=body["name"], amount=body["amount"]))
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            return JSONResponse({"detail": f"entry {body['name']!r} refused"}, 409)
        if body.get("crash"):
            raise RuntimeError("the view crashed after its commit")
        return JSONResponse({"name": body["name"]}, 201)

    @app.get("/entries")
    async def list_entries(session: Db) -> list[list[Any]]:
        return await session.run_sync(entries_seen)

    @app.post("/checkpoint")
    async def checkpoint(body: dict[str, Any], session: Db) -> dict[str, Any]:
        seen = await session.run_sync(entries_seen)
        await asyncio.to_thread(CHECKPOINTS[body["at"]], seen)  # it may wait: not on the loop
        return {"seen": seen}

    @app.post("/holds")
    async def add_hold(body: dict[str, Any], session: Db) -> JSONResponse:
        session.add(Hold(entry=body["entry"]))
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            return JSONResponse({"detail": f"no entry {body['entry']!r}"}, 409)
        return JSONResponse({"entry": body["entry"]}, 201)

    @app.get("/session")
    async def session_state(session: Db) -> dict[str, Any]:
        state = clean_session(session.sync_session)
        await session.scalar(select(func.count()).select_from(Entry))  # and it works
        return state

    return app


@contextmanager
def ledger(database: Database) -> Iterator[Ledger]:
    with event_loop() as loop:
        engine = create_async_engine(database.async_url)
        enforce_sqlite_foreign_keys(engine.sync_engine)
        sessions = async_sessionmaker(engine)
        hook = async_sqlalchemy_transactions(sessions)
        try:
            yield AsgiLedger(ledger_api(sessions), hook, IntegrityError, loop)
        finally:
            asyncio.run_coroutine_threadsafe(engine.dispose(), loop).result(GUARD)
