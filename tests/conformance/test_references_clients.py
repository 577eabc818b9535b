"""The clients' references (``$<id>``) resolved by every front end (docs/references.md).

Why: the clients send a reference as written and give a request the id it names
(``content_id=``); only a real server resolving it shows that the two halves agree, in
both formats: what the client queued inside ``with s.changeset():`` reaches the entity the
first member created, its ``If-Match`` is that entity's ETag, and a body's
``@odata.bind`` is its URL. The service is :meth:`.api.Api.items`.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import httpx
import pytest

from flask_batch.client import Batching
from flask_batch.client._core.formats import FormatName
from flask_batch.client.httpx import BatchTransport

from .conftest import Server

FORMATS: list[FormatName] = ["multipart", "json"]
ROUTE = "/service/$batch"


@pytest.mark.parametrize("format", FORMATS)
def test_batching_resolves_references_inside_a_changeset(
    server: Server, format: FormatName
) -> None:
    service = f"{server.base}/service"
    with Batching(server.base + ROUTE, timeout=10, format=format) as s:
        with s.changeset():
            created = s.request(
                "POST", f"{service}/Items", params={"id": "7"}, json={}, content_id="new"
            )
            updated = s.patch("$new", json={"name": "b"}, headers={"If-Match": "$new"})
            part = s.post("$new/Parts", json={"Item@odata.bind": "$new"})
        after = s.get("$new/Parts", params={"top": "1"}, depends_on=[created])
    assert [r.status_code for r in (created, updated, part, after)] == [201, 200, 200, 200]
    assert created.headers["Location"] == "Items(7)"
    assert updated.json()["path"] == "/service/Items(7)"
    assert updated.json()["headers"]["if-match"] == '"item-7"'
    origin = f"http://{urlsplit(server.base).netloc}"
    assert json.loads(part.json()["body"]) == {"Item@odata.bind": f"{origin}/service/Items(7)"}
    assert (after.json()["path"], after.json()["query"]) == ("/service/Items(7)/Parts", "top=1")
    assert set(server.api.ledger.committed) == {
        "POST /service/Items",
        "PATCH /service/Items(7)",
        "POST /service/Items(7)/Parts",
    }


@pytest.mark.parametrize("format", FORMATS)
def test_a_failed_reference_rolls_the_clients_changeset_back(
    server: Server, format: FormatName
) -> None:
    with Batching(server.base + ROUTE, timeout=10, format=format) as s, s.changeset():
        created = s.request("POST", f"{server.base}/service/Items?id=7", json={}, content_id="a")
        escaping = s.delete("$a/../../admin")
    assert escaping.status_code == 400
    assert escaping.json()["title"] == "Invalid reference"
    assert created.status_code == 424  # rolled back (multipart: the client's; JSON: the server's)
    assert server.api.ledger.committed == {}
    assert not any("/admin" in line for line in server.ran)


def test_the_sync_httpx_transport_resolves_references(server: Server) -> None:
    transport = BatchTransport(server.base + ROUTE)
    with (
        httpx.Client(transport=transport) as client,
        transport.batch(client) as scope,
        scope.changeset(),
    ):
        created = scope.post(f"{server.base}/service/Items?id=7", json={}, content_id="1")
        updated = scope.patch("$1/Parts", json={})
    assert [created.status_code, updated.status_code] == [201, 200]
    assert updated.json()["path"] == "/service/Items(7)/Parts"


@pytest.mark.parametrize("format", FORMATS)
def test_a_reference_outside_a_changeset_depends_on_what_it_names(
    server: Server, format: FormatName
) -> None:
    # The JSON format resolves a reference only to a request the referring one depends on
    # (OData JSON 4.01, 19.1): the client adds that dependency itself, in both formats, so the
    # two are sent, run and retried together.
    service = f"{server.base}/service"
    with Batching(server.base + ROUTE, timeout=10, format=format) as s:
        created = s.request("POST", f"{service}/Items", params={"id": "8"}, json={}, content_id="c")
        tagged = s.get(f"{service}/Items(8)", headers={"If-Match": "$c"})
        after = s.get("$c/Parts")
    assert [r.status_code for r in (created, tagged, after)] == [201, 200, 200]
    assert tagged.json()["headers"]["if-match"] == '"item-8"'
    assert after.json()["path"] == "/service/Items(8)/Parts"


def test_the_httpx_scope_adds_the_dependency_a_reference_implies(server: Server) -> None:
    transport = BatchTransport(server.base + ROUTE, format="json")
    with httpx.Client(transport=transport) as client, transport.batch(client) as scope:
        created = scope.post(f"{server.base}/service/Items?id=9", json={}, content_id="n")
        parts = scope.get("$n/Parts")
    assert [created.status_code, parts.status_code] == [201, 200]
    assert parts.json()["path"] == "/service/Items(9)/Parts"
