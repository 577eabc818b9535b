"""The batch route described in OpenAPI, for the API documents users already publish.

Why: FastAPI users expect every route in ``/docs``, and Flask users of apispec or
flask-smorest in their generated document; a batch route missing there looks like no route
at all. The route is answered before the framework routes anything (by the middlewares, or
by the Flask extension's own view), so no framework can describe it by itself:
:func:`batch_path_item` builds its description from the route's own options (the limits the
endpoint enforces and describes on ``OPTIONS``), and two one-line helpers put it into a
FastAPI application's document (:func:`add_to_fastapi`) or, for Flask, an apispec ``APISpec``
(:func:`flask_batch.flask.describe_batch_routes`). The description is plain data, valid in
OpenAPI 3.0 and 3.1 alike, and this module imports no framework.
"""

from __future__ import annotations

from typing import Any, Protocol, Unpack

from .options import BatchOptions, resolve_options
from .wire.model import Limits

__all__ = ["COMPONENTS", "add_to_fastapi", "batch_path_item", "path_item_for"]

_REF = "#/components/schemas/"
_HEADERS = {"type": "object", "additionalProperties": {"type": "string"}}

#: The schemas the path item refers to, to be put under ``components/schemas``.
COMPONENTS: dict[str, dict[str, Any]] = {
    "BatchJsonRequest": {
        "type": "object",
        "description": "A JSON batch (OData 4.01 JSON batch format, Microsoft Graph).",
        "required": ["requests"],
        "properties": {
            "requests": {"type": "array", "items": {"$ref": _REF + "BatchJsonRequestItem"}}
        },
    },
    "BatchJsonRequestItem": {
        "type": "object",
        "required": ["id", "method", "url"],
        "properties": {
            "id": {"type": "string", "description": "Unique within the batch."},
            "method": {"type": "string", "example": "GET"},
            "url": {
                "type": "string",
                "description": "An absolute path, a path relative to the batch URL, or an "
                "absolute URL of the batch's own origin.",
            },
            "headers": _HEADERS,
            "body": {
                "description": "The JSON value itself under a JSON media type, a string "
                "under text/*, base64url otherwise."
            },
            "dependsOn": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Ids of earlier requests (or of an atomic group) that must "
                "answer 2xx first; otherwise this one is answered 424 without running.",
            },
            "atomicityGroup": {
                "type": "string",
                "minLength": 1,
                "description": "The members of a group are adjacent and applied all or nothing.",
            },
        },
    },
    "BatchJsonResponse": {
        "type": "object",
        "required": ["responses"],
        "properties": {
            "responses": {"type": "array", "items": {"$ref": _REF + "BatchJsonResponseItem"}}
        },
    },
    "BatchJsonResponseItem": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "integer", "minimum": 100, "maximum": 599},
            "headers": {
                "type": "object",
                "description": "A header the application repeats is a list of strings.",
                "additionalProperties": {
                    "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
                },
            },
            "body": {"description": "As in a request."},
            "bodyEncoding": {
                "type": "string",
                "enum": ["base64url"],
                "description": "The body is not what its type says, so it travels base64url.",
            },
            "atomicityGroup": {"type": "string"},
        },
    },
    "BatchProblem": {
        "type": "object",
        "description": "RFC 9457 problem details: why the whole batch was refused.",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
        },
    },
}

_BINARY = {"type": "string", "format": "binary"}
_MULTIPART_EXAMPLE = (
    "--batch_1\r\nContent-Type: application/http\r\nContent-ID: 1\r\n\r\n"
    "GET /people/alice HTTP/1.1\r\n\r\n--batch_1--\r\n"
)
_JSON_EXAMPLE = {
    "requests": [
        {
            "id": "1",
            "method": "PATCH",
            "url": "/people/alice",
            "headers": {"Content-Type": "application/json"},
            "body": {"age": 31},
        },
        {"id": "2", "method": "GET", "url": "/people/alice/todos", "dependsOn": ["1"]},
    ]
}
_JSON_ANSWER_EXAMPLE = {
    "responses": [
        {
            "id": "1",
            "status": 200,
            "headers": {"Content-Type": "application/json"},
            "body": {"name": "alice", "age": 31},
        },
        {"id": "2", "status": 200, "headers": {"Content-Type": "application/json"}, "body": []},
    ]
}


def _problem(description: str) -> dict[str, Any]:
    schema = {"$ref": _REF + "BatchProblem"}
    return {"description": description, "content": {"application/problem+json": {"schema": schema}}}


def batch_path_item(**options: Unpack[BatchOptions]) -> dict[str, Any]:
    """The OpenAPI path item of a batch route given these options (the route's keywords).

    Its schemas are :data:`COMPONENTS`; the limits in its text and its ``maxItems`` are the
    ones the route enforces.
    """
    settings = resolve_options({}, options)
    return path_item_for(settings.limits, described=not settings.routing.shared_path)


def path_item_for(limits: Limits, name: str = "batch", *, described: bool = True) -> dict[str, Any]:
    """The OpenAPI path item of a batch route that enforces ``limits``.

    ``name`` makes its operation ids (``batch_send``, ``batch_describe``) unique in a
    document with several batch routes; ``described``: whether GET on the route describes it
    (not on a path shared with the application's views).
    """
    description = (
        "Each request runs through the application's whole request pipeline, as if it had "
        "arrived alone, and the answers come back in the order sent. Two formats: "
        "multipart/mixed (Google's and OData's: one application/http part per request, "
        "changesets for atomic groups) and JSON (OData 4.01 and Microsoft Graph). "
        f"At most {limits.max_parts} requests, {limits.max_body_size} bytes of body and "
        f"{limits.max_part_size} bytes per part."
    )
    json_request = {
        "allOf": [{"$ref": _REF + "BatchJsonRequest"}],
        "properties": {"requests": {"type": "array", "maxItems": limits.max_parts}},
    }
    answers = {
        "multipart/mixed": {"schema": _BINARY},
        "application/json": {
            "schema": {"$ref": _REF + "BatchJsonResponse"},
            "example": _JSON_ANSWER_EXAMPLE,
        },
    }
    post = {
        "operationId": f"{name}_send",
        "summary": "Send many requests as one batch",
        "description": description,
        "tags": ["batch"],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/mixed": {"schema": _BINARY, "example": _MULTIPART_EXAMPLE},
                "application/json": {"schema": json_request, "example": _JSON_EXAMPLE},
            },
        },
        "responses": {
            "200": {"description": "Every request's answer, in order.", "content": answers},
            "202": {
                "description": "The same, to clients of OData 1.0 to 3.0 and Azure Storage.",
                "content": answers,
            },
            "400": _problem("The batch is malformed; the problem says where."),
            "411": _problem("The batch request has no length."),
            "413": _problem("The batch exceeds a limit, which the problem names."),
            "415": _problem("The batch is neither multipart/mixed nor JSON."),
        },
    }
    describe = {
        "operationId": f"{name}_describe",
        "summary": "What the batch route accepts: its formats and limits",
        "tags": ["batch"],
        "responses": {
            "200": {
                "description": "The route's formats, limits and conventions.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    }
    return {"post": post, "get": describe} if described else {"post": post}


class _FastAPI(Protocol):
    """What :func:`add_to_fastapi` uses of a FastAPI application."""

    openapi_schema: dict[str, Any] | None

    def openapi(self) -> dict[str, Any]: ...


def add_to_fastapi(app: _FastAPI, path: str = "/batch", **options: Unpack[BatchOptions]) -> None:
    """Describe the batch route in a FastAPI application's OpenAPI document (``/docs``).

    Give it the path and options the ASGI middleware was given. FastAPI builds its document
    once, on first use: this wraps that build so the document has the batch route.
    """
    build = app.openapi
    item = batch_path_item(**options)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            document.setdefault("paths", {})[path] = item
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(COMPONENTS)
            app.openapi_schema = document
        return app.openapi_schema

    # FastAPI's documented way to change the document: replace the app's openapi().
    app.openapi = openapi  # type: ignore[method-assign]
