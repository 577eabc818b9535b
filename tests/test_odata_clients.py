"""End to end: the OData family's own clients batch against Flask-Batch over a real socket.

Why: pyodata (OData V2), azure-data-tables (transactions), office365-rest-python-client
(SharePoint, OData v3) and azure-storage-blob (blob batch) were written against SAP Gateway,
Azure and SharePoint, not against us; each is run here as its users run it, against a service
that answers as the real one does (tests/odata_services/), writing to a real SQLite database
that the tests query. What each client sends and requires: docs/odata-clients.md.

The same services and clients also run without a batch, so a failure of a batch test is
the batch's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyodata
import pytest
import requests
from azure.core.credentials import AzureNamedKeyCredential
from azure.data.tables import TableServiceClient, TableTransactionError, UpdateMode
from azure.storage.blob import BlobServiceClient, PartialBatchErrorException, StandardBlobTier
from flask import Flask
from office365.runtime.auth.token_response import TokenResponse
from office365.runtime.client_request_exception import ClientRequestException
from office365.sharepoint.client_context import ClientContext
from pyodata.exceptions import HttpError

from tests.odata_services import azure_blob, azure_tables, odata_v2, sharepoint
from tests.odata_services.azure import ACCOUNT, ACCOUNT_KEY
from tests.odata_services.options import accepted, atomic, combined, flat_changesets
from tests.odata_services.store import RouteOptions, Store, no_options
from tests.servers import live_server


@contextmanager
def serving(
    create_app: Callable[[Path, RouteOptions], tuple[Flask, Store]],
    database: Path,
    options: RouteOptions = no_options,
) -> Iterator[tuple[str, Store]]:
    """A fresh service on a real socket (its base URL) and its database, its batch route
    with ``options``. Called in the test, so that a refused option fails the test, not a
    fixture."""
    app, store = create_app(database, options)
    with live_server(app) as base:
        yield base, store


# --------------------------------------------------------------------------------------
# pyodata: an OData V2 service (SAP Gateway's dialect)
# --------------------------------------------------------------------------------------


@contextmanager
def pyodata_service(base: str) -> Iterator[Any]:
    """pyodata's service proxy, built from the service's $metadata, as its users build it."""
    with requests.Session() as session:
        yield pyodata.Client(f"{base}{odata_v2.ROOT}/", session)


def customers(store: Store) -> list[tuple[Any, ...]]:
    return store.query("SELECT id, company, city FROM customers ORDER BY id")


def test_pyodata_without_a_batch(tmp_path: Path) -> None:
    """The service as pyodata uses it one request at a time (passes today)."""
    with (
        serving(odata_v2.create_app, tmp_path / "db") as (base, store),
        pyodata_service(base) as service,
    ):
        entities = service.entity_sets.Customers
        created = entities.create_entity().set(CustomerID="ALFKI", CompanyName="Alfreds")
        assert created.execute().CompanyName == "Alfreds"
        entities.update_entity("ALFKI").set(City="Berlin").execute()
        assert entities.get_entity("ALFKI").execute().City == "Berlin"
    assert customers(store) == [("ALFKI", "Alfreds", "Berlin")]


def test_pyodata_batch(tmp_path: Path) -> None:
    """A batch without changesets: every answer goes to its request, in order."""
    with (
        serving(odata_v2.create_app, tmp_path / "db", accepted) as (base, store),
        pyodata_service(base) as service,
    ):
        entities = service.entity_sets.Customers
        batch = service.create_batch()
        batch.add_request(entities.create_entity().set(CustomerID="ALFKI", CompanyName="Alfreds"))
        batch.add_request(entities.update_entity("ALFKI").set(City="Berlin"))
        batch.add_request(entities.get_entity("ALFKI"))
        batch.add_request(entities.get_entities())
        created, updated, read, listed = batch.execute()
    assert created.CustomerID == "ALFKI"
    assert updated is None  # 204: pyodata returns nothing for an update
    assert (read.CompanyName, read.City) == ("Alfreds", "Berlin")
    assert [customer.CustomerID for customer in listed] == ["ALFKI"]
    assert customers(store) == [("ALFKI", "Alfreds", "Berlin")]


def pyodata_changeset(service: Any, second_id: str) -> Any:
    """A batch of one changeset (two creates and an update) and a read after it."""
    entities = service.entity_sets.Customers
    batch = service.create_batch()
    changeset = service.create_changeset()
    changeset.add_request(entities.create_entity().set(CustomerID="BLAUS", CompanyName="Blauer"))
    changeset.add_request(entities.create_entity().set(CustomerID=second_id, CompanyName="Bólido"))
    changeset.add_request(entities.update_entity("ALFKI").set(City="Hamburg"))
    batch.add_request(changeset)
    batch.add_request(entities.get_entities())
    return batch


def test_pyodata_changeset_commits(tmp_path: Path) -> None:
    with serving(odata_v2.create_app, tmp_path / "db", combined(accepted, atomic)) as (base, store):
        store.query("INSERT INTO customers VALUES ('ALFKI', 'Alfreds', 'Berlin')")
        with pyodata_service(base) as service:
            (first, second, updated), listed = pyodata_changeset(service, "BOLID").execute()
    assert (first.CustomerID, second.CompanyName, updated) == ("BLAUS", "Bólido", None)
    assert [customer.CustomerID for customer in listed] == ["ALFKI", "BLAUS", "BOLID"]
    assert customers(store) == [
        ("ALFKI", "Alfreds", "Hamburg"),
        ("BLAUS", "Blauer", None),
        ("BOLID", "Bólido", None),
    ]
    assert [step.split()[0] for step in store.groups] == ["begin", "commit"]


def test_pyodata_failed_changeset_is_rolled_back(tmp_path: Path) -> None:
    """The second create is a duplicate: pyodata raises with that member's answer (the
    changeset answered by one part), and nothing of the changeset stays."""
    with serving(odata_v2.create_app, tmp_path / "db", combined(accepted, atomic)) as (base, store):
        store.query("INSERT INTO customers VALUES ('ALFKI', 'Alfreds', 'Berlin')")
        with pyodata_service(base) as service, pytest.raises(HttpError) as raised:
            pyodata_changeset(service, "ALFKI").execute()
    assert "single response received, status code: 409" in str(raised.value)
    assert raised.value.response.status_code == 409
    assert raised.value.response.json()["error"]["code"] == "Conflict"
    assert customers(store) == [("ALFKI", "Alfreds", "Berlin")]
    assert [step.split()[0] for step in store.groups] == ["begin", "rollback"]


# --------------------------------------------------------------------------------------
# azure-data-tables: transactions (one changeset per batch)
# --------------------------------------------------------------------------------------


@contextmanager
def people_table(base: str) -> Iterator[Any]:
    """A table client on the local endpoint, its table created and seeded with one entity;
    no retries, so that a failure shows at once."""
    credential = AzureNamedKeyCredential(ACCOUNT, ACCOUNT_KEY)
    endpoint = f"{base}/{ACCOUNT}"
    with TableServiceClient(endpoint, credential=credential, retry_total=0) as tables:
        table = tables.create_table("people")
        table.upsert_entity({"PartitionKey": "p", "RowKey": "old", "n": 0})
        yield table


def tables_transaction(second_row_key: str) -> list[Any]:
    """Five operations, the second a create of ``second_row_key``."""
    return [
        ("create", {"PartitionKey": "p", "RowKey": "a", "name": "Ada"}),
        ("create", {"PartitionKey": "p", "RowKey": second_row_key, "name": "Bob"}),
        ("upsert", {"PartitionKey": "p", "RowKey": "old", "n": 1}, {"mode": UpdateMode.MERGE}),
        (
            "update",
            {"PartitionKey": "p", "RowKey": "c", "name": "Cy"},
            {"mode": UpdateMode.REPLACE},
        ),
        ("delete", {"PartitionKey": "p", "RowKey": "gone"}),
    ]


def seed_tables(store: Store) -> None:
    for row_key, properties in (("c", {"name": "C"}), ("gone", {})):
        entity = {"PartitionKey": "p", "RowKey": row_key, **properties}
        store.query(
            "INSERT INTO entities VALUES ('people', 'p', ?, ?, 1)", row_key, json.dumps(entity)
        )


def test_tables_without_a_transaction(tmp_path: Path) -> None:
    """The service as azure-data-tables uses it one request at a time (passes today)."""
    with (
        serving(azure_tables.create_app, tmp_path / "db") as (base, store),
        people_table(base) as table,
    ):
        table.create_entity({"PartitionKey": "p", "RowKey": "a", "name": "Ada"})
        table.update_entity({"PartitionKey": "p", "RowKey": "a", "age": 36})
        table.delete_entity("p", "old")
    assert azure_tables.entities(store, "people") == [
        {"PartitionKey": "p", "RowKey": "a", "name": "Ada", "age": 36}
    ]


def test_tables_transaction_commits(tmp_path: Path) -> None:
    """The batch says it is OData V3 (DataServiceVersion 3.0): answered 202 with no option."""
    with (
        serving(azure_tables.create_app, tmp_path / "db", atomic) as (base, store),
        people_table(base) as table,
    ):
        seed_tables(store)
        results = table.submit_transaction(tables_transaction("b"))
    assert len(results) == 5
    assert all(result["etag"].startswith('W/"datetime') for result in results[:4])
    assert azure_tables.entities(store, "people") == [
        {"PartitionKey": "p", "RowKey": "a", "name": "Ada"},
        {"PartitionKey": "p", "RowKey": "b", "name": "Bob"},
        {"PartitionKey": "p", "RowKey": "c", "name": "Cy"},
        {"PartitionKey": "p", "RowKey": "old", "n": 1},
    ]


def test_tables_failed_transaction_is_rolled_back(tmp_path: Path) -> None:
    """The second create is a duplicate: TableTransactionError with Azure's code, and the
    table as it was."""
    with (
        serving(azure_tables.create_app, tmp_path / "db", atomic) as (base, store),
        people_table(base) as table,
    ):
        seed_tables(store)
        before = azure_tables.entities(store, "people")
        with pytest.raises(TableTransactionError) as raised:
            table.submit_transaction(tables_transaction("a"))
    assert raised.value.status_code == 409
    assert raised.value.message.endswith("ErrorCode:EntityAlreadyExists")
    # The failing member's place, which the service read from flask_batch.member_index.
    assert raised.value.index == 1
    assert azure_tables.entities(store, "people") == before


def test_tables_error_names_the_failing_member_wherever_it_is(tmp_path: Path) -> None:
    """A duplicate fourth operation: ``index`` 3, as Azure writes it ("3:The specified...")."""
    operations = tables_transaction("b")
    operations[3] = ("create", {"PartitionKey": "p", "RowKey": "c", "name": "again"})
    with (
        serving(azure_tables.create_app, tmp_path / "db", atomic) as (base, store),
        people_table(base) as table,
    ):
        seed_tables(store)
        with pytest.raises(TableTransactionError) as raised:
            table.submit_transaction(operations)
    assert raised.value.index == 3
    assert raised.value.message.startswith("3:The specified entity already exists.")


# --------------------------------------------------------------------------------------
# office365-rest-python-client: SharePoint's REST API (OData v3)
# --------------------------------------------------------------------------------------


def sharepoint_site(base: str) -> ClientContext:
    """The client with an access token of its own, as an app that got one elsewhere uses it."""
    token = TokenResponse(access_token=sharepoint.TOKEN, token_type="Bearer")
    return ClientContext(f"{base}{sharepoint.SITE}").with_access_token(lambda: token)


def items(store: Store) -> list[tuple[Any, ...]]:
    return store.query("SELECT id, title, status FROM items ORDER BY id")


def seed_items(store: Store) -> None:
    for title in ("first", "second", "third"):
        store.query("INSERT INTO items (title) VALUES (?)", title)


def test_sharepoint_without_a_batch(tmp_path: Path) -> None:
    """The site as the client uses it one request at a time (passes today)."""
    with serving(sharepoint.create_app, tmp_path / "db") as (base, store):
        seed_items(store)
        tasks = sharepoint_site(base).web.lists.get_by_title(sharepoint.LIST_TITLE)
        first, second, third = tasks.items.get().execute_query()
        added = tasks.add_item({"Title": "fourth", "Status": "new"}).execute_query()
        first.delete_object().execute_query()
    assert [item.properties["Title"] for item in (first, second, third)] == [
        "first",
        "second",
        "third",
    ]
    assert added.properties["Id"] == 4
    assert items(store) == [(2, "second", None), (3, "third", None), (4, "fourth", "new")]


def test_sharepoint_batch_of_reads(tmp_path: Path) -> None:
    """Reads alone go without a changeset, and today's answers suit the client (passes
    today): each answer goes to its read, in order."""
    with serving(sharepoint.create_app, tmp_path / "db") as (base, store):
        seed_items(store)
        site = sharepoint_site(base)
        tasks = site.web.lists.get_by_title(sharepoint.LIST_TITLE)
        all_items = tasks.items.get()
        second = tasks.items.get_by_id(2).get()
        site.execute_batch()
    assert [item.properties["Title"] for item in all_items] == ["first", "second", "third"]
    assert second.properties["Title"] == "second"


def test_sharepoint_batch_with_changeset(tmp_path: Path) -> None:
    """An item added and two deleted, and the items read after: the client sends a first
    batch for the list's item type, then one changeset of the three writes and the read."""
    options = combined(flat_changesets, atomic)
    with serving(sharepoint.create_app, tmp_path / "db", options) as (base, store):
        seed_items(store)
        site = sharepoint_site(base)
        tasks = site.web.lists.get_by_title(sharepoint.LIST_TITLE)
        first, _, third = tasks.items.get().execute_query()
        added = tasks.add_item({"Title": "fourth"})
        first.delete_object()
        third.delete_object()
        after = tasks.items.get()
        site.execute_batch()
    assert added.properties["Id"] == 4
    assert [item.properties["Title"] for item in after] == ["second", "fourth"]
    assert items(store) == [(2, "second", None), (4, "fourth", None)]


def test_sharepoint_failed_changeset_is_rolled_back(tmp_path: Path) -> None:
    """The second delete names a missing item: the client raises SharePoint's error, and no
    item is gone."""
    options = combined(flat_changesets, atomic)
    with serving(sharepoint.create_app, tmp_path / "db", options) as (base, store):
        seed_items(store)
        site = sharepoint_site(base)
        tasks = site.web.lists.get_by_title(sharepoint.LIST_TITLE)
        for item_id in (1, 99, 3):
            tasks.items.get_by_id(item_id).delete_object()
        with pytest.raises(ClientRequestException) as raised:
            site.execute_batch()
    assert "Item does not exist." in str(raised.value)
    assert items(store) == [(1, "first", None), (2, "second", None), (3, "third", None)]


# --------------------------------------------------------------------------------------
# azure-storage-blob: the blob batch (delete_blobs, set_standard_blob_tier_blobs)
# --------------------------------------------------------------------------------------


@contextmanager
def photos(base: str) -> Iterator[Any]:
    """A container client on the local endpoint, its container created with three blobs."""
    credential = AzureNamedKeyCredential(ACCOUNT, ACCOUNT_KEY)
    endpoint = f"{base}/{ACCOUNT}"
    with BlobServiceClient(endpoint, credential=credential, retry_total=0) as service:
        container = service.create_container("photos")
        for name in ("a.jpg", "b.jpg", "c d.jpg"):
            container.upload_blob(name, b"pixels of " + name.encode())
        yield container


def test_blob_without_a_batch(tmp_path: Path) -> None:
    """The service as azure-storage-blob uses it one request at a time (passes today)."""
    with (
        serving(azure_blob.create_app, tmp_path / "db") as (base, store),
        photos(base) as container,
    ):
        assert container.download_blob("c d.jpg").readall() == b"pixels of c d.jpg"
        container.get_blob_client("b.jpg").set_standard_blob_tier(StandardBlobTier.COOL)
        container.delete_blob("a.jpg")
    assert azure_blob.blobs(store, "photos") == {"b.jpg": "Cool", "c d.jpg": "Hot"}


def test_blob_delete_blobs(tmp_path: Path) -> None:
    """No route option: the batch carries x-ms-version, so "auto" answers 202, as Azure does
    and the client requires; the batch route is at the container's path, as Azure's is."""
    with (
        serving(azure_blob.create_app, tmp_path / "db") as (base, store),
        photos(base) as container,
    ):
        answers = list(container.delete_blobs("a.jpg", "c d.jpg"))
    assert [answer.status_code for answer in answers] == [202, 202]
    assert answers[0].headers["x-ms-delete-type-permanent"] == "true"
    assert azure_blob.blobs(store, "photos") == {"b.jpg": "Hot"}


def test_blob_set_standard_blob_tier_blobs(tmp_path: Path) -> None:
    with (
        serving(azure_blob.create_app, tmp_path / "db") as (base, store),
        photos(base) as container,
    ):
        answers = list(
            container.set_standard_blob_tier_blobs(StandardBlobTier.COOL, "a.jpg", "b.jpg")
        )
    assert [answer.status_code for answer in answers] == [200, 200]
    assert azure_blob.blobs(store, "photos") == {"a.jpg": "Cool", "b.jpg": "Cool", "c d.jpg": "Hot"}


def test_blob_batch_is_not_atomic(tmp_path: Path) -> None:
    """As on Azure, a blob batch is no changeset: a missing blob fails its own delete, the
    client raises with every answer, and the other deletes stay done."""
    with (
        serving(azure_blob.create_app, tmp_path / "db") as (base, store),
        photos(base) as container,
        pytest.raises(PartialBatchErrorException) as raised,
    ):
        container.delete_blobs("a.jpg", "missing.jpg", "c d.jpg")
    assert [part.status_code for part in raised.value.parts] == [202, 404, 202]
    assert raised.value.parts[1].headers["x-ms-error-code"] == "BlobNotFound"
    assert azure_blob.blobs(store, "photos") == {"b.jpg": "Hot"}
