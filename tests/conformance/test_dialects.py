"""The dialect a batch speaks decides the status of its answer, alike on every front end.

OData 1.0 to 3.0 clients (pyodata, Azure's) raise on a batch answered anything but
``202 Accepted``; OData 4, Google's and Microsoft Graph's clients expect ``200 OK``. A request
says it speaks OData 1.0 to 3.0 with ``DataServiceVersion`` or ``MaxDataServiceVersion``; a
route sets the status for clients that say nothing (Azure's blob batch).
"""

from __future__ import annotations

import json

import pytest

from flask_batch.wire.json_requests import encode_json_requests
from flask_batch.wire.multipart_format import encode_requests

from ..batching import sub
from .conftest import Server
from .wire import BOUNDARY, exchange, head, post


@pytest.mark.parametrize(
    ("route", "headers", "status"),
    [
        ("/batch", [], 200),
        ("/batch", [("DataServiceVersion", "3.0")], 202),
        ("/batch", [("MaxDataServiceVersion", "3.0;NetFx")], 202),
        ("/batch", [("DataServiceVersion", "2.0"), ("MaxDataServiceVersion", "2.0")], 202),
        ("/batch", [("OData-Version", "4.0")], 200),
        ("/batch/accepted", [], 202),
    ],
)
@pytest.mark.parametrize("json_format", [False, True], ids=["multipart", "json"])
def test_the_answers_status_is_the_dialects(
    server: Server, route: str, headers: list[tuple[str, str]], status: int, json_format: bool
) -> None:
    requests = [sub("GET", "/ok", content_id="1")]
    if json_format:
        answer = post(
            server.base, route, encode_json_requests(requests), "application/json", headers
        )
    else:
        answer = post(server.base, route, encode_requests(requests, BOUNDARY), headers=headers)
    assert [part.status for part in answer.parts(status)] == [200]


def test_a_refusal_keeps_its_own_status(server: Server) -> None:
    document = server.refused(b"not a batch", route="/batch/accepted")
    assert document["status"] == 400


@pytest.mark.parametrize(
    ("route", "described"),
    [
        ("/batch", {"groups": "refused", "answer_status": "auto", "max_group_size": 1000}),
        ("/batch/tx", {"groups": "atomic"}),
        ("/batch/in-order", {"groups": "in-order"}),
        ("/batch/tx-small", {"groups": "atomic", "max_group_size": 2, "max_parts": 4}),
        ("/batch/tx-flat", {"flat_changesets": True}),
        ("/batch/accepted", {"answer_status": 202}),
    ],
)
def test_the_description_says_how_groups_run_and_the_answers_status(
    server: Server, route: str, described: dict[str, object]
) -> None:
    document = json.loads(exchange(server.base, head(server.base, "GET", route), "GET").body)
    assert {name: document[name] for name in described} == described
