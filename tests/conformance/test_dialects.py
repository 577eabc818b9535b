"""The dialect a batch speaks decides how it runs and is answered, alike on every front end.

OData 1.0 to 3.0 clients (pyodata, Azure's) raise on a batch answered anything but
``202 Accepted``; OData 4, Google's and Microsoft Graph's clients expect ``200 OK``. A request
says it speaks OData 1.0 to 3.0 with ``DataServiceVersion`` or ``MaxDataServiceVersion``, and
Azure Storage's API (whose batches Azure answers ``202``) with ``x-ms-version``; a route sets
the status for clients that say nothing (pyodata). An OData multipart
batch (any OData version header, or a route's ``multipart_dialect``) stops at its first
failed request unless it prefers to continue, and its answer ends with that error (OData 4.01
Part 1, section 11.7.7.3); Google's runs every part.
"""

from __future__ import annotations

import json
import re

import pytest

from flask_batch.wire.json_requests import encode_json_requests
from flask_batch.wire.multipart_requests import encode_requests

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
        ("/batch", [("x-ms-version", "2026-10-06")], 202),  # Azure Storage: blob batch
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
        ("/batch/odata", {"multipart_dialect": "odata"}),
    ],
)
def test_the_description_says_how_groups_run_and_the_answers_status(
    server: Server, route: str, described: dict[str, object]
) -> None:
    document = json.loads(exchange(server.base, head(server.base, "GET", route), "GET").body)
    assert {name: document[name] for name in described} == described


# OData's multipart batches stop at their first error, and their answer ends there

ODATA_4 = [("OData-Version", "4.0")]
FAILS = [sub("GET", "/ok"), sub("GET", "/status?code=404"), sub("GET", "/ok")]


def statuses(
    server: Server, route: str, headers: list[tuple[str, str]], status: int = 200
) -> list[int]:
    answer = post(server.base, route, encode_requests(FAILS, BOUNDARY), headers=headers)
    return [part.status for part in answer.parts(status)]


@pytest.mark.parametrize(
    ("route", "headers", "status"),
    [
        ("/batch", ODATA_4, 200),
        ("/batch", [("OData-MaxVersion", "4.01")], 200),
        ("/batch", [("DataServiceVersion", "2.0")], 202),
        ("/batch", [*ODATA_4, ("Prefer", "odata.continue-on-error=false")], 200),
        ("/batch/odata", [], 200),  # multipart_dialect="odata"
        ("/batch/parallel", ODATA_4, 200),  # in order, one after another, all the same
    ],
)
def test_an_odata_batch_ends_with_its_first_error(
    server: Server, route: str, headers: list[tuple[str, str]], status: int
) -> None:
    assert statuses(server, route, headers, status) == [200, 404]
    assert server.ran == ["GET /ok", "GET /status?code=404"]


@pytest.mark.parametrize(
    ("route", "headers"),
    [
        ("/batch", []),  # Google's: every part runs
        ("/batch", [*ODATA_4, ("Prefer", "odata.continue-on-error")]),
        ("/batch", [*ODATA_4, ("Prefer", "continue-on-error=true")]),
        ("/batch/graph", ODATA_4),  # multipart_dialect="google"
    ],
)
def test_other_batches_run_every_part(
    server: Server, route: str, headers: list[tuple[str, str]]
) -> None:
    assert statuses(server, route, headers) == [200, 404, 200]


def test_an_azure_storage_batch_is_accepted_and_runs_every_part(server: Server) -> None:
    # Azure's blob batch: x-ms-version and no OData header; every sub-request runs.
    assert statuses(server, "/batch", [("x-ms-version", "2026-10-06")], 202) == [200, 404, 200]


def test_a_json_odata_batch_runs_every_request(server: Server) -> None:
    # OData JSON 4.01 (section 19.5): without continue-on-error, every request is processed.
    data = encode_json_requests(
        [sub("GET", "/status?code=500", content_id="1"), sub("GET", "/ok", content_id="2")]
    )
    answer = post(server.base, "/batch", data, "application/json", ODATA_4)
    assert [part.status for part in answer.parts()] == [500, 200]


CHANGESET = (
    b"--" + BOUNDARY.encode() + b"\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n"
    b"--cs\r\nContent-Type: application/http\r\nContent-ID: 1\r\n\r\n"
    b"POST /set?key=a HTTP/1.1\r\n\r\n\r\n"
    b"--cs\r\nContent-Type: application/http\r\nContent-ID: 2\r\n\r\n"
    b"POST /status?code=409 HTTP/1.1\r\n\r\n\r\n--cs--\r\n"
)


@pytest.mark.parametrize(
    ("route", "answered"),
    [("/batch/tx", [("2", 409)]), ("/batch/tx-flat", [("2", 409)])],
    ids=["nested", "flat"],
)
def test_an_odata_batch_ends_with_a_failed_changeset(
    server: Server, route: str, answered: list[tuple[str, int]]
) -> None:
    after = encode_requests([sub("GET", "/ok")], BOUNDARY)
    answer = post(server.base, route, CHANGESET + after, headers=ODATA_4)
    assert [(cid, getattr(item, "status", None)) for cid, item in answer.tree()] == answered
    assert "GET /ok" not in server.ran


def test_an_odata_answer_is_spelt_as_odatas_servers_write_it(server: Server) -> None:
    answer = post(
        server.base,
        "/batch",
        encode_requests([sub("GET", "/ok")], BOUNDARY),
        headers=[("OData-Version", "4.01")],
    )
    assert answer.header("OData-Version") == "4.01"
    content_type = answer.header("Content-Type") or ""
    assert re.fullmatch(r"multipart/mixed; boundary=batchresponse_[0-9a-f-]{36}", content_type)
    assert (
        answer.body.count(
            b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
        )
        == 1
    )
    google = post(server.base, "/batch", encode_requests([sub("GET", "/ok")], BOUNDARY))
    assert google.header("OData-Version") is None
    assert b"Content-Transfer-Encoding" not in google.body
