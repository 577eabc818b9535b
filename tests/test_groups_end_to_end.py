"""Atomic groups end to end: real batch routes on real servers (127.0.0.1), each stack with
its own transaction hook, on real databases (SQLite and PostgreSQL), judged by querying the
database on a connection of its own.

Why: the integrations are tested by driving the hook by hand (tests/test_integrations.py)
and the groups by a recording hook (tests/conformance/test_groups.py); only the whole chain
(a client's changeset, the server's reader, the engine's group in its thread or task, the
hook, the application's own session, its commit) shows that what a user sends is applied
whole or not at all. The stacks and how they are sent batches: tests/served_ledgers.py
(Flask-SQLAlchemy by ``Batching``'s ``changeset()``, Django by the sync httpx transport's
``batch.changeset()`` and, with ``ATOMIC_REQUESTS``, its ``send_all(..., atomic=True)``,
FastAPI by the async one's ``send_all``; plain SQLAlchemy, and the batches ``send_all``
cannot send (two groups in one), by raw bytes).

One server and one database per stack and database, for the module: each test begins from
the same rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flask_batch.client._core.formats import FormatName

from .databases import new_database
from .ledger import (
    ALL_SUCCEED,
    BEFORE,
    CHECKPOINTS,
    ENTRIES_AFTER_ALL_SUCCEED,
    GUARD,
    SECOND_FAILS,
    Answer,
    Rows,
    get,
    post,
    tables,
)
from .served_ledgers import Item, Served, served

STACKS = (
    "flask-sqlalchemy",
    "sqlalchemy-scoped",
    "django",
    "django-atomic-requests",
    "sqlalchemy-asyncio",
)
DATABASES = ("sqlite", "postgresql")
FORMATS: tuple[FormatName, ...] = ("multipart", "json")


@pytest.fixture(
    scope="module",
    params=[(stack, kind) for stack in STACKS for kind in DATABASES],
    ids="-".join,
)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    name, kind = request.param
    cluster = request.getfixturevalue("postgres_cluster") if kind == "postgresql" else None
    directory: Path = tmp_path_factory.mktemp(name)
    with new_database(kind, directory, cluster) as database, served(name, database) as running:
        yield running


@pytest.fixture
def ledger(stack: Served) -> Iterator[Served]:
    """``stack`` with one entry, alice's, and no checkpoints."""
    stack.database.execute(
        "DELETE FROM holds; DELETE FROM entries; INSERT INTO entries VALUES ('alice', 10)"
    )
    CHECKPOINTS.clear()
    yield stack
    CHECKPOINTS.clear()


def statuses(answers: list[Answer]) -> list[int]:
    return [answer.status for answer in answers]


@pytest.mark.parametrize("format", FORMATS)
def test_a_group_whose_second_member_fails_leaves_the_tables_as_they_were(
    ledger: Served, format: FormatName
) -> None:
    answers = ledger.send(SECOND_FAILS, format=format)
    assert statuses(answers) == [424, 409, 424]  # the third did not run
    assert tables(ledger.database) == BEFORE
    assert ledger.entries() == [["alice", 10]]


@pytest.mark.parametrize("format", FORMATS)
def test_a_group_whose_members_all_succeed_is_seen_by_the_next_request(
    ledger: Served, format: FormatName
) -> None:
    answers = ledger.send(ALL_SUCCEED, format=format)
    assert statuses(answers) == [201, 201, 201]
    assert tables(ledger.database) == ([("alice", 10), ("bob", 5), ("carol", 3)], [("bob",)])
    assert ledger.entries() == ENTRIES_AFTER_ALL_SUCCEED
    assert ledger.send(get("/entries"), format=format) == [Answer(200, ENTRIES_AFTER_ALL_SUCCEED)]


def test_what_a_view_commits_in_a_group_is_undone_with_it(ledger: Served) -> None:
    """The first member's view commits (``session.commit()``, Django's ``atomic``): the
    group sees its row, nothing outside it does, and the group's rollback undoes it."""
    looked: list[Any] = []
    CHECKPOINTS["look"] = lambda seen: looked.append((seen, tables(ledger.database)))
    answers = ledger.send(
        (
            post("/entries", name="bob", amount=5),
            post("/checkpoint", at="look"),
            post("/entries", name="carol", amount=-1),
        )
    )
    assert statuses(answers) == [424, 424, 409]
    assert looked == [([["alice", 10], ["bob", 5]], BEFORE)]
    assert tables(ledger.database) == BEFORE


def test_a_group_whose_commit_fails_fails_every_member(ledger: Served) -> None:
    """The hold's foreign key is checked at the commit only: there is no such entry."""
    answers = ledger.send((post("/entries", name="bob", amount=5), post("/holds", entry="nobody")))
    assert statuses(answers) == [500, 500]
    assert tables(ledger.database) == BEFORE


@pytest.mark.parametrize("route", ["/batch", "/batch/parallel"])
def test_a_batch_after_a_rolled_back_group_finds_a_clean_session(
    ledger: Served, route: str
) -> None:
    failed = (post("/entries", name="bob", amount=5), post("/entries", name="bob", amount=1))
    assert statuses(ledger.send(failed, route=route)) == [424, 409]
    assert ledger.database.open_transactions() == 0
    *sessions, entries = ledger.send(get("/session"), get("/session"), get("/entries"), route=route)
    assert all(answer.status == 200 and answer.body["clean"] for answer in sessions), sessions
    assert entries == Answer(200, [["alice", 10]])


# --------------------------------------------------------------------------------------
# Two groups at once, on the parallel route (PostgreSQL: SQLite has one writer at a time)
# --------------------------------------------------------------------------------------

#: Each group writes, meets the other (both have written), looks (and meets it again,
#: once the test has looked from outside). Carol's then fails, so it rolls back.
BOB = (
    post("/entries", name="bob", amount=1),
    post("/checkpoint", at="meet"),
    post("/checkpoint", at="bob"),
)
CAROL = (
    post("/entries", name="carol", amount=1),
    post("/checkpoint", at="meet"),
    post("/checkpoint", at="carol"),
    post("/entries", name="carol-again", amount=-1),
)
BOB_ANSWERS = [201, 200, 200]
CAROL_ANSWERS = [424, 424, 424, 409]


def meeting(ledger: Served, *sends: Callable[[], list[Answer]]) -> tuple[list[Any], dict[str, Any]]:
    """Run ``sends`` in threads of their own while their groups meet this thread twice at a
    barrier: once both groups have written (this thread then looks from outside), once all
    three have looked. What each send answered (or raised), and what each group saw."""
    if ledger.database.kind == "sqlite":
        pytest.skip("SQLite locks the whole database for a writer: its groups write in turn")
    meet = threading.Barrier(3, timeout=GUARD)
    seen: dict[str, Any] = {}

    def look(name: str) -> Callable[[list[list[Any]]], object]:
        def at(entries: list[list[Any]]) -> object:
            seen[name] = entries
            return meet.wait()

        return at

    CHECKPOINTS.update(meet=lambda entries: meet.wait(), bob=look("bob"), carol=look("carol"))
    results: list[Any] = [None] * len(sends)

    def run(index: int) -> None:
        try:
            results[index] = sends[index]()
        except BaseException as error:
            results[index] = error
            meet.abort()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(sends))]
    for thread in threads:
        thread.start()
    try:
        meet.wait()  # both have written
        seen["outside"] = ledger.entries()
        seen["committed"] = tables(ledger.database)
        meet.wait()  # both have looked
    except threading.BrokenBarrierError:
        pass  # a group failed: what it answered says why
    finally:
        for thread in threads:
            thread.join(GUARD)
    return results, seen


SEEN = {
    "bob": [["alice", 10], ["bob", 1]],
    "carol": [["alice", 10], ["carol", 1]],
    "outside": [["alice", 10]],
    "committed": BEFORE,
}
AFTER: tuple[Rows, Rows] = ([("alice", 10), ("bob", 1)], [])


@pytest.mark.parametrize("format", FORMATS)
def test_two_batches_sent_at_once_do_not_see_each_others_groups(
    ledger: Served, format: FormatName
) -> None:
    def sending(group: Item) -> Callable[[], list[Answer]]:
        return lambda: ledger.send(group, format=format, route="/batch/parallel")

    results, seen = meeting(ledger, sending(BOB), sending(CAROL))
    assert [statuses(answers) for answers in results] == [BOB_ANSWERS, CAROL_ANSWERS]
    assert seen == SEEN
    assert tables(ledger.database) == AFTER


@pytest.mark.parametrize("format", FORMATS)
def test_two_groups_of_one_batch_do_not_see_each_other(ledger: Served, format: FormatName) -> None:
    results, seen = meeting(
        ledger, lambda: ledger.send(BOB, CAROL, format=format, route="/batch/parallel")
    )
    assert [statuses(answers) for answers in results] == [BOB_ANSWERS + CAROL_ANSWERS]
    assert seen == SEEN
    assert tables(ledger.database) == AFTER
