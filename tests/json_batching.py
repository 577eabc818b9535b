"""Helpers to send JSON batches through Flask's test client and read the answers strictly.

Every answer is parsed as strict JSON (no ``NaN``), as a browser would.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse


def strict_loads(data: bytes) -> Any:
    """Parse JSON as a strict parser (a browser's JSON.parse) would: no NaN or Infinity."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(data, parse_constant=refuse)


def url64(data: bytes) -> str:
    """base64url without padding: how the JSON format writes bytes."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_url64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def item(request_id: str, method: str, url: str, body: Any = None, **extra: Any) -> dict[str, Any]:
    """One request of a JSON batch; ``body`` is left out when None."""
    entry: dict[str, Any] = {"id": request_id, "method": method, "url": url, **extra}
    if body is not None:
        entry["body"] = body
    return entry


def reply(
    request_id: str, body: str, content_type: str, sent_as: str = "application/octet-stream"
) -> dict[str, Any]:
    """A request to ``/api/reply``, whose answer is ``body`` (as the app received it) with
    ``content_type``; the request's own body is ``sent_as``."""
    headers = {"Content-Type": sent_as, "X-Reply": content_type}
    return item(request_id, "POST", "/api/reply", body, headers=headers)


def send(
    client: FlaskClient,
    document: Any,
    route: str = "/api/batch",
    headers: dict[str, str] | None = None,
) -> TestResponse:
    data = document if isinstance(document, bytes) else json.dumps(document).encode("utf-8")
    return client.post(
        route, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )


def responses_of(answer: TestResponse) -> list[dict[str, Any]]:
    """The responses of a 200 JSON batch answer, checked to be strict JSON of the right shape."""
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype == "application/json"
    document = strict_loads(answer.get_data())
    assert isinstance(document, dict)
    assert list(document) == ["responses"]
    items = document["responses"]
    assert isinstance(items, list)
    for entry in items:
        assert isinstance(entry, dict)
        assert set(entry) <= {"id", "status", "headers", "body", "bodyEncoding"}, entry
        assert type(entry["status"]) is int
        assert isinstance(entry["headers"], dict)
    return items


def run(
    client: FlaskClient,
    *requests: dict[str, Any],
    route: str = "/api/batch",
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Send a JSON batch; its responses, checked to answer every request, in order."""
    items = responses_of(send(client, {"requests": list(requests)}, route, headers))
    assert [entry["id"] for entry in items] == [entry["id"] for entry in requests]
    return items


def json_header(entry: dict[str, Any], name: str) -> str | list[str] | None:
    values = [value for key, value in entry["headers"].items() if key.lower() == name.lower()]
    assert len(values) <= 1, entry["headers"]
    result: str | list[str] | None = values[0] if values else None
    return result
