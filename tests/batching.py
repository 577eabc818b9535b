"""Helpers to send batches through Flask's test client and read the answers."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_batch.wire.model import SubRequest, SubResponse
from flask_batch.wire.multipart_answers import read_responses
from flask_batch.wire.multipart_requests import encode_requests

BOUNDARY = "test-boundary"
MULTIPART = f"multipart/mixed; boundary={BOUNDARY}"


def sub(
    method: str,
    target: str,
    body: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (),
    content_id: str | None = None,
) -> SubRequest:
    return SubRequest(method, target, headers, body, content_id)


def post(client: FlaskClient, body: bytes, route: str = "/batch", **kwargs: Any) -> TestResponse:
    headers = {"Content-Type": MULTIPART, **kwargs.pop("headers", {})}
    return client.post(route, data=body, headers=headers, **kwargs)


def batch(
    client: FlaskClient, *requests: SubRequest, route: str = "/batch", **kwargs: Any
) -> list[SubResponse]:
    """Send ``requests`` as one batch; the answers in order, checked to be a 200 batch."""
    answer = post(client, encode_requests(requests, BOUNDARY), route, **kwargs)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    parts = read_responses(answer.headers["Content-Type"], answer.get_data())
    assert len(parts) == len(requests)
    return [response for _, response in parts]


def problem(answer: TestResponse) -> dict[str, Any]:
    """The problem document of a refused batch, checked to be application/problem+json."""
    assert answer.headers["Content-Type"] == "application/problem+json"
    document: dict[str, Any] = json.loads(answer.get_data())
    assert document["status"] == answer.status_code
    return document


def header(response: SubResponse, name: str) -> str | None:
    return next((v for k, v in response.headers if k.lower() == name.lower()), None)
