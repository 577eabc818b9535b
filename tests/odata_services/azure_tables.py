"""An Azure Tables service for azure-data-tables, as Azurite serves it on a local port
(``http://127.0.0.1:PORT/<account>``): create a table, and insert, upsert (merge or
replace), update and delete entities, with Azure's statuses, headers and error documents.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from flask_batch import add_batch_route

from .azure import ACCOUNT, storage_headers
from .store import RouteOptions, Store, no_options

SCHEMA = """
CREATE TABLE tables (name TEXT PRIMARY KEY);
CREATE TABLE entities (
    tbl TEXT NOT NULL,
    pk TEXT NOT NULL,
    rk TEXT NOT NULL,
    properties TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (tbl, pk, rk)
);
"""

_ENTITY_KEY = re.compile(r"PartitionKey='((?:[^']|'')*)',RowKey='((?:[^']|'')*)'")
_MINIMAL = "application/json;odata=minimalmetadata;streaming=true;charset=utf-8"


def create_app(database: Path, options: RouteOptions = no_options) -> tuple[Flask, Store]:
    """The service on a fresh database at ``database``, its batch route at ``$batch``."""
    store = Store(database, SCHEMA)
    app = store.flask_app(__name__)

    def current(table: str, pk: str, rk: str) -> int | None:
        row = (
            store.connection()
            .execute(
                "SELECT version FROM entities WHERE tbl = ? AND pk = ? AND rk = ?",
                (table, pk, rk),
            )
            .fetchone()
        )
        return None if row is None else int(row[0])

    @app.post(f"/{ACCOUNT}/Tables")
    def create_table() -> Response:
        name = (request.get_json(silent=True) or {}).get("TableName")
        try:
            store.connection().execute("INSERT INTO tables VALUES (?)", (name,))
        except sqlite3.IntegrityError:
            return _error(409, "TableAlreadyExists", "The table specified already exists.")
        return _answer(204, {"Preference-Applied": "return-no-content"})

    @app.post(f"/{ACCOUNT}/<table>")
    def insert(table: str) -> Response:
        if not store.exists("tables", table):
            return _error(404, "TableNotFound", "The table specified does not exist.")
        entity = request.get_json(silent=True)
        if not isinstance(entity, dict) or "PartitionKey" not in entity or "RowKey" not in entity:
            return _error(
                400,
                "PropertiesNeedValue",
                "The values are not specified for all properties in the entity.",
            )
        pk, rk = entity["PartitionKey"], entity["RowKey"]
        try:
            store.connection().execute(
                "INSERT INTO entities VALUES (?, ?, ?, ?, 1)", (table, pk, rk, _properties(entity))
            )
        except sqlite3.IntegrityError:
            return _error(409, "EntityAlreadyExists", "The specified entity already exists.")
        headers = {"ETag": _etag(1), "Preference-Applied": "return-no-content"}
        if request.headers.get("Prefer") == "return-no-content":
            return _answer(204, headers)
        return _answer(201, headers, {**entity, "odata.etag": _etag(1)})

    @app.route(f"/{ACCOUNT}/<table>(<keys>)", methods=["PUT", "MERGE", "PATCH", "DELETE"])
    def entity(table: str, keys: str) -> Response:
        match = _ENTITY_KEY.fullmatch(keys)
        if match is None:
            return _error(400, "InvalidInput", "One of the request inputs is not valid.")
        pk, rk = (value.replace("''", "'") for value in match.groups())
        version = current(table, pk, rk)
        if_match = request.headers.get("If-Match")
        if if_match is not None and (version is None or if_match not in ("*", _etag(version))):
            if version is None:
                return _error(404, "ResourceNotFound", "The specified resource does not exist.")
            return _error(
                412,
                "UpdateConditionNotSatisfied",
                "The update condition specified in the request was not satisfied.",
            )
        connection = store.connection()
        if request.method == "DELETE":
            connection.execute(
                "DELETE FROM entities WHERE tbl = ? AND pk = ? AND rk = ?", (table, pk, rk)
            )
            return _answer(204, {})
        values = request.get_json(silent=True)
        if not isinstance(values, dict):
            return _error(400, "InvalidInput", "One of the request inputs is not valid.")
        properties = {} if request.method == "PUT" else _stored(connection, table, pk, rk)
        properties.update(values)
        new_version = (version or 0) + 1
        connection.execute(
            "INSERT OR REPLACE INTO entities VALUES (?, ?, ?, ?, ?)",
            (table, pk, rk, _properties(properties), new_version),
        )
        return _answer(204, {"ETag": _etag(new_version)})

    # The client posts its transactions to /<account>/$batch.
    add_batch_route(app, f"/{ACCOUNT}/$batch", **options(store))
    return app, store


def entities(store: Store, table: str) -> list[dict[str, Any]]:
    """The entities of ``table``, by partition and row key (what a test checks)."""
    rows = store.query("SELECT properties FROM entities WHERE tbl = ? ORDER BY pk, rk", table)
    return [json.loads(properties) for (properties,) in rows]


def _stored(connection: sqlite3.Connection, table: str, pk: str, rk: str) -> dict[str, Any]:
    row = connection.execute(
        "SELECT properties FROM entities WHERE tbl = ? AND pk = ? AND rk = ?", (table, pk, rk)
    ).fetchone()
    return {} if row is None else dict(json.loads(row[0]))


def _properties(entity: dict[str, Any]) -> str:
    """The entity's properties without OData annotations (``@odata.type`` and the like)."""
    return json.dumps({name: value for name, value in entity.items() if "@" not in name})


def _etag(version: int) -> str:
    return f"W/\"datetime'2026-01-01T00%3A00%3A{version:02d}.0000000Z'\""


def _answer(status: int, headers: dict[str, str], body: Any = None) -> Response:
    """An answer with the headers every Azure Tables answer carries."""
    response = Response(
        None if body is None else json.dumps(body),
        status=status,
        content_type=None if body is None else _MINIMAL,
    )
    response.headers.update(storage_headers({"DataServiceVersion": "3.0;", **headers}))
    if body is None:
        del response.headers["Content-Type"]
    return response


def _error(status: int, code: str, message: str) -> Response:
    """Azure Tables' JSON error document, and its ``x-ms-error-code`` header. Inside a
    transaction, Azure's message begins with the failing operation's index (``1:The
    specified entity already exists.``), which the client reads as
    ``TableTransactionError.index``: the member's place, which the batch route puts in the
    environ (``flask_batch.member_index``)."""
    member = request.environ.get("flask_batch.member_index")
    if member is not None:
        message = f"{member}:{message}"
    body = {"odata.error": {"code": code, "message": {"lang": "en-US", "value": message}}}
    return _answer(status, {"x-ms-error-code": code}, body)
