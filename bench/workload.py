"""The benchmarks' application and workload, the same for every scenario.

It imports only Flask and the standard library and runs on Flask 1.1 as well as Flask 3, so
that the alpha release (``flask-batch==0.0.2``, in its own virtual environment) serves the
very same application and reads the very same batch bodies as this package.

The workload is N small JSON calls on a collection of items: even calls ``GET /items/<k>``,
odd calls ``PATCH /items/<k>`` with a small JSON body, ``k = i % ITEMS``. ``PUT /blobs/<name>``
streams a binary body into a hash, without keeping it, for the memory benchmark. The same
calls travel as a multipart batch (``batch_body``) or as a JSON batch (``json_batch_body``).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from flask import Flask, Response, jsonify, request

ITEMS = 100
BOUNDARY = "bench-boundary-7c1f0e"


class Call(NamedTuple):
    method: str
    path: str
    body: dict[str, Any] | None

    @property
    def item(self) -> int:
        return int(self.path.rsplit("/", 1)[1])


def calls(n: int) -> list[Call]:
    """The workload of ``n`` calls: alternately a GET and a PATCH with a JSON body."""
    return [
        Call("GET", f"/items/{i % ITEMS}", None)
        if i % 2 == 0
        else Call("PATCH", f"/items/{i % ITEMS}", {"count": i, "note": f"update {i}"})
        for i in range(n)
    ]


def create_app(add_batch_route: Callable[[Flask], object] | None = None) -> Flask:
    """A small JSON API; ``add_batch_route(app)`` installs the batch endpoint under test."""
    app = Flask("bench")
    items: dict[int, dict[str, Any]] = {
        k: {"id": k, "name": f"item-{k}", "count": 0, "note": "", "tags": ["bench", "item"]}
        for k in range(ITEMS)
    }
    lock = threading.Lock()  # threaded servers run views concurrently

    def get_item(item_id: int) -> Response:
        with lock:
            item = dict(items[item_id % ITEMS])
        return jsonify(item)

    def patch_item(item_id: int) -> Response:
        changes = request.get_json(force=True)
        with lock:
            item = items[item_id % ITEMS]
            item.update({key: changes[key] for key in ("count", "note") if key in changes})
            item = dict(item)
        return jsonify(item)

    def put_blob(name: str) -> Response:
        """Hash the body as it streams in: the view itself keeps no copy of it."""
        digest = hashlib.sha256()
        size = 0
        stream = request.stream
        while chunk := stream.read(64 * 1024):
            digest.update(chunk)
            size += len(chunk)
        return jsonify({"name": name, "size": size, "sha256": digest.hexdigest()})

    app.add_url_rule("/items/<int:item_id>", "get_item", get_item, methods=["GET"])
    app.add_url_rule("/items/<int:item_id>", "patch_item", patch_item, methods=["PATCH"])
    app.add_url_rule("/blobs/<name>", "put_blob", put_blob, methods=["PUT"])
    if add_batch_route is not None:
        add_batch_route(app)
    return app


def json_body(call: Call) -> bytes:
    return b"" if call.body is None else json.dumps(call.body).encode()


def batch_body(workload: list[Call], boundary: str = BOUNDARY) -> bytes:
    """The batch request body for ``workload``, as Google's clients write it (CRLF, ids)."""
    out = []
    for i, call in enumerate(workload):
        body = json_body(call)
        head = f"{call.method} {call.path} HTTP/1.1\r\nAccept: application/json\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        out.append(
            f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <item-{i}>\r\n\r\n"
            f"{head}\r\n".encode()
            + body
            + b"\r\n"
        )
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def changesets_body(work: list[Call], size: int) -> bytes:
    """``work`` as a multipart batch of changesets of ``size`` members each."""
    parts = []
    for start in range(0, len(work), size):
        boundary = f"changeset_{start}"
        members = batch_body(work[start : start + size], boundary)  # ends with its CRLF
        parts.append(
            f"--{BOUNDARY}\r\nContent-Type: multipart/mixed; boundary={boundary}\r\n\r\n".encode()
            + members
        )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def json_batch_body(workload: list[Call]) -> bytes:
    """The same calls as one JSON batch (OData 4.01 / Microsoft Graph shape), ids "0", "1"..."""
    requests: list[dict[str, Any]] = []
    for i, call in enumerate(workload):
        request: dict[str, Any] = {
            "id": str(i),
            "method": call.method,
            "url": call.path,
            "headers": {"Accept": "application/json"},
        }
        if call.body is not None:
            request["headers"]["Content-Type"] = "application/json"
            request["body"] = call.body
        requests.append(request)
    return json.dumps({"requests": requests}).encode()


#: The shapes of JSON batch bodies that cost a parser the most memory per byte.
JSON_SHAPES = ("brackets", "objects", "many")


def json_shape_body(shape: str, size: int, parts: int) -> bytes:
    """A JSON batch of about ``size`` bytes of ``PUT /blobs/<name>`` requests with JSON bodies
    dense in brackets: one request of ``[[],[],...]`` ("brackets") or ``[{},{},...]``
    ("objects"), or ``parts`` requests of ``[[],[],...]`` ("many")."""
    count = parts if shape == "many" else 1
    unit = b"{}" if shape == "objects" else b"[]"
    requests = []
    for i in range(count):
        head = (
            b'{"id":"%d","method":"PUT","url":"/blobs/part-%d",'
            b'"headers":{"Content-Type":"application/json"},"body":[' % (i, i)
        )
        units = max(0, (size // count - len(head) - 4) // (len(unit) + 1))
        requests.append(head + b",".join([unit] * units) + b"]}")
    return b'{"requests":[' + b",".join(requests) + b"]}"


def blob_batch_body(size: int, boundary: str = BOUNDARY) -> bytes:
    """A batch of one ``PUT /blobs/big`` part carrying ``size`` bytes of binary data."""
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    head = (
        f"--{boundary}\r\nContent-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\nContent-ID: <blob>\r\n\r\n"
        "PUT /blobs/big HTTP/1.1\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode()


def multipart_content_type(boundary: str = BOUNDARY) -> str:
    return f"multipart/mixed; boundary={boundary}"
