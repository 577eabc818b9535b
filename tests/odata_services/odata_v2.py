"""An OData V2 service for pyodata: a ``$metadata`` document and one entity set, Customers,
that can be read, created, updated (PATCH, MERGE, PUT) and deleted, in SAP Gateway's and
WCF Data Services' JSON ("verbose": ``{"d": ...}``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request

from flask_batch import add_batch_route

from .store import RouteOptions, Store, no_options

#: Where the service lives; pyodata posts its batches to ``<root>/$batch``.
ROOT = "/odata/shop"

SCHEMA = """
CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    company TEXT NOT NULL,
    city TEXT
);
"""

#: An EDMX document as WCF Data Services and SAP Gateway serve it (OData V2: EDM 2008/09).
METADATA = """<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx"
    xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata">
  <edmx:DataServices m:DataServiceVersion="2.0">
    <Schema Namespace="Shop" xmlns="http://schemas.microsoft.com/ado/2008/09/edm">
      <EntityType Name="Customer">
        <Key><PropertyRef Name="CustomerID"/></Key>
        <Property Name="CustomerID" Type="Edm.String" Nullable="false" MaxLength="10"/>
        <Property Name="CompanyName" Type="Edm.String" Nullable="false" MaxLength="40"/>
        <Property Name="City" Type="Edm.String" Nullable="true" MaxLength="15"/>
      </EntityType>
      <EntityContainer Name="ShopEntities" m:IsDefaultEntityContainer="true">
        <EntitySet Name="Customers" EntityType="Shop.Customer"/>
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
"""

#: What a V2 service says of itself on every answer.
VERSION_HEADERS = {"DataServiceVersion": "2.0"}


def create_app(database: Path, options: RouteOptions = no_options) -> tuple[Flask, Store]:
    """The service on a fresh database at ``database``, its batch route at ``$batch``."""
    store = Store(database, SCHEMA)
    app = store.flask_app(__name__)

    def entity(row: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
        key, company, city = row
        uri = f"{request.host_url.rstrip('/')}{ROOT}/Customers('{key}')"
        return {
            "__metadata": {"id": uri, "uri": uri, "type": "Shop.Customer"},
            "CustomerID": key,
            "CompanyName": company,
            "City": city,
        }

    def find(key: str) -> tuple[Any, ...] | None:
        row = (
            store.connection()
            .execute("SELECT id, company, city FROM customers WHERE id = ?", (key,))
            .fetchone()
        )
        return None if row is None else tuple(row)

    @app.get(f"{ROOT}/$metadata")
    def metadata() -> Response:
        return Response(METADATA, mimetype="application/xml", headers=VERSION_HEADERS)

    @app.get(f"{ROOT}/Customers")
    def customers() -> Response:
        rows = store.connection().execute("SELECT id, company, city FROM customers ORDER BY id")
        return _answer({"d": {"results": [entity(row) for row in rows]}})

    @app.post(f"{ROOT}/Customers")
    def create() -> Response:
        values = request.get_json(silent=True)
        if not isinstance(values, dict) or not values.get("CustomerID"):
            return _error(400, "Invalid", "CustomerID is required")
        if not values.get("CompanyName"):
            return _error(400, "Invalid", "CompanyName is required")
        key = values["CustomerID"]
        try:
            store.connection().execute(
                "INSERT INTO customers VALUES (?, ?, ?)",
                (key, values["CompanyName"], values.get("City")),
            )
        except sqlite3.IntegrityError:
            return _error(409, "Conflict", f"Customer {key!r} already exists")
        created = entity((key, values["CompanyName"], values.get("City")))
        response = _answer({"d": created}, 201)
        response.headers["Location"] = created["__metadata"]["uri"]
        return response

    @app.route(f"{ROOT}/Customers(<path:key>)", methods=["GET", "PATCH", "MERGE", "PUT", "DELETE"])
    def customer(key: str) -> Response:
        key = _literal(key)
        found = find(key)
        if found is None:
            return _error(404, "NotFound", f"No customer {key!r}")
        if request.method == "GET":
            return _answer({"d": entity(found)})
        if request.method == "DELETE":
            store.connection().execute("DELETE FROM customers WHERE id = ?", (key,))
            return _no_content()
        values = request.get_json(silent=True)
        if not isinstance(values, dict):
            return _error(400, "Invalid", "a JSON object is required")
        merged = {"CompanyName": found[1], "City": found[2]}
        if request.method == "PUT":  # replaces: what is not given is reset
            merged = {"CompanyName": None, "City": None}
        merged.update({name: values[name] for name in merged if name in values})
        if not merged["CompanyName"]:
            return _error(400, "Invalid", "CompanyName cannot be empty")
        store.connection().execute(
            "UPDATE customers SET company = ?, city = ? WHERE id = ?",
            (merged["CompanyName"], merged["City"], key),
        )
        return _no_content()

    add_batch_route(app, f"{ROOT}/$batch", **options(store))
    return app, store


def _literal(key: str) -> str:
    """A key as the URL spells it: ``'ALFKI'`` and ``CustomerID='ALFKI'`` are ALFKI."""
    key = key.removeprefix("CustomerID=")
    if len(key) >= 2 and key[0] == key[-1] == "'":
        return key[1:-1].replace("''", "'")
    return key


def _answer(payload: Any, status: int = 200) -> Response:
    response = jsonify(payload)
    response.status_code = status
    response.headers.update(VERSION_HEADERS)
    return response


def _no_content() -> Response:
    return Response(status=204, headers=VERSION_HEADERS)


def _error(status: int, code: str, message: str) -> Response:
    """OData V2's error document (JSON)."""
    return _answer({"error": {"code": code, "message": {"lang": "en", "value": message}}}, status)
