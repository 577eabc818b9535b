"""Every integration of flask_batch.integrations, on SQLite and on PostgreSQL, each group
driven as the execution layer drives one (tests/ledger.py): the hook begins on this thread
(or task), every member goes through the real application, then the group commits or rolls
back. What the groups did is judged by querying the database on a connection of its own.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from .databases import Database
from .ledger import (
    ALL_SUCCEED,
    BEFORE,
    ENTRIES_AFTER_ALL_SUCCEED,
    GUARD,
    KINDS,
    SECOND_FAILS,
    Answer,
    AsgiLedger,
    Ledger,
    get,
    make_ledger,
    post,
    tables,
)


@pytest.fixture(params=KINDS)
def ledger(request: pytest.FixtureRequest, database: Database) -> Iterator[Ledger]:
    with make_ledger(request.param, database) as made:
        assert made.request(post("/entries", name="alice", amount=10)).status == 201
        yield made


def test_a_group_whose_second_member_fails_leaves_the_tables_as_they_were(
    ledger: Ledger, database: Database
) -> None:
    answers = ledger.group(*SECOND_FAILS)
    assert [answer.status for answer in answers] == [201, 409, 201]
    assert tables(database) == BEFORE
    assert ledger.entries() == [["alice", 10]]


def test_a_member_that_raises_after_its_commit_rolls_back_the_group(
    ledger: Ledger, database: Database
) -> None:
    answers = ledger.group(
        post("/entries", name="bob", amount=5),
        post("/entries", name="carol", amount=3, crash=True),
        post("/entries", name="dave", amount=7),
    )
    assert [answer.status for answer in answers] == [201, 500, 201]
    assert tables(database) == BEFORE


def test_a_group_whose_members_all_succeed_is_seen_by_the_next_request(
    ledger: Ledger, database: Database
) -> None:
    answers = ledger.group(*ALL_SUCCEED)
    assert [answer.status for answer in answers] == [201, 201, 201]
    assert tables(database) == ([("alice", 10), ("bob", 5), ("carol", 3)], [("bob",)])
    assert ledger.entries() == ENTRIES_AFTER_ALL_SUCCEED


def test_what_a_view_commits_stays_in_the_group_until_it_ends(
    ledger: Ledger, database: Database
) -> None:
    seen_outside: list[Any] = []
    answers = ledger.group(
        post("/entries", name="bob", amount=5),  # the view commits
        lambda: seen_outside.append(tables(database)),
        get("/entries"),
        rollback=True,  # as when the deadline passes inside the group
    )
    assert seen_outside == [BEFORE]
    assert answers[1].body == [["alice", 10], ["bob", 5]]  # the group sees its own work
    assert tables(database) == BEFORE


def test_a_member_run_in_a_context_of_its_own_joins_its_wsgi_group(
    ledger: Ledger, database: Database
) -> None:
    """On a WSGI group's thread, a member joins its group even in an empty context (each
    part runs in one)."""
    if isinstance(ledger, AsgiLedger):
        pytest.skip("an ASGI group's members run in its task: in its context")
    alone: list[Answer] = []

    def member_alone() -> None:
        carol = post("/entries", name="carol", amount=3)
        alone.append(contextvars.Context().run(ledger.request, carol))

    ledger.group(post("/entries", name="bob", amount=5), member_alone, rollback=True)
    assert alone[0].status == 201
    assert tables(database) == BEFORE


@pytest.mark.parametrize("amount", [5, -1], ids=["committed", "rolled back"])
def test_the_next_request_finds_a_clean_session(
    ledger: Ledger, database: Database, amount: int
) -> None:
    ledger.group(post("/entries", name="bob", amount=amount), get("/entries"))
    assert database.open_transactions() == 0
    state = ledger.request(get("/session")).body
    assert state["clean"], state


def test_a_commit_that_fails_is_raised_and_nothing_is_kept(
    ledger: Ledger, database: Database
) -> None:
    with pytest.raises(ledger.commit_error):
        # The hold's foreign key is checked at the commit only: no such entry.
        ledger.group(post("/entries", name="bob", amount=5), post("/holds", entry="nobody"))
    assert tables(database) == BEFORE
    assert database.open_transactions() == 0
    assert ledger.request(get("/session")).body["clean"]


def test_a_group_that_touches_no_table_ends_cleanly(ledger: Ledger, database: Database) -> None:
    assert ledger.group() == []
    assert ledger.group(rollback=True) == []
    assert database.open_transactions() == 0


def test_concurrent_groups_do_not_see_each_others_rows(ledger: Ledger, database: Database) -> None:
    if database.kind == "sqlite":
        pytest.skip("SQLite locks the whole database for a writer: its groups write in turn")
    barrier = threading.Barrier(3, timeout=GUARD)
    seen: dict[str, Any] = {}

    def run(name: str, rollback: bool) -> None:
        try:
            answers = ledger.group(
                post("/entries", name=name, amount=1),
                barrier.wait,  # both groups have written
                get("/entries"),
                barrier.wait,  # both have looked, and so has a request outside them
                rollback=rollback,
            )
            seen[name] = answers[1].body
        except BaseException as error:
            barrier.abort()
            seen[name] = error

    threads = [
        threading.Thread(target=run, args=("bob", False)),
        threading.Thread(target=run, args=("carol", True)),
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    seen["outside"] = ledger.entries()
    seen["committed"] = tables(database)
    barrier.wait()
    for thread in threads:
        thread.join(GUARD)
    assert seen == {
        "bob": [["alice", 10], ["bob", 1]],
        "carol": [["alice", 10], ["carol", 1]],
        "outside": [["alice", 10]],
        "committed": BEFORE,
    }
    assert tables(database) == ([("alice", 10), ("bob", 1)], [])
