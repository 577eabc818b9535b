"""The clients take a batch answered ``202 Accepted`` as they take one answered ``200 OK``.

Why: OData 1.0 to 3.0 services and Azure's batch endpoints answer a batch ``202``, and the
server does too for a request that says it speaks OData 1.0 to 3.0, or on a route set to it
(``answer_status``); a client that took only ``200`` for a batch answer would fail every
request of such a batch. Any other status is still the batch failing (``BatchFailed``).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from flask_batch.client import BatchFailed, Batching
from flask_batch.client.httpx import AsyncBatchTransport, BatchTransport

from .fake_batch import BASE, BATCH_URL, FakeEndpoint, RequestsAdapter


@pytest.fixture
def endpoint() -> FakeEndpoint:
    return FakeEndpoint(answer_status=202)


def test_batching_fills_the_answers_of_a_202_batch(endpoint: FakeEndpoint) -> None:
    with Batching(BATCH_URL, retries=0) as s:
        s.mount(BASE, RequestsAdapter(endpoint))
        first = s.get(f"{BASE}/a")
        second = s.post(f"{BASE}/b", json={})
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json() == {"method": "GET", "path": "/a"}


def test_the_httpx_transports_fill_the_answers_of_a_202_batch(endpoint: FakeEndpoint) -> None:
    transport = BatchTransport(BATCH_URL, transport=httpx.MockTransport(endpoint.httpx_handler))
    with httpx.Client(transport=transport) as client, transport.batch(client) as batch:
        answered = batch.get(f"{BASE}/a")
    assert answered.status_code == 200

    async def send() -> httpx.Response:
        handler = httpx.MockTransport(endpoint.httpx_handler)
        async with httpx.AsyncClient(
            transport=AsyncBatchTransport(BATCH_URL, transport=handler)
        ) as client:
            return await client.get(f"{BASE}/c")

    assert asyncio.run(send()).json() == {"method": "GET", "path": "/c"}


def test_another_2xx_is_not_a_batch_answer(endpoint: FakeEndpoint) -> None:
    endpoint.answer_status = 201
    with Batching(BATCH_URL, retries=0) as s:
        s.mount(BASE, RequestsAdapter(endpoint))
        s.get(f"{BASE}/a")
        with pytest.raises(BatchFailed, match="201"):
            s.send_batch()
