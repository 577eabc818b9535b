"""A SharePoint site for office365-rest-python-client (SharePoint's REST API, OData v3 in
its "verbose" JSON): the form digest of ``/_api/contextinfo``, and one list whose items can
be read, created and deleted, every write checked for a valid digest.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from flask_batch import add_batch_route

from .store import RouteOptions, Store, no_options

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: The site; the client posts its batches to ``<site>/_api/$batch``.
SITE = "/sites/team"
#: The list the tests write to, and the entity type SharePoint names its items by.
LIST_TITLE = "Tasks"
ITEM_TYPE = "SP.Data.TasksListItem"
#: The only bearer token the site accepts, and the form digest it hands out.
TOKEN = "sharepoint-test-token"
DIGEST = "0x5A1D,06 Dec 2026 18:00:00 -0000"

SCHEMA = """
CREATE TABLE items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL CHECK (title <> ''),
    status TEXT
);
"""

_LIST = f"{SITE}/_api/web/lists/getbytitle('{LIST_TITLE.lower()}')"
_VERBOSE = "application/json;odata=verbose;charset=utf-8"


def create_app(database: Path, options: RouteOptions = no_options) -> tuple[Flask, Store]:
    """The site on a fresh database at ``database``, its batch route at ``_api/$batch``."""
    store = Store(database, SCHEMA)
    app = store.flask_app(__name__)

    @app.before_request
    def authenticate() -> Response | None:
        """SharePoint Online: a bearer token on every request, a digest on every write."""
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _error(401, "-2147024891, System.UnauthorizedAccessException", "Access denied.")
        writes = request.method not in ("GET", "HEAD")
        digest = request.headers.get("X-RequestDigest")
        if writes and digest != DIGEST and not request.path.endswith(("/contextinfo", "/$batch")):
            return _error(
                403,
                "-2130575252, Microsoft.SharePoint.SPException",
                "The security validation for this page is invalid and might be corrupted.",
            )
        return None

    @app.post(f"{SITE}/_api/contextinfo")
    def contextinfo() -> Response:
        site = request.host_url.rstrip("/") + SITE
        info = {
            "__metadata": {"type": "SP.ContextWebInformation"},
            "FormDigestTimeoutSeconds": 1800,
            "FormDigestValue": DIGEST,
            "LibraryVersion": "16.0.0.0",
            "SiteFullUrl": site,
            "SupportedSchemaVersions": {
                "__metadata": {"type": "Collection(Edm.String)"},
                "results": ["14.0.0.0", "15.0.0.0"],
            },
            "WebFullUrl": site,
        }
        return _answer({"d": {"GetContextWebInformation": info}})

    @app.get(_LIST)
    def the_list() -> Response:
        return _answer(
            {
                "d": {
                    "__metadata": {"type": "SP.List"},
                    "Id": "0b6b8e2a-0000-4000-8000-000000000001",
                    "Title": LIST_TITLE,
                    "ListItemEntityTypeFullName": ITEM_TYPE,
                }
            }
        )

    @app.route(f"{_LIST}/items", methods=["GET", "POST"])
    def items() -> Response:
        connection = store.connection()
        if request.method == "GET":
            rows = connection.execute("SELECT id, title, status FROM items ORDER BY id")
            return _answer({"d": {"results": [_item(*row) for row in rows]}})
        values = request.get_json(silent=True) or {}
        try:
            cursor = connection.execute(
                "INSERT INTO items (title, status) VALUES (?, ?)",
                (values.get("Title") or "", values.get("Status")),
            )
        except sqlite3.IntegrityError:
            return _error(
                400,
                "-2130575155, Microsoft.SharePoint.SPFieldValidationException",
                "Title is required.",
            )
        return _answer(
            {"d": _item(cursor.lastrowid, values.get("Title"), values.get("Status"))}, 201
        )

    @app.route(f"{_LIST}/items(<int:item_id>)", methods=["GET", "POST", "DELETE"])
    @app.route(f"{_LIST}/items/getbyid(<int:item_id>)", methods=["GET", "POST", "DELETE"])
    def item(item_id: int) -> Response:
        connection = store.connection()
        row = connection.execute(
            "SELECT id, title, status FROM items WHERE id = ?", (item_id,)
        ).fetchone()
        if row is None:
            return _error(404, "-2147024809, System.ArgumentException", "Item does not exist.")
        # The client deletes with the DELETE verb, or POST and X-HTTP-Method: DELETE.
        if request.headers.get("X-HTTP-Method", request.method).upper() == "DELETE":
            connection.execute("DELETE FROM items WHERE id = ?", (item_id,))
            return Response(status=200)
        return _answer({"d": _item(*row)})

    add_batch_route(app, f"{SITE}/_api/$batch", **options(store))
    routed = app.wsgi_app

    def case_insensitive(
        environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """SharePoint's paths are case-insensitive (the client writes ``contextInfo`` and
        ``Web/lists``): every path is routed in lower case, batch parts too, since Flask-Batch
        dispatches them into ``app.wsgi_app``."""
        environ["PATH_INFO"] = environ.get("PATH_INFO", "").lower()
        return routed(environ, start_response)

    app.wsgi_app = case_insensitive  # type: ignore[method-assign]
    return app, store


def _item(item_id: int | None, title: str | None, status: str | None) -> dict[str, Any]:
    uri = f"{request.host_url.rstrip('/')}{_LIST}/items({item_id})"
    return {
        "__metadata": {"id": uri, "uri": uri, "etag": '"1"', "type": ITEM_TYPE},
        "Id": item_id,
        "ID": item_id,
        "Title": title,
        "Status": status,
    }


def _answer(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type=_VERBOSE)


def _error(status: int, code: str, message: str) -> Response:
    """SharePoint's OData v3 error document (verbose JSON)."""
    return _answer(
        {"error": {"code": code, "message": {"lang": "en-US", "value": message}}}, status
    )
