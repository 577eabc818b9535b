"""Replay the batches the OData family's clients really send, captured byte for byte, against
the services they were captured from, and judge the answers with the ``email`` package.

Why: these bytes are what the clients of docs/odata-clients.md send (pyodata: no Content-ID,
relative targets, ``Content-Transfer-Encoding:binary``; office365: a MIME header block as the
preamble and bare LF; Azure: absolute targets, ``Content-ID`` 0, 1, ... in each changeset, a
signature per part), and the answer each needs (outer status, nested or flat changesets) is
pinned here without the clients, and faster. The clients' own tests: test_odata_clients.py.
"""

from __future__ import annotations

import email.message
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask

from tests.odata_services import azure_blob, azure_tables, odata_v2, sharepoint
from tests.odata_services.options import accepted, atomic, combined, flat_changesets
from tests.odata_services.store import RouteOptions, Store, no_options
from tests.wire_samples import (
    SAMPLES_DIR,
    parse_http_response,
    parse_multipart,
    part_bytes,
    parts_of,
    split_raw_request,
)

CLIENTS = ("pyodata", "azure-data-tables", "office365-rest-python-client", "azure-storage-blob")

#: An answer's statuses in order; a nested changeset answer is the list of its members'.
Statuses = list["int | Statuses"]


def no_seed(store: Store) -> None:
    """The sample starts from an empty database."""


def seed_customer(store: Store) -> None:
    store.query("INSERT INTO customers VALUES ('ALFKI', 'Alfreds', 'Berlin')")


def seed_people(store: Store) -> None:
    store.query("INSERT INTO tables VALUES ('people')")
    for row_key, properties in (("old", {"n": 0}), ("c", {"name": "C"}), ("gone", {})):
        entity = json.dumps({"PartitionKey": "p", "RowKey": row_key, **properties})
        store.query("INSERT INTO entities VALUES ('people', 'p', ?, ?, 1)", row_key, entity)


def seed_items(store: Store) -> None:
    for title in ("first", "second", "third"):
        store.query("INSERT INTO items (title) VALUES (?)", title)


def seed_photos(store: Store) -> None:
    store.query("INSERT INTO containers VALUES ('photos')")
    for name in ("a.jpg", "b.jpg", "c d.jpg"):
        store.query("INSERT INTO blobs (container, name, data) VALUES ('photos', ?, x'00')", name)


@dataclass(frozen=True)
class Replay:
    """A capture, the service it was captured from and the database it starts from, and what
    the answer must be: its status, each answer's status, the rows after."""

    path: str
    create_app: Callable[[Path, RouteOptions], tuple[Flask, Store]]
    options: RouteOptions
    seed: Callable[[Store], None]
    status: int
    statuses: Statuses
    rows: str  # a query, and what it must return
    expected_rows: list[tuple[object, ...]]


REPLAYS = [
    Replay(
        "pyodata/001-POST-batch.request.raw",
        odata_v2.create_app,
        accepted,
        no_seed,
        202,
        [201, 204, 200, 200],
        "SELECT * FROM customers",
        [("ALFKI", "Alfreds", "Berlin")],
    ),
    Replay(
        "pyodata/002-POST-batch-changeset.request.raw",
        odata_v2.create_app,
        combined(accepted, atomic),
        seed_customer,
        202,
        [[201, 201, 204], 200],  # nested: pyodata refuses a flat changeset answer
        "SELECT * FROM customers ORDER BY id",
        [("ALFKI", "Alfreds", "Hamburg"), ("BLAUS", "Blauer", None), ("BOLID", "Bólido", None)],
    ),
    Replay(
        "azure-data-tables/001-POST-batch-changeset.request.raw",
        azure_tables.create_app,
        atomic,  # 202 without an option: the batch carries DataServiceVersion: 3.0
        seed_people,
        202,
        [[201, 201, 204, 204, 204]],
        "SELECT rk, version FROM entities ORDER BY rk",
        [("a", 1), ("b", 1), ("c", 2), ("old", 2)],
    ),
    Replay(
        "office365-rest-python-client/001-POST-batch.request.raw",
        sharepoint.create_app,
        no_options,
        seed_items,
        200,
        [200, 200],
        "SELECT id, title FROM items",
        [(1, "first"), (2, "second"), (3, "third")],
    ),
    Replay(
        "office365-rest-python-client/002-POST-batch-changeset.request.raw",
        sharepoint.create_app,
        combined(flat_changesets, atomic),
        seed_items,
        200,
        [201, 200, 200, 200],  # flat: the client reads top-level answers only
        "SELECT id, title FROM items",
        [(2, "second"), (4, "fourth")],
    ),
    Replay(
        "azure-storage-blob/001-POST-batch.request.raw",
        azure_blob.create_app,
        no_options,  # 202 without an option: the batch carries x-ms-version
        seed_photos,
        202,
        [202, 202],
        "SELECT name, tier FROM blobs",
        [("b.jpg", "Hot")],
    ),
    Replay(
        "azure-storage-blob/002-POST-batch.request.raw",
        azure_blob.create_app,
        no_options,
        seed_photos,
        202,
        [200, 200],
        "SELECT name, tier FROM blobs ORDER BY name",
        [("a.jpg", "Cool"), ("b.jpg", "Cool"), ("c d.jpg", "Hot")],
    ),
]


def statuses_of(parts: list[email.message.Message]) -> Statuses:
    """Each answer's status, a changeset's nested; every answer strictly HTTP/1.1 with CRLF,
    a reason phrase and an exact Content-Length, which office365's client needs."""
    found: Statuses = []
    for part in parts:
        if part.is_multipart():
            found.append(statuses_of(parts_of(part)))
            continue
        assert part.get_content_type() == "application/http"
        answer = parse_http_response(part_bytes(part))
        assert int(answer.headers["content-length"]) == len(answer.body)
        found.append(answer.status)
    return found


def test_every_sample_has_a_replay() -> None:
    """A new capture of these clients dropped into tests/data must come with its replay."""
    on_disk = sorted(
        str(path.relative_to(SAMPLES_DIR))
        for client in CLIENTS
        for path in (SAMPLES_DIR / client).glob("*.raw")
    )
    assert on_disk == sorted(replay.path for replay in REPLAYS)


@pytest.mark.parametrize(
    "replay",
    [pytest.param(replay, id=replay.path) for replay in REPLAYS],
)
def test_sample_replays(replay: Replay, tmp_path: Path) -> None:
    raw = split_raw_request((SAMPLES_DIR / replay.path).read_bytes())
    app, store = replay.create_app(tmp_path / "db", replay.options)
    replay.seed(store)
    # The parts' absolute targets name the capture's host: it is the batch's Host too.
    headers = {
        name: value for name, value in raw.headers.items() if name not in ("host", "content-length")
    }
    response = app.test_client().open(
        raw.target,
        method=raw.method,
        base_url=f"http://{raw.headers['host']}",
        data=raw.body,
        headers=headers,
    )

    assert response.status_code == replay.status, response.get_data()
    assert response.mimetype == "multipart/mixed"
    data = response.get_data()
    if "gzip" in raw.headers.get("accept-encoding", ""):  # as the captured clients ask
        assert response.headers["Content-Encoding"] == "gzip"
        data = gzip.decompress(data)
    answers = parse_multipart(response.headers["Content-Type"], data)
    assert statuses_of(answers) == replay.statuses
    assert store.query(replay.rows) == replay.expected_rows
