"""What a sent batch came to, at a glance: ``ok``, ``failed()`` and ``retry_failed()``.

Why: a batch answers 200 whatever its parts answered, so a caller had to look at every
response to learn that one failed, and to rebuild the failed requests by hand to send them
again. Here, against a real server on 127.0.0.1: the batch's outcome agrees with its parts
and with the server's ``Batch-Failures`` header, ``retry_failed()`` sends only what may
succeed on a second try (never a POST that may have run, unless the policy says so), keeps
dependencies among what it sends, and fills the responses the caller already holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
from flask import Flask, Response, request

from flask_batch import add_batch_route
from flask_batch.client import (
    AsyncSentBatch,
    BatchFailed,
    Batching,
    BatchNotSent,
    Retry,
    SentBatch,
)
from flask_batch.client._core.outcome import Attempt, reported_failures, to_retry
from flask_batch.client.httpx import AsyncBatchTransport, BatchTransport, HttpxBatchFailed
from flask_batch.wire.model import Group
from tests.servers import live_server


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, dict[str, int]]]:
    """The server's base URL, and how many times each flaky key was asked for."""
    app = Flask(__name__)
    add_batch_route(app)
    add_batch_route(app, "/batch/odata", "odata", multipart_dialect="odata")
    hits: dict[str, int] = {}

    @app.route("/ok/<key>", methods=["GET", "PUT", "POST"])
    def ok(key: str) -> Response:
        return Response(f"ok {key}", content_type="text/plain")

    @app.route("/status/<int:code>")
    def status(code: int) -> Response:
        return Response(f"status {code}", status=code, content_type="text/plain")

    @app.route("/flaky/<key>", methods=["GET", "PUT", "POST"])
    def flaky(key: str) -> Response:
        """Fails the first time it is asked for ``key``, and succeeds after."""
        hits[key] = hits.get(key, 0) + 1
        if hits[key] == 1:
            return Response("not yet", status=500, content_type="text/plain")
        return Response(f"{key} {hits[key]}", content_type="text/plain")

    with live_server(app) as base:
        warm = Batching(f"{base}/batch")
        warm.get(f"{base}/ok/warm")
        warm.send_batch()
        yield base, hits


def agrees(sent: SentBatch[Any] | AsyncSentBatch[Any], failures: int) -> bool:
    """Whether the server's ``Batch-Failures`` count agrees with the ``failures`` the batch
    found. The server sends it only when every part had answered before the answer's head
    went out, which depends on how fast the parts ran (docs/observability.md, "Outcome at a
    glance"): a missing header agrees with anything, and the module's first batch warms the
    server up so that it is there."""
    if sent.reported_failures is None:
        return True
    return sent.reported_failures == failures


@pytest.fixture
def base(served: tuple[str, dict[str, int]]) -> str:
    return served[0]


@pytest.fixture
def hits(served: tuple[str, dict[str, int]]) -> dict[str, int]:
    return served[1]


def test_a_batch_whose_every_request_succeeded_is_ok(base: str) -> None:
    s = Batching(f"{base}/batch")
    first, second = s.get(f"{base}/ok/a"), s.get(f"{base}/ok/b")
    sent = s.send_batch()
    assert isinstance(sent, list)
    assert sent == [first, second]  # still the list of responses it was
    assert s.last_batch is sent
    assert sent.ok
    assert sent.failed() == []
    assert agrees(sent, 0)


def test_failed_lists_the_4xx_and_5xx_answers_in_request_order(base: str) -> None:
    with Batching(f"{base}/batch", retries=0) as s:
        missing = s.get(f"{base}/status/404")
        s.get(f"{base}/ok/a")
        broken = s.get(f"{base}/status/500")
        s.get(f"{base}/status/302")
    sent = s.last_batch
    assert sent is not None
    assert not sent.ok
    assert sent.failed() == [missing, broken]
    assert agrees(sent, 2)


def test_retry_failed_leaves_what_would_fail_again(base: str) -> None:
    """A 404 is the same the second time: nothing is sent."""
    with Batching(f"{base}/batch") as s:
        s.get(f"{base}/status/404")
    sent = s.last_batch
    assert sent is not None
    assert sent.retry_failed() is sent
    assert not sent.ok
    assert [response.status_code for response in sent.failed()] == [404]


def test_retry_failed_recovers_a_flaky_endpoint_in_place(base: str, hits: dict[str, int]) -> None:
    with Batching(f"{base}/batch") as s:
        fine = s.get(f"{base}/ok/a")
        flaky = s.get(f"{base}/flaky/get", stream=True)  # its body read from raw, when asked
    assert (flaky.status_code, flaky.text) == (500, "not yet")
    sent = s.last_batch
    assert sent is not None
    assert sent.failed() == [flaky]
    assert sent.retry_failed().ok
    assert hits["get"] == 2  # sent once more, alone
    assert flaky.status_code == 200  # the response already held, filled again
    assert flaky.text == "get 2"
    assert fine.text == "ok a"
    assert sent.failed() == []


def test_a_post_that_may_have_run_is_not_retried_by_default(
    base: str, hits: dict[str, int]
) -> None:
    with Batching(f"{base}/batch") as s:
        created = s.post(f"{base}/flaky/post")
    sent = s.last_batch
    assert sent is not None
    sent.retry_failed()
    assert hits["post"] == 1  # never sent again
    assert sent.failed() == [created]
    assert created.status_code == 500


def test_a_post_is_retried_when_the_policy_allows_it(base: str, hits: dict[str, int]) -> None:
    with Batching(f"{base}/batch", retries=Retry(methods=None)) as s:
        created = s.post(f"{base}/flaky/post-allowed")
    sent = s.last_batch
    assert sent is not None
    assert sent.retry_failed().ok
    assert hits["post-allowed"] == 2
    assert created.status_code == 200


def test_a_424_goes_again_with_its_dependency_and_runs_if_it_succeeds(
    base: str, hits: dict[str, int]
) -> None:
    """The dependent POST never ran (424), so it goes again whatever its method, in the
    same batch as its dependency, which the server runs first."""
    with Batching(f"{base}/batch") as s:
        put = s.put(f"{base}/flaky/put")
        dependent = s.request("POST", f"{base}/ok/after", depends_on=[put])
    assert (put.status_code, dependent.status_code) == (500, 424)
    sent = s.last_batch
    assert sent is not None
    assert agrees(sent, 2)
    assert sent.retry_failed().ok
    assert (put.status_code, dependent.status_code) == (200, 200)
    assert dependent.text == "ok after"


def test_a_424_whose_dependency_stays_failed_is_not_retried(base: str) -> None:
    with Batching(f"{base}/batch") as s:
        missing = s.get(f"{base}/status/404")
        dependent = s.get(f"{base}/ok/after", depends_on=[missing])
    sent = s.last_batch
    assert sent is not None
    sent.retry_failed()
    assert [r.status_code for r in sent.failed()] == [404, 424]
    assert dependent.status_code == 424


def test_a_request_with_no_answer_failed_and_is_retried(base: str, hits: dict[str, int]) -> None:
    """An OData batch stops at its first failed request: the one after it gets no answer
    (the call raises, and ``last_batch`` still tells what came back)."""
    s = Batching(f"{base}/batch/odata")
    first = s.get(f"{base}/flaky/stops")
    after = s.get(f"{base}/ok/b")
    with pytest.raises(BatchFailed, match="stopped at its first error"):
        s.send_batch()
    sent = s.last_batch
    assert sent is not None
    assert not sent.ok
    assert sent.failed() == [first, after]
    with pytest.raises(BatchNotSent):
        after.status_code  # noqa: B018 (reading it is the test)
    assert agrees(sent, 1)  # the server counts the parts it answered
    assert sent.retry_failed().ok
    assert (first.status_code, after.text) == (200, "ok b")
    assert hits["stops"] == 2


def flaky_app() -> Flask:
    """A batch endpoint whose one view fails the first time only."""
    app = Flask(__name__)
    add_batch_route(app)
    seen: list[int] = []

    @app.route("/flaky")
    def flaky() -> Response:
        seen.append(1)
        status = 500 if len(seen) == 1 else 200
        return Response(f"{len(seen)}", status=status, content_type="text/plain")

    return app


def test_a_retry_that_gets_no_answer_keeps_the_last_answer() -> None:
    """The server is gone when the failure is sent again: the response still holds the
    answer it had, as the client's own retries keep the last answer."""
    with live_server(flaky_app()) as base:
        with Batching(f"{base}/batch", retries=0) as s:
            flaky = s.get(f"{base}/flaky", stream=True)
        assert (flaky.status_code, flaky.text) == (500, "1")
    sent = s.last_batch
    assert sent is not None
    assert not sent.retry_failed().ok  # connection refused
    assert (flaky.status_code, flaky.text) == (500, "1")
    assert sent.failed() == [flaky]


def test_a_scope_retry_that_gets_no_answer_keeps_the_last_answer() -> None:
    with live_server(flaky_app()) as base:
        transport = BatchTransport(f"{base}/batch", retries=0)
        with transport.batch() as batch:
            flaky = batch.get(f"{base}/flaky")
        assert (flaky.status_code, flaky.text) == (500, "1")
    sent = batch.last_batch
    assert sent is not None
    assert not sent.retry_failed().ok
    assert (flaky.status_code, flaky.text) == (500, "1")


def test_a_reference_goes_again_only_with_what_it_names() -> None:
    """``$made/items`` names the POST, which succeeded and is not sent again: a batch of the
    GET alone would be refused (the name is in no request of it), so the GET stays failed."""
    app = Flask(__name__)
    add_batch_route(app)
    seen: list[int] = []
    batches: list[str] = []

    @app.before_request
    def count() -> None:
        if request.path == "/batch":
            batches.append(request.method)

    @app.post("/made")
    def made() -> Response:
        return Response("made", status=201, headers={"Location": "/things/1"})

    @app.get("/things/1/items")
    def items() -> Response:
        seen.append(1)
        return Response(str(len(seen)), status=500 if len(seen) == 1 else 200)

    with live_server(app) as base:
        s = Batching(f"{base}/batch")
        created = s.request("POST", f"{base}/made", content_id="made")
        listed = s.get("$made/items")
        sent = s.send_batch()
        assert (created.status_code, listed.status_code) == (201, 500)
        assert not sent.retry_failed().ok
    assert (len(seen), batches) == (1, ["POST"])  # nothing was sent again
    assert sent.failed() == [listed]


def test_an_empty_batch_is_ok() -> None:
    s = Batching("http://127.0.0.1:9/batch")
    sent = s.send_batch()
    assert isinstance(sent, SentBatch)
    assert sent == []
    assert sent.ok


def test_a_failed_batch_request_is_a_failure_of_each_request() -> None:
    """Nothing listens: no request has an answer, and the batch says so."""
    s = Batching("http://127.0.0.1:9/batch", retries=0)
    lost = s.get("http://127.0.0.1:9/ok/a")
    with pytest.raises(requests.ConnectionError):
        s.send_batch()
    assert s.last_batch is not None
    assert s.last_batch.failed() == [lost]
    assert s.last_batch.reported_failures is None


# -- httpx: a batch scope -------------------------------------------------------------------


def test_a_batch_scope_says_what_its_batch_came_to(base: str, hits: dict[str, int]) -> None:
    transport = BatchTransport(f"{base}/batch")
    with httpx.Client(transport=transport) as client:
        with transport.batch(client) as batch:
            fine = batch.get(f"{base}/ok/a")
            flaky = batch.put(f"{base}/flaky/httpx-put")
            dependent = batch.post(f"{base}/ok/after", depends_on=[flaky])
            missing = batch.get(f"{base}/status/404")
            created = batch.post(f"{base}/flaky/httpx-post")
        sent = batch.last_batch
        assert sent is not None
        assert sent == [fine, flaky, dependent, missing, created]
        assert not sent.ok
        assert sent.failed() == [flaky, dependent, missing, created]
        assert agrees(sent, 4)
        sent.retry_failed()  # the PUT and the 424 after it; not the 404, not the POST
    assert (flaky.status_code, dependent.status_code) == (200, 200)
    assert dependent.text == "ok after"
    assert (hits["httpx-put"], hits["httpx-post"]) == (2, 1)
    assert sent.failed() == [missing, created]


def test_a_batch_scope_that_got_no_answer_keeps_its_outcome(base: str) -> None:
    transport = BatchTransport(f"{base}/batch/odata")
    with httpx.Client(transport=transport) as client:
        batch = transport.batch(client)
        first = batch.get(f"{base}/flaky/httpx-stops")
        after = batch.get(f"{base}/ok/b")
        with pytest.raises(HttpxBatchFailed):
            batch.send()
        sent = batch.last_batch
        assert sent is not None
        assert sent.failed() == [first, after]
        assert sent.retry_failed().ok
    assert (first.status_code, after.text) == (200, "ok b")


def test_a_scope_retries_a_request_that_passed_through(base: str, hits: dict[str, int]) -> None:
    """Requests to another origin are not batched, and go again one by one."""
    other = base.replace("127.0.0.1", "localhost")
    transport = BatchTransport(f"{base}/batch")
    with httpx.Client(transport=transport) as client:
        batch = transport.batch(client)
        passed = batch.get(f"{other}/flaky/passing")
        batch.send()
        sent = batch.last_batch
        assert sent is not None
        assert sent.failed() == [passed]
        assert sent.reported_failures is None  # no batch was sent
        assert sent.retry_failed().ok
    assert hits["passing"] == 2
    assert passed.text == "passing 2"


def test_send_all_says_what_its_batch_came_to(base: str, hits: dict[str, int]) -> None:
    transport = BatchTransport(f"{base}/batch")
    sent = transport.send_all(
        [httpx.Request("GET", f"{base}/ok/a"), httpx.Request("GET", f"{base}/flaky/send-all")]
    )
    fine, flaky = sent
    assert isinstance(flaky, httpx.Response)
    assert (fine.text, flaky.status_code) == ("ok a", 500)
    assert sent.failed() == [flaky]
    assert agrees(sent, 1)
    assert sent.retry_failed().ok
    assert (flaky.status_code, flaky.text) == (200, "send-all 2")


def test_send_all_that_got_no_answer_has_its_batch_on_the_error(base: str) -> None:
    transport = BatchTransport(f"{base}/batch/odata")
    requests_ = [
        httpx.Request("GET", f"{base}/flaky/send-all-stops"),
        httpx.Request("GET", f"{base}/ok/b"),
    ]
    with pytest.raises(HttpxBatchFailed) as raised:
        transport.send_all(requests_)
    first = raised.value.responses[0]
    assert first is not None
    assert raised.value.responses[1] is None  # as it always was
    sent = raised.value.batch
    assert isinstance(sent, SentBatch)
    assert sent[0] is first
    assert sent.failed() == list(sent)
    assert sent.retry_failed().ok
    assert (first.status_code, sent[1].text) == (200, "ok b")


def test_async_send_all_says_what_its_batch_came_to(base: str, hits: dict[str, int]) -> None:
    other = base.replace("127.0.0.1", "localhost")

    async def main() -> None:
        transport = AsyncBatchTransport(f"{base}/batch")
        sent = await transport.send_all(
            [
                httpx.Request("GET", f"{base}/ok/a"),
                httpx.Request("GET", f"{base}/flaky/async"),
                httpx.Request("POST", f"{base}/flaky/async-post"),
                httpx.Request("GET", f"{other}/flaky/async-passing"),  # not batched
            ]
        )
        fine, flaky, created, passed = sent
        assert fine.text == "ok a"
        assert sent.failed() == [flaky, created, passed]
        assert agrees(sent, 2)  # the batch's two; the other passed through
        assert (await sent.retry_failed()) is sent
        assert sent.failed() == [created]  # the POST may have run: not sent again
        assert (flaky.text, passed.text) == ("async 2", "async-passing 2")
        await transport.aclose()

    asyncio.run(main())
    assert hits["async-post"] == 1


def test_async_send_all_that_got_no_answer_has_its_batch_on_the_error(base: str) -> None:
    async def main() -> None:
        transport = AsyncBatchTransport(f"{base}/batch/odata")
        with pytest.raises(HttpxBatchFailed) as raised:
            await transport.send_all(
                [
                    httpx.Request("GET", f"{base}/flaky/async-stops"),
                    httpx.Request("GET", f"{base}/ok/b"),
                ]
            )
        assert raised.value.responses[1] is None  # as it always was
        sent = raised.value.batch
        assert isinstance(sent, AsyncSentBatch)
        assert len(sent.failed()) == 2
        assert (await sent.retry_failed()).ok
        assert sent[1].text == "ok b"
        await transport.aclose()

    asyncio.run(main())


# -- the rules, without a server ----------------------------------------------------------


def test_an_atomic_group_is_retried_whole_or_not_at_all() -> None:
    group = Group("g", first=0, size=2)
    failing = [Attempt("PUT", (), group, 503), Attempt("PUT", (), group, 424)]
    assert to_retry(failing, Retry()) == [0, 1]
    with_post = [Attempt("PUT", (), group, 503), Attempt("POST", (), group, 424)]
    assert to_retry(with_post, Retry()) == []
    assert to_retry(with_post, Retry(methods=None)) == [0, 1]


def test_what_is_retried() -> None:
    attempts = [
        Attempt("GET", (), None, None),  # no answer
        Attempt("GET", (), None, 408),
        Attempt("GET", (), None, 429),
        Attempt("GET", (), None, 502),
        Attempt("GET", (), None, 400),
        Attempt("GET", (), None, 200),
        Attempt("POST", (), None, 503),
        Attempt("POST", (3,), None, 424),  # its dependency goes again: it goes along
        Attempt("POST", (4,), None, 424),  # its dependency failed for good
        Attempt("POST", (5,), None, 424),  # its dependency succeeded since
    ]
    assert to_retry(attempts, Retry()) == [0, 1, 2, 3, 7, 9]


def test_a_reference_is_retried_with_what_it_names_or_not_at_all() -> None:
    named_ok = [Attempt("POST", (), None, 201), Attempt("GET", (0,), None, 500, refers=True)]
    assert to_retry(named_ok, Retry()) == []
    named_retried = [Attempt("PUT", (), None, 503), Attempt("GET", (0,), None, 424, refers=True)]
    assert to_retry(named_retried, Retry()) == [0, 1]
    # Without a name, a dependency that succeeded is left out and the request goes alone.
    assert to_retry([named_ok[0], Attempt("GET", (0,), None, 500)], Retry()) == [1]


@pytest.mark.parametrize(
    ("headers", "count"),
    [([], None), (["0"], 0), (["1", "2"], 3), (["1", None], None), (["x"], None)],
)
def test_the_batch_failures_headers_are_added_up(
    headers: list[str | None], count: int | None
) -> None:
    assert reported_failures(headers) == count
