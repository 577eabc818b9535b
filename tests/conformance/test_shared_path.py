"""A batch route on a path the application's own views share (``shared_path``), as Azure's
blob batch posts to its container's path: only a POST carrying the route's ``batch_query``
is a batch; every other request at the path reaches the application, on every front end."""

from __future__ import annotations

import json

import pytest

from ..batching import sub
from .api import ROUTES, SHARED
from .conftest import Server, differs_on
from .wire import MULTIPART, OK, body, exchange, head, post
from .wire import batch as send_batch

BATCH = f"{SHARED}?restype=container&comp=batch"
#: A batch a part carries (which must never run: a batch cannot nest).
INNER = b"--inner\r\nContent-Type: application/http\r\n\r\nDELETE /ok HTTP/1.1\r\n\r\n--inner--"
INNER_TYPE = (("Content-Type", "multipart/mixed; boundary=inner"),)


def test_a_post_carrying_the_batch_query_is_a_batch(server: Server) -> None:
    ok, own = send_batch(server.base, BATCH, sub("GET", "/ok"), sub("GET", SHARED))
    assert (ok.status, own.status, own.body) == (200, 200, b"the application's own")
    assert server.ran == ["GET /ok", f"GET {SHARED}"]


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "PATCH", "DELETE"])
def test_other_methods_reach_the_application_not_a_description(server: Server, method: str) -> None:
    request = head(server.base, method, BATCH, [("Content-Length", "0")])
    answer = exchange(server.base, request, method)
    assert answer.status == 200
    assert answer.header("Content-Type") == "text/plain"  # not the route's JSON description
    assert answer.body == (b"" if method == "HEAD" else b"the application's own")
    assert server.ran == [f"{method} {BATCH}"]


@differs_on(
    "flask",
    "Flask routes a path and a method to one view, whatever the query: POST at the shared "
    "path is the batch route's, which answers one without the query 405 (docs/shared-paths.md)",
)
def test_a_post_without_the_batch_query_reaches_the_application(server: Server) -> None:
    answer = post(server.base, f"{SHARED}?comp=list", body(OK), MULTIPART)
    assert (answer.status, answer.body) == (200, b"the application's own")
    assert server.ran == [f"POST {SHARED}?comp=list"]


def test_flask_refuses_a_post_without_the_batch_query_as_a_method_no_view_takes(
    servers: dict[str, Server],
) -> None:
    server = servers["flask"]
    server.ran.clear()
    answer = post(server.base, f"{SHARED}?comp=list", body(OK), MULTIPART)
    assert answer.status == 405
    allowed = {method.strip() for method in (answer.header("Allow") or "").split(",")}
    assert "POST" not in allowed
    assert {"GET", "PUT", "DELETE"} <= allowed
    assert server.ran == []


def test_a_part_may_address_the_shared_path_but_not_its_batches(server: Server) -> None:
    own, nested = send_batch(
        server.base,
        BATCH,
        sub("PUT", f"{SHARED}?restype=container"),
        sub("POST", BATCH, INNER, INNER_TYPE),
    )
    assert (own.status, own.body) == (200, b"the application's own")
    assert (nested.status, json.loads(nested.body)["title"]) == (400, "Nested batch")
    assert server.ran == [f"PUT {SHARED}?restype=container"]


def test_another_route_passes_a_part_to_the_shared_path_on(server: Server) -> None:
    # The last route's middleware wraps the shared one's (api.py): its parts pass by it.
    outermost = list(ROUTES)[-1]
    own, nested = send_batch(
        server.base, outermost, sub("GET", SHARED), sub("POST", BATCH, INNER, INNER_TYPE)
    )
    assert (own.status, own.body) == (200, b"the application's own")
    assert nested.status == 400  # refused by the shared route itself
    assert json.loads(nested.body)["detail"] == "a batch cannot contain another batch"
    assert server.ran == [f"GET {SHARED}"]
