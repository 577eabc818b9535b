"""What the Django integration adds to what every integration does with a group
(tests/test_integrations.py): a member that asks for a rollback, ``on_commit`` callbacks,
and how its transaction ends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flask_batch.integrations.django import GroupRolledBack
from flask_batch.transactions import Group

from .databases import Database
from .frameworks import django_ledger
from .ledger import Ledger, WsgiLedger, get, make_ledger, post


@pytest.fixture(params=["django", "django-atomic-requests"])
def ledger(request: pytest.FixtureRequest, database: Database) -> Iterator[Ledger]:
    with make_ledger(request.param, database) as made:
        yield made


def names(database: Database) -> list[Any]:
    return [name for (name,) in database.rows("SELECT name FROM entries ORDER BY name")]


def test_a_member_that_quietly_asks_for_a_rollback_is_never_silently_undone(
    ledger: Ledger, database: Database, request: pytest.FixtureRequest
) -> None:
    steps = (post("/entries", name="bob", amount=1), post("/rollback-quietly"))
    if request.node.callspec.params["ledger"] == "django-atomic-requests":
        # Its view's own atomic block is what rolls back: the group commits the rest.
        assert [answer.status for answer in ledger.group(*steps)] == [201, 200]
        assert names(database) == ["bob"]
        return
    # Its mark is on the group's block: committing would roll back, so commit says so.
    with pytest.raises(GroupRolledBack, match="marked for rollback by one of its members"):
        ledger.group(*steps)
    assert names(database) == []
    assert ledger.request(get("/session")).body["clean"]


def test_on_commit_callbacks_wait_for_the_group(ledger: Ledger, database: Database) -> None:
    during: list[list[str]] = []
    ledger.group(
        post("/entries", name="bob", amount=1),
        lambda: during.append(list(django_ledger.COMMITTED)),
        post("/entries", name="carol", amount=1),
    )
    assert during == [[]]
    assert django_ledger.COMMITTED == ["bob", "carol"]
    ledger.group(post("/entries", name="dave", amount=1), rollback=True)
    assert django_ledger.COMMITTED == ["bob", "carol"]
    assert names(database) == ["bob", "carol"]


def test_a_transaction_ends_once(ledger: Ledger, database: Database) -> None:
    assert isinstance(ledger, WsgiLedger)
    transaction = ledger.hook(Group("changeset-1", 1, 0))
    assert ledger.request(post("/holds", entry="nobody")).status == 201  # checked at commit
    with pytest.raises(ledger.commit_error):
        transaction.commit()
    transaction.rollback()  # after a commit that raised: nothing to do
    with pytest.raises(RuntimeError, match="has ended already"):
        transaction.commit()
    assert database.rows("SELECT * FROM holds") == []
    assert database.open_transactions() == 0
    assert ledger.request(get("/session")).body["clean"]
