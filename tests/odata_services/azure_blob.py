"""An Azure Blob service for azure-storage-blob, as Azurite serves it on a local port
(``http://127.0.0.1:PORT/<account>``): create a container, upload, read and delete block
blobs and set their tier, with Azure's statuses, ``x-ms-*`` headers and XML errors, and the
blob batch (``POST ?comp=batch``) of ``delete_blobs`` and ``set_standard_blob_tier_blobs``.

The blob batch shares its path (``/<account>/<container>``, query
``restype=container&comp=batch``) with the container's own operations (create, properties,
list, delete: PUT, GET, HEAD, DELETE with other queries), so its batch route is mounted
there as Azure mounts it, on a shared path: it takes ``POST ...?comp=batch``, and the
container's view every other request (docs/odata-clients.md, "Routing").
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from xml.sax.saxutils import escape

from flask import Flask, Response, request
from flask.typing import ResponseReturnValue

from flask_batch import add_batch_route

from .azure import ACCOUNT, storage_headers
from .store import RouteOptions, Store, no_options

#: The container's path, which the batch route shares with the container's own view.
CONTAINER = f"/{ACCOUNT}/<container>"

SCHEMA = """
CREATE TABLE containers (name TEXT PRIMARY KEY);
CREATE TABLE blobs (
    container TEXT NOT NULL,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    tier TEXT NOT NULL DEFAULT 'Hot',
    PRIMARY KEY (container, name)
);
"""

_TIERS = {"Hot", "Cool", "Cold", "Archive"}


def create_app(database: Path, options: RouteOptions = no_options) -> tuple[Flask, Store]:
    """The service on a fresh database at ``database``."""
    store = Store(database, SCHEMA)
    app = store.flask_app(__name__)

    @app.route(CONTAINER, methods=["PUT"])
    def container(container: str) -> ResponseReturnValue:
        if request.args.get("restype") == "container":
            if store.exists("containers", container):
                return _error(
                    409, "ContainerAlreadyExists", "The specified container already exists."
                )
            store.connection().execute("INSERT INTO containers VALUES (?)", (container,))
            return _answer(201, {"ETag": '"0x8D0000000000001"'})
        return _error(
            400, "UnsupportedHttpVerb", "The resource doesn't support specified Http Verb."
        )

    @app.route(f"/{ACCOUNT}/<container>/<path:name>", methods=["PUT", "GET", "DELETE"])
    def blob(container: str, name: str) -> Response:
        if not store.exists("containers", container):
            return _error(404, "ContainerNotFound", "The specified container does not exist.")
        connection = store.connection()
        key = (container, name)
        if request.method == "PUT" and request.args.get("comp") == "tier":
            tier = request.headers.get("x-ms-access-tier", "")
            if tier not in _TIERS:
                return _error(
                    400,
                    "InvalidHeaderValue",
                    "The value for one of the HTTP headers is not in the correct format.",
                )
            changed = connection.execute(
                "UPDATE blobs SET tier = ? WHERE container = ? AND name = ?", (tier, *key)
            )
            if changed.rowcount == 0:
                return _error(404, "BlobNotFound", "The specified blob does not exist.")
            return _answer(200, {})
        if request.method == "PUT":
            data = request.get_data()
            connection.execute(
                "INSERT OR REPLACE INTO blobs (container, name, data) VALUES (?, ?, ?)",
                (*key, data),
            )
            md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
            return _answer(
                201,
                {"ETag": _etag(data), "Content-MD5": md5, "x-ms-request-server-encrypted": "true"},
            )
        row = connection.execute(
            "SELECT data, tier FROM blobs WHERE container = ? AND name = ?", key
        ).fetchone()
        if row is None:
            return _error(404, "BlobNotFound", "The specified blob does not exist.")
        if request.method == "DELETE":
            connection.execute("DELETE FROM blobs WHERE container = ? AND name = ?", key)
            return _answer(202, {"x-ms-delete-type-permanent": "true"})
        data, tier = bytes(row[0]), row[1]
        headers = {
            "ETag": _etag(data),
            "x-ms-blob-type": "BlockBlob",
            "x-ms-access-tier": tier,
            "Content-Type": "application/octet-stream",
        }
        # The client downloads by ranges (x-ms-range: bytes=0-N), answered 206.
        first, _, last = request.headers.get("x-ms-range", "").removeprefix("bytes=").partition("-")
        if not first:
            return _answer(200, headers, data)
        end = min(int(last), len(data) - 1) if last else len(data) - 1
        headers["Content-Range"] = f"bytes {first}-{end}/{len(data)}"
        return _answer(206, headers, data[int(first) : end + 1])

    add_batch_route(
        app, CONTAINER, "blob_batch", shared_path=True, batch_query="comp=batch", **options(store)
    )
    return app, store


def blobs(store: Store, container: str) -> dict[str, str]:
    """The blobs of ``container``, each with its tier (what a test checks)."""
    rows = store.query("SELECT name, tier FROM blobs WHERE container = ? ORDER BY name", container)
    return dict(rows)


def _etag(data: bytes) -> str:
    return f'"0x{hashlib.sha1(data).hexdigest()[:15].upper()}"'


def _answer(status: int, headers: dict[str, str], body: bytes = b"") -> Response:
    """An answer with the headers every Azure Storage answer carries."""
    response = Response(body, status=status)
    del response.headers["Content-Type"]
    response.headers.update(
        storage_headers({"Last-Modified": "Thu, 01 Jan 2026 00:00:00 GMT", **headers})
    )
    return response


def _error(status: int, code: str, message: str) -> Response:
    """Azure Storage's XML error document, and its ``x-ms-error-code`` header."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
    ).encode()
    return _answer(status, {"x-ms-error-code": code, "Content-Type": "application/xml"}, body)
