"""JSON answers spell header names by dialect, identically on every front end.

Microsoft Graph writes the usual capitalisation and its JavaScript client looks for
``"Content-Type"``; OData JSON Format 4.01 (section 19.5) wants every response header name in
lower case. By default a request that says it speaks OData (``OData-Version`` or
``OData-MaxVersion``) gets OData's spelling and any other Graph's; a route may fix either.
"""

from __future__ import annotations

import json

import pytest

from flask_batch.wire.json_requests import encode_json_requests

from ..batching import sub
from .conftest import Server
from .wire import batch, post

GRAPH = {
    "Content-Type": ["text/plain"],
    "ETag": ['"v1"'],
    "WWW-Authenticate": ["Bearer"],
    "X-Custom-Thing": ["1"],
    "Set-Cookie": ["a=1", "b=2"],
    "Content-Length": ["5"],
}
ODATA = {name.lower(): values for name, values in GRAPH.items()}


def names(server: Server, route: str, headers: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The header names and values of the JSON answer to GET /spelt, as they were written."""
    document = encode_json_requests([sub("GET", "/spelt", content_id="1")])
    answer = post(server.base, route, document, "application/json", headers)
    assert answer.status == 200, answer.body
    (item,) = json.loads(answer.body)["responses"]
    return {
        name: value if isinstance(value, list) else [value]
        for name, value in item["headers"].items()
    }


@pytest.mark.parametrize(
    ("route", "headers", "expected"),
    [
        ("/batch", [], GRAPH),
        ("/batch", [("OData-Version", "4.01")], ODATA),
        ("/batch", [("OData-MaxVersion", "4.01")], ODATA),
        ("/batch/odata", [], ODATA),
        ("/batch/graph", [("OData-Version", "4.01")], GRAPH),
    ],
)
def test_header_names_are_spelt_by_dialect(
    server: Server, route: str, headers: list[tuple[str, str]], expected: dict[str, list[str]]
) -> None:
    assert names(server, route, headers) == expected


def test_multipart_answers_keep_the_names_as_the_application_wrote_them(server: Server) -> None:
    (answer,) = batch(server.base, "/batch", sub("GET", "/spelt"))
    assert {name.lower() for name, _ in answer.headers} >= {"content-type", "etag"}
