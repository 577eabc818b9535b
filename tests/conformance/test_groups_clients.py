"""The clients' atomic groups against every front end (docs/clients/atomic-groups.md).

Why: the client's half of a group is only right if a real server, running it under its
transaction hook, applies it whole or not at all and each member's response says what the
server said for it: nested answers, OData's one part for a failed changeset, flat answers,
JSON's ``424``s, a failed commit, a ``413`` naming ``max_group_size``. The routes and the
ledger are the conformance suite's (:mod:`.api`, :mod:`.ledger`); the ledger's ``committed``
is what a query after the batch would see.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import requests

from flask_batch.client import BatchFailed, Batching
from flask_batch.client._core.formats import FormatName
from flask_batch.client.httpx import AsyncBatchTransport, BatchTransport

from .conftest import Server
from .ledger import NO_COMMIT

FORMATS: list[FormatName] = ["multipart", "json"]


def session(server: Server, route: str = "/batch/tx", **options: Any) -> Batching:
    return Batching(server.base + route, timeout=10, **options)


def set_key(s: Batching, server: Server, key: str, value: str = "1") -> requests.Response:
    return s.put(f"{server.base}/set", params={"key": key, "value": value})


@pytest.mark.parametrize("format", FORMATS)
def test_a_changeset_that_succeeds_is_applied_whole(server: Server, format: str) -> None:
    with session(server, format=format) as s:
        with s.changeset() as pair:
            a, b = set_key(s, server, "a"), set_key(s, server, "b")
        after = s.get(f"{server.base}/ok", depends_on=[pair])
    assert [r.status_code for r in (a, b, after)] == [200, 200, 200]
    assert (a.text, after.text) == ("set", "ok")
    assert server.api.ledger.committed == {"a": "1", "b": "1"}


@pytest.mark.parametrize(
    ("format", "route", "first"),
    [
        # OData's one part for the failed changeset (flat routes too: SharePoint's client
        # pairs answers by position): the client writes the other member's 424.
        ("multipart", "/batch/tx", "not applied: its atomic group failed, at PUT /status?code=409"),
        ("multipart", "/batch/tx-flat", "not applied: its atomic group failed, at PUT /status"),
        # JSON answers every member: the server's own 424 ("Rolled back").
        ("json", "/batch/tx", "Rolled back"),
    ],
)
def test_a_changeset_that_fails_is_rolled_back_and_each_member_says_so(
    server: Server, format: str, route: str, first: str
) -> None:
    with session(server, route, format=format) as s:
        s.put(f"{server.base}/set", params={"key": "kept"})  # outside the group: applied
        with s.changeset() as pair:
            written = set_key(s, server, "a")
            refused = s.put(f"{server.base}/status", params={"code": "409"})
        after = s.get(f"{server.base}/ok", depends_on=[pair])
    assert (refused.status_code, refused.text) == (409, "status")
    assert written.status_code == 424
    assert first in written.text
    assert after.status_code == 424
    assert server.api.ledger.committed == {"kept": "1"}


def test_a_failed_commit_fails_every_member_as_the_server_answered(server: Server) -> None:
    """A transaction that could not commit: one 500 part naming no member (multipart), so
    each member gets it."""
    with session(server) as s, s.changeset():
        first = set_key(s, server, "a")
        failing = set_key(s, server, NO_COMMIT)
    assert [r.status_code for r in (first, failing)] == [500, 500]
    assert first.json()["title"] == "Transaction failed"
    assert server.api.ledger.committed == {}


def test_a_group_over_the_endpoints_max_group_size_is_refused_and_the_rest_goes(
    server: Server,
) -> None:
    """/batch/tx-small takes 2 members in a group, as its description says: the group fails
    unsent, and the other request goes. (A 413 naming it: tests/test_client_groups.py.)"""
    with session(server, "/batch/tx-small") as s:
        alone = set_key(s, server, "alone")
        with s.changeset():
            for key in "abc":
                set_key(s, server, key)
        with pytest.raises(BatchFailed, match="at most 2 requests in a group") as info:
            s.send_batch()
    assert alone.status_code == 200
    assert len(info.value.requests) == 3
    assert server.api.ledger.committed == {"alone": "1"}
    assert s.limits.bound("max_group_size") == (2, True)


def test_groups_run_in_order_answer_each_members_own_status(server: Server) -> None:
    """Without atomicity (non_atomic_groups): the write before the failure stays applied,
    and its answer says so."""
    with session(server, "/batch/in-order") as s, s.changeset():
        written = set_key(s, server, "a")
        refused = s.put(f"{server.base}/status", params={"code": "409"})
    assert [written.status_code, refused.status_code] == [200, 409]
    assert server.api.ledger.committed == {"a": "1"}


@pytest.mark.parametrize("format", FORMATS)
def test_the_httpx_transports_send_groups(server: Server, format: FormatName) -> None:
    url = server.base + "/batch/tx"
    sync = BatchTransport(url, format=format)
    with (
        httpx.Client(transport=sync, base_url=server.base) as client,
        sync.batch(client) as scope,
        scope.changeset(),
    ):
        a = scope.put("/set", params={"key": "a"})
        b = scope.put("/status", params={"code": "409"})
    assert [a.status_code, b.status_code] == [424, 409]
    assert server.api.ledger.committed == {}

    async def send() -> list[httpx.Response]:
        transport = AsyncBatchTransport(url, format=format)
        try:
            return await transport.send_all(
                [
                    httpx.Request("PUT", f"{server.base}/set?key=c"),
                    httpx.Request("PUT", f"{server.base}/set?key=d"),
                ],
                atomic=True,
            )
        finally:
            await transport.aclose()

    assert [r.status_code for r in asyncio.run(send())] == [200, 200]
    assert server.api.ledger.committed == {"c": "1", "d": "1"}


@pytest.mark.parametrize("format", FORMATS)
def test_the_odata_protocols_example_batch_through_the_client(
    server: Server, format: FormatName
) -> None:
    """OData 4.01 Part 1, 11.7.7: a query, a changeset of an insert and an update, a second
    query that fails; the client's responses are the specification's answer."""
    service = f"{server.base}/service"
    with session(server, format=format) as s:
        alfki = s.get(f"{service}/Customers('ALFKI')")
        with s.changeset():
            created = s.post(f"{service}/Customers", json={"CustomerID": "POIUY"})
            updated = s.patch(f"{service}/Customers('ALFKI')", json={"City": "Berlin"})
        products = s.get(f"{service}/Products")
    assert [r.status_code for r in (alfki, created, updated, products)] == [200, 201, 204, 404]
    assert created.headers["Location"] == "http://host/service.svc/Customer('POIUY')"
    assert created.json() == {"CustomerID": "POIUY"}
    assert alfki.json() == {"CustomerID": "ALFKI"}


def test_a_route_that_takes_no_group_fails_only_the_group(server: Server) -> None:
    """Asked first (its description says "groups": "refused"), the client sends the rest of
    the queue and fails only the group, rather than have the whole batch refused (422)."""
    with session(server, "/batch") as s:
        alone = s.get(f"{server.base}/ok")
        with s.changeset():
            member = set_key(s, server, "a")
        with pytest.raises(BatchFailed, match="takes no atomic groups") as info:
            s.send_batch()
    assert alone.status_code == 200
    assert info.value.requests == [member.request]
    assert server.api.ledger.committed == {}
