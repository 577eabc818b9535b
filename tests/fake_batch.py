"""A scriptable batch endpoint with no sockets, for error injection in the client tests.

Why: a real server cannot be told "lose the connection on the second batch" or "answer 413
naming max_parts=2" on cue. :class:`FakeEndpoint` reads a batch with the server's own wire
reader, answers each part with a per-path script (``fail N times with 503``), and can be
told what to do with each whole batch (answer, lose it, 413, 503). It plugs into httpx as
``httpx.MockTransport(endpoint.httpx_handler)`` and into requests as a mounted adapter
(:class:`RequestsAdapter`). Everything it saw is recorded: each batch's parts, discoveries.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import MaxRetryError, NewConnectionError

from flask_batch.wire.dependencies import dependency_indices
from flask_batch.wire.errors import problem_response
from flask_batch.wire.json_answers import JsonResponseWriter
from flask_batch.wire.json_requests import JsonRequestReader
from flask_batch.wire.model import UNLIMITED, SubRequest, SubResponse
from flask_batch.wire.multipart_answers import ResponseWriter
from flask_batch.wire.multipart_requests import read_requests

BATCH_URL = "http://api.test/batch"
BASE = "http://api.test"


@dataclass(frozen=True)
class Outcome:
    """What the endpoint does with one whole batch."""

    #: "answer", "status" (answer ``status`` with ``headers`` and ``body``), "lose" (raise
    #: a connection error), "refuse" (a connection refused: nothing was sent).
    kind: str = "answer"
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


ANSWER = Outcome()
LOSE = Outcome("lose")
REFUSE = Outcome("refuse")


def status(code: int, *headers: tuple[str, str], body: bytes = b"") -> Outcome:
    return Outcome("status", code, headers, body)


def too_large(limit: str, value: int, part: int | None = None) -> Outcome:
    """A 413 as the real endpoint words it."""
    problem: dict[str, Any] = {
        "type": "tag:flask-batch,2026:limit-exceeded",
        "title": "Batch too large",
        "status": 413,
        "detail": f"{limit} is {value}",
        "limit": limit,
        "value": value,
    }
    if part is not None:
        problem["part"] = part
    return status(
        413,
        ("Content-Type", "application/problem+json"),
        body=json.dumps(problem).encode(),
    )


@dataclass
class FakeEndpoint:
    """A batch endpoint at :data:`BATCH_URL`; ``script[path]`` is a list of statuses (and
    optional headers) the part at ``path`` answers in turn before answering 200."""

    script: dict[str, list[tuple[int, tuple[tuple[str, str], ...]]]] = field(default_factory=dict)
    #: What the next batches get, in turn (then: answer).
    outcomes: list[Outcome] = field(default_factory=list)
    #: Enforced like the real endpoint (413 naming the limit), if set.
    max_parts: int | None = None
    max_body_size: int | None = None
    #: What GET on the batch URL answers (None: 404).
    description: Mapping[str, Any] | None = None
    #: The status of a batch's answer (202: as OData 1.0 to 3.0 and Azure answer).
    answer_status: int = 200
    #: Each batch that arrived: its parts as "METHOD target", and as they were read.
    batches: list[list[str]] = field(default_factory=list)
    parts: list[list[SubRequest]] = field(default_factory=list)
    #: The batch requests' headers and body sizes, in order.
    batch_headers: list[dict[str, str]] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    discoveries: int = 0
    #: Times each "METHOD path" ran.
    ran: Counter[str] = field(default_factory=Counter)
    #: Direct (not batched) requests: "METHOD url".
    direct: list[str] = field(default_factory=list)
    #: How an atomic group is answered in the multipart format: "nested" (OData: a group
    #: that succeeded by one nested multipart part, one that failed by one part, its failing
    #: member's answer with that member's Content-ID), "anonymous" (the same, the failure's
    #: part with no Content-ID), "flat" (each member's answer a part of its own). A failed
    #: group's other members answer 424 where they have answers of their own (JSON, flat).
    group_layout: str = "nested"

    def fail(self, path: str, *statuses: int | tuple[int, tuple[tuple[str, str], ...]]) -> None:
        """The part at ``path`` answers these statuses first (then 200)."""
        self.script[path] = [s if isinstance(s, tuple) else (s, ()) for s in statuses]

    # -- the endpoint ---------------------------------------------------------------------

    def answer(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """(status, headers, body) for one HTTP request; raises :class:`Lost` to drop it."""
        if not url.startswith(BATCH_URL):
            self.direct.append(f"{method} {url}")
            return 200, [("Content-Type", "text/plain")], f"direct {method} {url}".encode()
        if method == "GET":
            self.discoveries += 1
            if self.description is None:
                return 404, [("Content-Type", "text/plain")], b"no description here"
            return (
                200,
                [("Content-Type", "application/json")],
                json.dumps(self.description).encode(),
            )
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if content_type.startswith("application/json"):
            reader = JsonRequestReader(UNLIMITED)
            reader.feed(body)
            sub_requests = reader.close()
        else:
            sub_requests = read_requests(content_type, [body], UNLIMITED)
        self.batches.append([f"{r.method} {r.target}" for r in sub_requests])
        self.parts.append(sub_requests)
        self.batch_headers.append(dict(headers))
        self.sizes.append(len(body))
        outcome = self.outcomes.pop(0) if self.outcomes else ANSWER
        if outcome.kind in ("lose", "refuse"):
            raise Lost(outcome.kind)
        if outcome.kind == "status":
            return outcome.status, list(outcome.headers), outcome.body
        if self.max_parts is not None and len(sub_requests) > self.max_parts:
            return _problem_answer("max_parts", self.max_parts)
        if self.max_body_size is not None and len(body) > self.max_body_size:
            return _problem_answer("max_body_size", self.max_body_size)
        return self._run(sub_requests, json_format=content_type.startswith("application/json"))

    def _run(
        self, sub_requests: list[SubRequest], *, json_format: bool
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        dependencies = dependency_indices(sub_requests)
        answers: list[SubResponse] = []
        failing: dict[int, int] = {}  # a failed group's first member -> its failing member
        for index, (request, depends_on) in enumerate(zip(sub_requests, dependencies, strict=True)):
            group = request.group
            failed = [d for d in depends_on if not 200 <= answers[d].status < 300]
            if failed or (group is not None and group.first in failing):
                answers.append(problem_response(424, "Failed dependency", "not run"))
                continue
            answers.append(self._part(request))
            if group is not None and answers[index].status >= 400:
                failing[group.first] = index
                for applied in range(group.first, index):  # rolled back
                    answers[applied] = problem_response(424, "Failed dependency", "rolled back")
        # The server's own writers: a group nested in a changeset's answer, unless flat.
        flat = self.group_layout == "flat"
        writer: ResponseWriter | JsonResponseWriter = (
            JsonResponseWriter() if json_format else ResponseWriter(flat=flat)
        )
        collapses = not json_format and not flat
        body = writer.start()
        index = 0
        while index < len(sub_requests):
            request, group = sub_requests[index], sub_requests[index].group
            if group is None or group.first not in failing or not collapses:
                body += writer.part(answers[index], request)
                index += 1
                continue
            # A failed changeset: one part in its place, the failing member's answer.
            carrier = sub_requests[failing[group.first]]._replace(group=None)
            if self.group_layout == "anonymous":
                carrier = carrier._replace(content_id=None)
            body += writer.part(answers[failing[group.first]], carrier)
            index = group.first + group.size
        body += writer.close()
        return self.answer_status, [("Content-Type", writer.content_type)], body

    def _part(self, request: SubRequest) -> SubResponse:
        path = request.target.split("?")[0]
        self.ran[f"{request.method} {path}"] += 1
        script = self.script.get(path)
        if script:
            code, headers = script.pop(0)
            return SubResponse(code, "Scripted", (("Content-Type", "text/plain"), *headers), b"no")
        body = json.dumps({"method": request.method, "path": path}).encode()
        return SubResponse(200, "OK", (("Content-Type", "application/json"),), body)

    # -- adapters ---------------------------------------------------------------------------

    def httpx_handler(self, request: httpx.Request) -> httpx.Response:
        try:
            code, headers, body = self.answer(
                request.method, str(request.url), request.headers, request.read()
            )
        except Lost as lost:
            if lost.kind == "refuse":
                raise httpx.ConnectError("connection refused", request=request) from None
            raise httpx.ReadError("the connection was lost", request=request) from None
        return httpx.Response(code, headers=headers, content=body)


def _problem_answer(limit: str, value: int) -> tuple[int, list[tuple[str, str]], bytes]:
    outcome = too_large(limit, value)
    return outcome.status, list(outcome.headers), outcome.body


class Lost(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class RequestsAdapter(BaseAdapter):
    """Mount with ``session.mount(BASE, RequestsAdapter(endpoint))``."""

    def __init__(self, endpoint: FakeEndpoint) -> None:
        super().__init__()
        self.endpoint = endpoint

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        try:
            code, headers, content = self.endpoint.answer(
                request.method or "GET", request.url or "", request.headers, body
            )
        except Lost as lost:
            if lost.kind == "refuse":
                reason = NewConnectionError(None, "connection refused")  # type: ignore[arg-type]
                raise requests.ConnectionError(
                    MaxRetryError(None, request.url, reason),  # type: ignore[arg-type]
                    request=request,
                ) from None
            raise requests.ConnectionError("the connection was lost", request=request) from None
        response = requests.Response()
        response.status_code = code
        response.reason = "OK" if code == 200 else "Scripted"
        response.headers = CaseInsensitiveDict(dict(headers))
        response._content = content
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass


Sleeps = list[float]


def fake_sleep(slept: Sleeps) -> Callable[[float], None]:
    return slept.append
