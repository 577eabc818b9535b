"""Per-part retries: the policy (``Retry``, ``Retry-After``, backoff) and what clients do.

Why: a batch that comes back with a few 429 or 503 parts should cost the caller nothing but
a short wait: only those parts are sent again, in a follow-up batch, after the server's
``Retry-After`` or a backoff; requests that already got a final answer are never re-sent,
POST and PATCH are retried only when the user says so, and a time budget bounds it all.
The scripted endpoint (``tests/fake_batch.py``) injects each failure on cue and records
every batch; a fake ``sleep`` records each wait, so nothing here sleeps for real.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.utils import formatdate

import pytest
import requests
from flask import Flask, Response, request

from flask_batch import add_batch_route
from flask_batch.client import (
    IDEMPOTENT_METHODS,
    BatchFailed,
    Batching,
    BatchNotSent,
    Retry,
)
from flask_batch.client._core.policy import parse_retry_after
from flask_batch.client.requests import RequestsBatchResponse
from tests.fake_batch import (
    ANSWER,
    BASE,
    BATCH_URL,
    LOSE,
    REFUSE,
    FakeEndpoint,
    RequestsAdapter,
    status,
)
from tests.servers import live_server

# -- the policy ---------------------------------------------------------------------------


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        (formatdate(NOW + 30, usegmt=True), 30.0),  # IMF-fixdate
        (time.strftime("%A, %d-%b-%y %H:%M:%S GMT", time.gmtime(NOW + 60)), 60.0),  # RFC 850
        (time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(NOW + 90)), 90.0),  # asctime
        (formatdate(NOW - 3600, usegmt=True), 0.0),  # in the past: now
        (None, None),
        ("", None),
        ("soon", None),
        ("-1", None),
        ("1.5", None),  # delay-seconds is digits only
        ("١٢", None),  # non-ASCII digits
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(
    value: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_the_default_policy() -> None:
    policy = Retry()
    assert policy.attempts == 3
    assert set(policy.statuses) == {429, 503}
    assert set(policy.batch_statuses) == {429, 502, 503, 504}
    for method in IDEMPOTENT_METHODS:
        assert policy.allows(method)
        assert policy.allows(method.lower())
    assert not policy.allows("POST")
    assert not policy.allows("PATCH")
    assert Retry(methods=None).allows("POST")
    assert Retry.of(5) == Retry(retries=5)
    assert Retry.of(policy) is policy
    assert Retry.of(0).attempts == 1


@pytest.mark.parametrize(
    "options",
    [
        {"retries": -1},
        {"retries": 1.5},
        {"backoff": -1},
        {"max_backoff": float("inf")},
        {"budget": float("nan")},
        {"jitter": 1.5},
    ],
)
def test_an_invalid_policy_is_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        Retry(**options)  # type: ignore[arg-type]


def test_retries_must_be_an_int_or_a_retry() -> None:
    with pytest.raises(TypeError):
        Retry.of("3")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Batching(BATCH_URL, retries=True)


def test_backoff_doubles_up_to_its_cap_and_jitter_takes_at_most_its_share() -> None:
    policy = Retry(backoff=0.5, max_backoff=3.0, jitter=0)
    assert [policy.backoff_delay(n, lambda: 0.99) for n in range(1, 6)] == [
        0.5,
        1.0,
        2.0,
        3.0,
        3.0,
    ]
    jittered = Retry(backoff=1.0, jitter=0.5)
    assert jittered.backoff_delay(1, lambda: 0.0) == 1.0
    assert jittered.backoff_delay(1, lambda: 0.999) == pytest.approx(0.5005)
    # Retry-After wins when longer, the backoff when the server asks for less.
    assert jittered.delay(1, 7.0, lambda: 0.0) == 7.0
    assert jittered.delay(1, 0.0, lambda: 0.0) == 1.0


# -- the requests client against a scripted endpoint ---------------------------------------


@pytest.fixture
def endpoint() -> FakeEndpoint:
    return FakeEndpoint()


def attempts(response: requests.Response) -> int:
    assert isinstance(response, RequestsBatchResponse)
    return response.attempts


def session(endpoint: FakeEndpoint, slept: list[float], **options: object) -> Batching:
    """A session of the fake endpoint, sending one batch at a time unless told otherwise:
    what it sleeps, recorded, is what a lone batch waits."""
    options.setdefault("concurrency", 1)
    s = Batching(BATCH_URL, sleep=slept.append, **options)  # type: ignore[arg-type]
    s.mount(BASE, RequestsAdapter(endpoint))
    return s


def test_only_the_parts_answered_503_are_sent_again(endpoint: FakeEndpoint) -> None:
    endpoint.fail("/b", 503)
    slept: list[float] = []
    with session(endpoint, slept) as s:
        a, b, c = (s.get(f"{BASE}/{name}") for name in "abc")
    assert endpoint.batches == [["GET /a", "GET /b", "GET /c"], ["GET /b"]]
    assert [r.status_code for r in (a, b, c)] == [200, 200, 200]
    assert b.json() == {"method": "GET", "path": "/b"}
    assert [attempts(r) for r in (a, b, c)] == [1, 2, 1]
    assert endpoint.ran == {"GET /a": 1, "GET /b": 2, "GET /c": 1}
    (wait,) = slept
    assert 0.125 <= wait <= 0.25  # the first backoff (0.25 s), jittered by up to half


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_in_seconds_is_honoured(endpoint: FakeEndpoint, code: int) -> None:
    endpoint.fail("/b", (code, (("Retry-After", "3"),)))
    slept: list[float] = []
    with session(endpoint, slept) as s:
        b = s.get(f"{BASE}/b")
    assert slept == pytest.approx([3.0], abs=0.05)
    assert (b.status_code, attempts(b)) == (200, 2)


def test_retry_after_as_an_http_date_is_honoured(endpoint: FakeEndpoint) -> None:
    endpoint.fail("/b", (429, (("Retry-After", formatdate(time.time() + 5, usegmt=True)),)))
    slept: list[float] = []
    with session(endpoint, slept) as s:
        s.get(f"{BASE}/b")
    (wait,) = slept
    assert 3.5 < wait <= 5.0


def test_the_follow_up_waits_for_the_longest_retry_after(endpoint: FakeEndpoint) -> None:
    endpoint.fail("/a", (503, (("Retry-After", "1"),)))
    endpoint.fail("/b", (429, (("Retry-After", "4"),)))
    slept: list[float] = []
    with session(endpoint, slept) as s:
        s.get(f"{BASE}/a")
        s.get(f"{BASE}/b")
    assert slept == pytest.approx([4.0], abs=0.05)
    assert endpoint.batches[1] == ["GET /a", "GET /b"]  # one follow-up batch for both


def test_attempts_are_capped_and_the_last_answer_stands(endpoint: FakeEndpoint) -> None:
    endpoint.fail("/b", 503, 503, 503, 503)
    slept: list[float] = []
    with session(endpoint, slept) as s:
        b = s.get(f"{BASE}/b")
    assert (b.status_code, attempts(b)) == (503, 3)
    assert len(endpoint.batches) == 3
    first, second = slept
    # Each sleep lasts until the retry is due, less the time its batch took to come back
    # (milliseconds here), so the lower bounds leave a little room.
    assert 0.1 <= first <= 0.25
    assert 0.2 <= second <= 0.5  # doubled


def test_retries_is_configurable_and_zero_turns_it_off(endpoint: FakeEndpoint) -> None:
    endpoint.fail("/b", 503, 503, 503, 503)
    slept: list[float] = []
    with session(endpoint, slept, retries=0) as s:
        b = s.get(f"{BASE}/b")
    assert (b.status_code, attempts(b), slept) == (503, 1, [])
    with session(endpoint, slept, retries=4) as s:
        b = s.get(f"{BASE}/b")
    assert (b.status_code, attempts(b)) == (200, 4)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_non_idempotent_methods_are_retried_only_when_the_user_opts_in(
    endpoint: FakeEndpoint, method: str
) -> None:
    endpoint.fail("/p", 503)
    slept: list[float] = []
    with session(endpoint, slept) as s:
        once = s.request(method, f"{BASE}/p", json={})
    assert (once.status_code, attempts(once)) == (503, 1)
    assert endpoint.ran[f"{method} /p"] == 1

    endpoint.fail("/p", 503)
    with session(endpoint, slept, retries=Retry(methods=None)) as s:
        twice = s.request(method, f"{BASE}/p", json={})
    assert (twice.status_code, attempts(twice)) == (200, 2)


def test_other_statuses_are_retried_only_when_configured(endpoint: FakeEndpoint) -> None:
    endpoint.fail("/b", 500)
    slept: list[float] = []
    with session(endpoint, slept) as s:
        b = s.get(f"{BASE}/b")
    assert b.status_code == 500
    endpoint.fail("/b", 500)
    with session(endpoint, slept, retries=Retry(statuses={500, 503})) as s:
        b = s.get(f"{BASE}/b")
    assert (b.status_code, attempts(b)) == (200, 2)


def test_a_retry_after_beyond_the_budget_is_not_waited_for(endpoint: FakeEndpoint) -> None:
    endpoint.fail("/b", (503, (("Retry-After", "3600"),)))
    slept: list[float] = []
    with session(endpoint, slept) as s:
        b = s.get(f"{BASE}/b")
    assert slept == []
    assert (b.status_code, b.headers["Retry-After"], attempts(b)) == (503, "3600", 1)


def test_the_budget_counts_every_wait(endpoint: FakeEndpoint) -> None:
    endpoint.fail("/b", 503, 503, 503, 503, 503)
    slept: list[float] = []
    policy = Retry(retries=10, backoff=0.4, jitter=0, budget=1.0)
    with session(endpoint, slept, retries=policy) as s:
        b = s.get(f"{BASE}/b")
    # 0.4 s, then 0.8 s would end 1.2 s in: over the budget, so the 503 stands.
    assert slept == pytest.approx([0.4], abs=0.05)
    assert (b.status_code, attempts(b)) == (503, 2)


def test_a_dependency_retried_takes_its_424_dependents_along(endpoint: FakeEndpoint) -> None:
    endpoint.fail("/a", 503)
    slept: list[float] = []
    with session(endpoint, slept) as s:
        a = s.get(f"{BASE}/a")
        b = s.request("PUT", f"{BASE}/b", json={}, depends_on=[a])
        c = s.get(f"{BASE}/c")
    assert endpoint.batches == [["GET /a", "PUT /b", "GET /c"], ["GET /a", "PUT /b"]]
    assert [r.status_code for r in (a, b, c)] == [200, 200, 200]
    assert endpoint.ran["PUT /b"] == 1  # the 424 never ran it


def test_a_424_post_goes_along_with_its_dependency_even_without_opting_in(
    endpoint: FakeEndpoint,
) -> None:
    endpoint.fail("/a", 503)
    slept: list[float] = []
    with session(endpoint, slept) as s:
        a = s.get(f"{BASE}/a")
        b = s.request("POST", f"{BASE}/b", json={}, depends_on=[a])
    assert (b.status_code, attempts(b)) == (200, 2)
    assert endpoint.ran["POST /b"] == 1


def test_a_dependent_is_retried_alone_once_its_dependency_succeeded(
    endpoint: FakeEndpoint,
) -> None:
    endpoint.fail("/b", 503)
    slept: list[float] = []
    with session(endpoint, slept) as s:
        a = s.get(f"{BASE}/a")
        b = s.request("GET", f"{BASE}/b", depends_on=[a])
    # The follow-up carries b alone, without naming a (which the server could not find).
    assert endpoint.batches == [["GET /a", "GET /b"], ["GET /b"]]
    assert (attempts(a), attempts(b), b.status_code) == (1, 2, 200)


def test_a_failed_dependency_that_is_not_retried_leaves_its_424(endpoint: FakeEndpoint) -> None:
    endpoint.fail("/a", 503)
    slept: list[float] = []
    with session(endpoint, slept) as s:
        a = s.post(f"{BASE}/a", json={})  # not retried by default
        b = s.request("GET", f"{BASE}/b", depends_on=[a])
    assert [a.status_code, b.status_code] == [503, 424]
    assert len(endpoint.batches) == 1


@pytest.mark.parametrize("code", [429, 502, 503, 504])
def test_a_batch_failing_as_a_whole_is_sent_again(endpoint: FakeEndpoint, code: int) -> None:
    endpoint.outcomes = [status(code, ("Retry-After", "2"), body=b"busy")]
    slept: list[float] = []
    with session(endpoint, slept) as s:
        a = s.get(f"{BASE}/a")
        b = s.put(f"{BASE}/b", json={})
    assert endpoint.batches == [["GET /a", "PUT /b"], ["GET /a", "PUT /b"]]
    assert slept == pytest.approx([2.0], abs=0.05)
    assert [(r.status_code, attempts(r)) for r in (a, b)] == [(200, 2), (200, 2)]


def test_a_batch_failing_with_another_status_is_not_retried(endpoint: FakeEndpoint) -> None:
    endpoint.outcomes = [status(400, ("Content-Type", "text/plain"), body=b"bad batch")]
    slept: list[float] = []
    queued: list[requests.Response] = []

    def send() -> None:
        with session(endpoint, slept) as s:
            queued.append(s.get(f"{BASE}/a"))

    with pytest.raises(BatchFailed, match="400 Scripted: bad batch") as info:
        send()
    assert len(endpoint.batches) == 1
    assert info.value.requests == [queued[0].request]
    assert attempts(queued[0]) == 1


def test_a_lost_batch_is_sent_again_with_its_idempotent_requests_only(
    endpoint: FakeEndpoint,
) -> None:
    endpoint.outcomes = [LOSE]
    slept: list[float] = []
    queued: list[requests.Response] = []

    def send() -> None:
        with session(endpoint, slept) as s:
            queued.extend([s.get(f"{BASE}/a"), s.post(f"{BASE}/p", json={})])

    with pytest.raises(requests.ConnectionError, match="lost"):
        send()
    a, p = queued
    # The POST may have run before the connection broke: it is not sent twice.
    assert endpoint.batches == [["GET /a", "POST /p"], ["GET /a"]]
    assert (a.status_code, attempts(a)) == (200, 2)
    assert attempts(p) == 1
    with pytest.raises(BatchNotSent, match="could not be sent"):
        _ = p.status_code


def test_a_refused_connection_is_retried_for_every_method(endpoint: FakeEndpoint) -> None:
    endpoint.outcomes = [REFUSE]
    slept: list[float] = []
    with session(endpoint, slept) as s:
        p = s.post(f"{BASE}/p", json={})
    assert (p.status_code, attempts(p)) == (200, 2)
    assert len(endpoint.batches) == 2


def test_a_batch_lost_every_time_raises_the_connection_error(endpoint: FakeEndpoint) -> None:
    endpoint.outcomes = [LOSE, LOSE, LOSE]
    slept: list[float] = []
    queued: list[requests.Response] = []

    def send() -> None:
        with session(endpoint, slept) as s:
            queued.append(s.get(f"{BASE}/a"))

    with pytest.raises(requests.ConnectionError):
        send()
    assert attempts(queued[0]) == 3
    assert len(slept) == 2


def test_a_part_keeps_its_last_answer_when_later_attempts_are_lost(
    endpoint: FakeEndpoint,
) -> None:
    endpoint.fail("/b", 503)
    endpoint.outcomes = [ANSWER, LOSE, LOSE]
    slept: list[float] = []
    with session(endpoint, slept) as s:
        a = s.get(f"{BASE}/a")
        b = s.get(f"{BASE}/b")
    assert (a.status_code, attempts(a)) == (200, 1)
    assert (b.status_code, attempts(b)) == (503, 3)


def test_json_batches_are_retried_the_same_way(endpoint: FakeEndpoint) -> None:
    endpoint.fail("/b", (503, (("Retry-After", "1"),)))
    slept: list[float] = []
    with session(endpoint, slept, format="json") as s:
        a = s.get(f"{BASE}/a")
        b = s.get(f"{BASE}/b")
    assert endpoint.batches == [["GET /a", "GET /b"], ["GET /b"]]
    assert (attempts(a), attempts(b), b.status_code) == (1, 2, 200)
    assert slept == pytest.approx([1.0], abs=0.05)


def test_session_hooks_see_only_the_final_answer(endpoint: FakeEndpoint) -> None:
    endpoint.fail("/b", 503)
    seen: list[int] = []
    slept: list[float] = []
    with session(endpoint, slept) as s:
        s.hooks["response"].append(lambda r, *args, **kwargs: seen.append(r.status_code))
        s.get(f"{BASE}/b")
    assert seen == [200]


# -- against a real server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> Iterator[str]:
    app = Flask(__name__)
    add_batch_route(app)
    add_batch_route(app, "/batch/deadline", "deadline", deadline=0.3)
    hits: dict[str, int] = {}

    @app.route("/limited/<key>")
    def limited(key: str) -> Response:
        hits[key] = hits.get(key, 0) + 1
        if hits[key] == 1:
            return Response("slow down", status=429, headers={"Retry-After": "1"})
        return Response(f"{key} {hits[key]}", content_type="text/plain")

    @app.route("/sleep")
    def sleep() -> Response:
        time.sleep(float(request.args["s"]))
        return Response("slept", content_type="text/plain")

    with live_server(app) as base:
        yield base


def test_a_rate_limited_part_is_retried_against_a_real_server(real: str) -> None:
    slept: list[float] = []
    with Batching(f"{real}/batch", timeout=10, sleep=slept.append) as s:
        limited = s.get(f"{real}/limited/one")
        fine = s.get(f"{real}/limited/one-other")
    assert (limited.status_code, limited.text, attempts(limited)) == (200, "one 2", 2)
    # Its neighbour was limited too (first hit); both wait the 1 s the server asked for.
    assert (fine.text, attempts(fine)) == ("one-other 2", 2)
    assert slept == pytest.approx([1.0], abs=0.05)


def test_a_part_the_deadline_left_unrun_is_sent_again(real: str) -> None:
    slept: list[float] = []
    with Batching(f"{real}/batch/deadline", timeout=10, sleep=slept.append) as s:
        slow = s.get(f"{real}/sleep?s=0.4")
        late = s.get(f"{real}/sleep?s=0")
    assert (slow.status_code, attempts(slow)) == (200, 1)
    assert (late.status_code, late.text, attempts(late)) == (200, "slept", 2)
    assert slept == pytest.approx([1.0], abs=0.05)  # the deadline's 503 says Retry-After: 1
