"""The clients and an OData batch that stops at its first error.

Why: an OData multipart batch (one that carries an OData version header) stops at its first
failed request unless it prefers ``odata.continue-on-error``, and its answer ends there: the
requests after the failure get no answer at all (docs/execution.md, "Error policy"). Those
requests never ran. The clients must say so, and why, instead of "the batch answer has no
part"; and when the failure that stopped the batch is retried, they must go again with it,
whatever their method, as a part answered ``424`` for a dependency being retried does.
Against a real server.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from flask import Flask, Response, request

from flask_batch import add_batch_route
from flask_batch.client import BatchFailed, Batching, BatchNotSent, BatchResponse
from flask_batch.client._core.matching import stopped_at
from flask_batch.client.httpx import AsyncBatchTransport, BatchTransport, HttpxBatchFailed
from flask_batch.transactions import Group, Transaction
from flask_batch.wire.model import SubResponse

from .servers import live_server

ODATA = {"OData-Version": "4.0"}
STOPPED = (
    r"not run: the batch stopped at its first error, POST /fail \(409 CONFLICT\), as an "
    r"OData batch does; send Prefer: odata.continue-on-error to run every request"
)


@dataclass
class Log:
    """What reached the views, and how many times ``/busy`` has answered 503 so far."""

    ran: list[str] = field(default_factory=list)
    busy: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def create_app(log: Log) -> Flask:
    app = Flask(__name__)

    @app.route("/<name>", methods=["GET", "POST", "PUT", "DELETE"])
    def view(name: str) -> Response:
        with log.lock:
            log.ran.append(f"{request.method} /{name}")
        if name == "fail":
            return Response("no", status=409)
        if name == "busy" and log.busy < 1:  # busy once, then fine
            log.busy += 1
            return Response("later", status=503, headers={"Retry-After": "0"})
        return Response(name)

    add_batch_route(app)
    add_batch_route(app, "/batch/tx", "batch_tx", transaction=_nothing_to_undo)
    return app


class _NoTransaction:
    """A transaction hook's transaction over nothing: the views here write nothing."""

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass


def _nothing_to_undo(group: Group) -> Transaction:
    return _NoTransaction()


@dataclass(frozen=True)
class Server:
    base: str
    log: Log

    @property
    def batch_url(self) -> str:
        return f"{self.base}/batch"


@pytest.fixture
def server() -> Iterator[Server]:
    log = Log()
    with live_server(create_app(log)) as base:
        yield Server(base, log)


def test_the_requests_after_the_failure_are_told_they_were_not_run(server: Server) -> None:
    base = server.base
    with (  # noqa: PT012 (the block is the batch)
        pytest.raises(BatchFailed, match=STOPPED + r" \(2 of 4\)$"),
        Batching(server.batch_url, timeout=10, retries=0) as s,
    ):
        s.headers.update(ODATA)
        first = s.get(f"{base}/first")
        failed = s.post(f"{base}/fail")
        after = [s.get(f"{base}/after"), s.put(f"{base}/later")]
    assert (first.status_code, failed.status_code) == (200, 409)
    for response in after:
        with pytest.raises(BatchNotSent, match=STOPPED + "$"):
            response.status_code  # noqa: B018
    assert server.log.ran == ["GET /first", "POST /fail"]


def test_send_batch_says_for_how_many_in_one_line(server: Server) -> None:
    base = server.base
    s = Batching(server.batch_url, timeout=10, retries=0)
    s.headers.update(ODATA)
    s.post(f"{base}/fail")
    s.get(f"{base}/after")
    s.delete(f"{base}/later")
    with pytest.raises(BatchFailed, match=STOPPED + r" \(2 of 3\)$") as raised:
        s.send_batch()
    assert [r.url for r in raised.value.requests] == [f"{base}/after", f"{base}/later"]
    s.close()


def test_preferring_continue_on_error_runs_every_request(server: Server) -> None:
    base = server.base
    with Batching(server.batch_url, timeout=10, retries=0) as s:
        s.headers.update({**ODATA, "Prefer": "odata.continue-on-error"})
        failed = s.post(f"{base}/fail")
        after = s.get(f"{base}/after")
    assert (failed.status_code, after.status_code) == (409, 200)
    assert server.log.ran == ["POST /fail", "GET /after"]


def test_what_never_ran_goes_again_with_the_failure_being_retried(server: Server) -> None:
    """``/busy`` answers 503 once: it is retried, and the POST after it, which never ran,
    goes with it (though a POST is not retried on its own), and runs once."""
    base = server.base
    with Batching(server.batch_url, timeout=10, sleep=lambda seconds: None) as s:
        s.headers.update(ODATA)
        busy = s.get(f"{base}/busy")
        created = s.post(f"{base}/created")
    assert (busy.status_code, created.status_code) == (200, 200)
    assert isinstance(busy, BatchResponse)
    assert isinstance(created, BatchResponse)
    assert (busy.attempts, created.attempts) == (2, 2)
    assert server.log.ran == ["GET /busy", "GET /busy", "POST /created"]


def test_once_the_failure_is_final_what_never_ran_is_told_so(server: Server) -> None:
    base = server.base
    s = Batching(server.batch_url, timeout=10, retries=0)
    s.headers.update(ODATA)
    busy = s.get(f"{base}/busy")
    s.post(f"{base}/created")
    with pytest.raises(BatchFailed, match=r"stopped at its first error, GET /busy \(503"):
        s.send_batch()
    s.close()
    assert busy.status_code == 503
    assert server.log.ran == ["GET /busy"]


def test_a_failed_changeset_stops_the_batch_too(server: Server) -> None:
    base = server.base
    s = Batching(f"{server.batch_url}/tx", timeout=10, retries=0)
    s.headers.update(ODATA)
    with s.changeset():
        debit = s.post(f"{base}/debit")
        failed = s.post(f"{base}/fail")
    s.get(f"{base}/after")
    with pytest.raises(BatchFailed, match=STOPPED + r" \(1 of 3\)$"):
        s.send_batch()
    s.close()
    assert (debit.status_code, failed.status_code) == (424, 409)
    assert server.log.ran == ["POST /debit", "POST /fail"]


def test_the_httpx_transports_say_it_too(server: Server) -> None:
    base = server.base
    transport = BatchTransport(server.batch_url, retries=0)
    with httpx.Client(transport=transport, headers=ODATA) as client:
        requests = [client.build_request("POST", f"{base}/fail")]
        requests.append(client.build_request("GET", f"{base}/after"))
        with pytest.raises(HttpxBatchFailed, match=STOPPED + r" \(1 of 2\)$") as raised:
            transport.send_all(requests)
    assert [r.status_code if r else None for r in raised.value.responses] == [409, None]

    async def send() -> None:
        async_transport = AsyncBatchTransport(server.batch_url, retries=0)
        async with httpx.AsyncClient(transport=async_transport, headers=ODATA) as client:
            requests = [
                client.build_request("POST", f"{base}/fail"),
                client.build_request("GET", f"{base}/after"),
            ]
            with pytest.raises(BatchFailed, match=STOPPED):
                await async_transport.send_all(requests)

    asyncio.run(send())
    assert "GET /after" not in server.log.ran


def _answers(*statuses: int | None) -> list[SubResponse | None]:
    return [None if s is None else SubResponse(s, "", (), b"") for s in statuses]


@pytest.mark.parametrize(
    ("statuses", "found", "stop"),
    [
        ((200, 409, None, None), [[0], [1], [2], [3]], 1),
        ((409, None), [[0], [1]], 0),
        ((424, 409, None), [[0, 1], [2]], 0),  # a failed group: its culprit and a 424
        ((200, 200, None), [[0, 1], [2]], None),  # a group that succeeded: no stop
        ((200, None, None), [[0], [1], [2]], None),  # a part missing after a success
        ((None, 409, None), [[0], [1], [2]], None),  # a gap before: not a prefix
        ((None, None), [[0], [1]], None),  # nothing answered
        ((200, 409), [[0], [1]], None),  # everything answered
    ],
)
def test_where_an_answer_stops(
    statuses: tuple[int | None, ...], found: list[list[int]], stop: int | None
) -> None:
    assert stopped_at(_answers(*statuses), found) == stop
