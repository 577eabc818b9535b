"""Atomic groups through the clients' front ends: ``Batching.changeset()``, a sync httpx
batch scope's ``changeset()``, and ``send_all(..., atomic=True)`` on both httpx transports.

Why: the front ends decide what a user's block becomes: which requests are members (only
those queued inside the block, never a half-built group when it raises), what they may
depend on, the ids a reference (``$<id>``) names and the bytes it goes as, and what each
member's response is filled with when its group fails. Against the scripted endpoint
(``tests/fake_batch.py``), which reads the batches with the server's own reader.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from flask_batch.client import Batching, BatchNotSent, Changeset
from flask_batch.client.httpx import CONTENT_ID, AsyncBatchTransport, BatchTransport
from tests.fake_batch import BASE, BATCH_URL, FakeEndpoint, RequestsAdapter


def session(endpoint: FakeEndpoint, **options: object) -> Batching:
    s = Batching(BATCH_URL, sleep=lambda seconds: None, **options)  # type: ignore[arg-type]
    s.mount(BASE, RequestsAdapter(endpoint))
    return s


def sync_transport(endpoint: FakeEndpoint, **options: object) -> BatchTransport:
    return BatchTransport(
        BATCH_URL,
        transport=httpx.MockTransport(endpoint.httpx_handler),
        sleep=lambda seconds: None,
        **options,  # type: ignore[arg-type]
    )


# -- Batching -----------------------------------------------------------------------------------


@pytest.mark.parametrize("format", ["multipart", "json"])
def test_the_requests_of_a_changeset_block_are_one_group(format: str) -> None:
    endpoint = FakeEndpoint()
    with session(endpoint, format=format) as s:
        before = s.get(f"{BASE}/before")
        with s.changeset() as transfer:
            debit = s.post(f"{BASE}/accounts/a/debits", json={"amount": 5})
            credit = s.post(f"{BASE}/accounts/b/credits", json={"amount": 5})
        after = s.get(f"{BASE}/accounts", depends_on=[transfer])
    (parts,) = endpoint.parts
    assert [p.group is not None for p in parts] == [False, True, True, False]
    assert parts[1].group is parts[2].group
    assert parts[3].depends_on == (parts[1].group.name,)  # type: ignore[union-attr]
    assert [r.status_code for r in (before, debit, credit, after)] == [200] * 4
    assert isinstance(transfer, Changeset)
    assert transfer.responses == [debit, credit]  # type: ignore[comparison-overlap]


def test_a_failed_group_fills_each_member_with_what_the_server_said() -> None:
    endpoint = FakeEndpoint()
    endpoint.fail("/accounts/b/credits", 409)
    with session(endpoint) as s:
        with s.changeset() as transfer:
            debit = s.post(f"{BASE}/accounts/a/debits", json={"amount": 5})
            credit = s.post(f"{BASE}/accounts/b/credits", json={"amount": 5})
        after = s.get(f"{BASE}/accounts", depends_on=[transfer])
    assert (credit.status_code, credit.text) == (409, "no")
    assert debit.status_code == 424
    assert "at POST /accounts/b/credits (409 Scripted)" in debit.json()["detail"]
    assert after.status_code == 424  # it depended on the group, which failed


def test_a_changeset_block_that_raises_takes_its_requests_back() -> None:
    endpoint = FakeEndpoint()
    with session(endpoint) as s:
        kept = s.put(f"{BASE}/kept", json={})
        dropped = []
        with pytest.raises(KeyError), s.changeset():  # noqa: PT012 (the block is the point)
            dropped.append(s.put(f"{BASE}/dropped", json={}))
            raise KeyError("no")
        later = s.put(f"{BASE}/later", json={})
    assert endpoint.batches == [["PUT /kept", "PUT /later"]]
    assert kept.status_code == later.status_code == 200
    with pytest.raises(BatchNotSent, match="the changeset was not sent: its `with` block raised"):
        dropped[0].status_code  # noqa: B018


def test_what_a_changeset_cannot_be_is_refused_when_queued() -> None:
    endpoint = FakeEndpoint()
    with session(endpoint) as s, s.changeset() as group:
        with pytest.raises(ValueError, match="cannot contain another changeset"):
            s.changeset().__enter__()
        with pytest.raises(ValueError, match="a GET request cannot be in a changeset"):
            s.get(f"{BASE}/read")
        with pytest.raises(ValueError, match="cannot depend on the changeset it is in"):
            s.request("PUT", f"{BASE}/a", json={}, depends_on=[group])
        with pytest.raises(ValueError, match="only requests to the batch endpoint's origin"):
            s.put("http://elsewhere.test/a", json={})
        with pytest.raises(RuntimeError, match="cannot be sent inside a changeset block"):
            s.send_batch()
        s.put(f"{BASE}/a", json={})
    assert endpoint.batches == [["PUT /a"]]


def test_a_reference_is_sent_as_written_and_names_a_requests_own_id() -> None:
    endpoint = FakeEndpoint()
    with session(endpoint) as s, s.changeset():
        s.request("POST", f"{BASE}/customers", json={"name": "Ada"}, content_id="ada")
        order = s.post("$ada/orders?x=1", json={"item": "tea"}, params={"y": "2"})
    (parts,) = endpoint.parts
    assert (parts[0].target, parts[0].content_id) == ("/customers", "ada")
    assert (parts[1].method, parts[1].target) == ("POST", "$ada/orders?x=1&y=2")
    assert order.url == f"{BASE}/$ada/orders?x=1&y=2"  # the URL it names, from the batch URL


def test_a_reference_goes_on_the_wire_byte_for_byte() -> None:
    seen: list[bytes] = []
    endpoint = FakeEndpoint()

    def record(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":  # the batch (a GET asks the endpoint what it takes)
            seen.append(request.read())
        return endpoint.httpx_handler(request)

    transport = BatchTransport(BATCH_URL, transport=httpx.MockTransport(record))
    with transport.batch() as scope, scope.changeset():
        scope.post(f"{BASE}/customers", json={}, content_id="1")
        scope.post("$1/items", content=b"{}", headers={"Content-Type": "application/json"})
    (body,) = seen
    assert b"\r\nContent-ID: 1\r\n\r\nPOST /customers HTTP/1.1\r\n" in body
    # As written, and no Host (a part takes the batch's): the server resolves it.
    assert (
        b"\r\n\r\nPOST $1/items HTTP/1.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}\r\n--changeset_"
    ) in body


def test_ids_are_checked_when_queued() -> None:
    with session(FakeEndpoint()) as s:
        s.request("PUT", f"{BASE}/a", json={}, content_id="1")
        with pytest.raises(ValueError, match="content_id '1' is already the id of a request"):
            s.request("PUT", f"{BASE}/b", json={}, content_id="1")
        with pytest.raises(ValueError, match="content_id must be letters, digits"):
            s.request("PUT", f"{BASE}/b", json={}, content_id="a b")


def test_a_group_is_retried_whole_through_the_session() -> None:
    endpoint = FakeEndpoint()
    endpoint.fail("/b", 503)
    with session(endpoint) as s, s.changeset():
        a, b = s.put(f"{BASE}/a", json={}), s.put(f"{BASE}/b", json={})
    assert endpoint.ran == {"PUT /a": 2, "PUT /b": 2}
    assert [(r.status_code, r.attempts) for r in (a, b)] == [(200, 2), (200, 2)]  # type: ignore[attr-defined]


# -- httpx --------------------------------------------------------------------------------------


def test_a_sync_scopes_changeset_is_one_group_and_may_be_depended_on() -> None:
    endpoint = FakeEndpoint()
    endpoint.fail("/b", 409)
    with httpx.Client(base_url=BASE) as client, sync_transport(endpoint).batch(client) as scope:
        with scope.changeset() as pair:
            a = scope.put("/a", json={})
            b = scope.put("/b", json={})
        c = scope.get("/c", depends_on=[pair])
        with pytest.raises(ValueError, match="cannot be in a changeset"), scope.changeset():
            scope.put("http://elsewhere.test/x", json={})
    (parts,) = endpoint.parts
    assert parts[0].group is parts[1].group is not None
    assert [r.status_code for r in (a, b, c)] == [424, 409, 424]


@pytest.mark.parametrize("format", ["multipart", "json"])
def test_send_all_atomic_makes_its_requests_one_group(format: str) -> None:
    endpoint = FakeEndpoint()
    transport = sync_transport(endpoint, format=format)
    responses = transport.send_all(
        [
            httpx.Request("POST", f"{BASE}/customers", json={}, extensions={CONTENT_ID: "c"}),
            httpx.Request("POST", "$c/orders", json={}),
        ],
        atomic=True,
    )
    (parts,) = endpoint.parts
    assert [(p.target, p.content_id) for p in parts] == [
        ("/customers", "c"),
        ("$c/orders", parts[1].content_id),
    ]
    assert parts[0].group is parts[1].group is not None
    assert [r.status_code for r in responses] == [200, 200]
    with pytest.raises(ValueError, match="cannot be in an atomic group: it is not batched"):
        transport.send_all([httpx.Request("PUT", "http://elsewhere.test/a")], atomic=True)


def test_async_send_all_atomic_and_what_the_transparent_path_refuses() -> None:
    endpoint = FakeEndpoint()
    endpoint.fail("/b", 409)
    transport = AsyncBatchTransport(
        BATCH_URL, transport=httpx.MockTransport(endpoint.httpx_handler)
    )

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(ValueError, match="use send_all"):
                await client.put(f"{BASE}/x", extensions={CONTENT_ID: "x"})
            return await transport.send_all(
                [httpx.Request("PUT", f"{BASE}/a"), httpx.Request("PUT", f"{BASE}/b")],
                atomic=True,
            )

    a, b = asyncio.run(main())
    assert [a.status_code, b.status_code] == [424, 409]
    (parts,) = endpoint.parts
    assert parts[0].group is parts[1].group is not None
