"""The Flask app the ``Batching`` client talks to in ``tests/test_client.py``.

Why: a client test is only as good as what the server tells it saw. The views here echo
every detail of the request that reached them (method, path, query, headers, body bytes,
form, files, JSON, credentials), answer with exact binary, text, gzip and cookie bodies,
and a few fake batch endpoints answer batches the way a buggy or foreign server might
(parts reversed, no Content-IDs, one Content-ID answered twice, a part missing, not multipart
at all, parts whose Content-Length or Content-Encoding does not match their body). The fake
endpoints
read and write the wire format by hand, with nothing from ``flask_batch``, so they check
the client against the DESIGN's wire format rather than against its own reader.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, redirect, request
from flask.typing import ResponseReturnValue

from flask_batch import add_batch_route

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

#: Every byte value, CR, LF, and text that looks like multipart delimiters and HTTP messages.
BINARY = (
    bytes(range(256))
    + b"\r\n--batch_0123456789abcdef0123456789abcdef\r\n"
    + b"Content-Type: application/http\r\nContent-ID: <response-x+0>\r\n\r\n"
    + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    + b"\r\n--batch_0123456789abcdef0123456789abcdef--\r\n"
    + b"\n--\n--\r\r\n\r\n"
    + bytes(range(255, -1, -1))
)
TEXT = "Grüße, 世界 — 5 € ✓\r\nsecond line\n"
GZIPPED_TEXT = ("gzip me " * 200 + "é").encode("utf-8")
FAKE_BOUNDARY = "fake=boundary_42"
#: Answers whose framing a part's body must be read through (the ``odd-framing`` fake): as
#: declared, cut short of its Content-Length, gzip, "gzip" that is not, no content at all.
ODD = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + gzip.compress(b"zipped"),
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\nnot gzip",
    b"HTTP/1.1 204 No Content\r\n\r\n",
)

#: Batch URLs that are not batch endpoints: (route, status, what a client says about it).
NOT_A_BATCH_ENDPOINT = [
    (
        "/no/batch/here",
        404,
        "the batch URL answered 404 NOT FOUND (text/html): it is probably not a batch "
        "endpoint (is the URL right?)",
    ),
    (
        "/text",
        405,
        "the batch URL answered 405 METHOD NOT ALLOWED (text/html): it does not take POST, "
        "so it is probably not a batch endpoint (is the URL right?)",
    ),
    (
        "/boom",
        500,
        "the batch URL answered 500 INTERNAL SERVER ERROR (text/html): not an answer from a "
        "batch endpoint (the whole response is in .response)",
    ),
    (
        "/echo",
        200,
        "the batch URL answered 200 OK with application/json, not multipart/mixed: it is "
        "probably not a batch endpoint",
    ),
]


@dataclass
class State:
    """What the server saw: outer batch POSTs per route, and the people store."""

    batch_posts: dict[str, int] = field(default_factory=dict)
    people: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def posts(self, path: str) -> int:
        with self.lock:
            return self.batch_posts.get(path, 0)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def create_app(state: State) -> Flask:
    app = Flask(__name__)
    add_batch_route(app)
    add_batch_route(app, "/small", "small", max_parts=2)

    @app.before_request
    def count_batches() -> None:
        # Sub-requests run through the same pipeline; only outer POSTs reach batch paths.
        if request.method == "POST" and (
            request.path in ("/batch", "/small") or request.path.startswith("/fake/")
        ):
            with state.lock:
                state.batch_posts[request.path] = state.batch_posts.get(request.path, 0) + 1

    @app.route("/echo", defaults={"rest": ""}, methods=ALL_METHODS)
    @app.route("/echo/<path:rest>", methods=ALL_METHODS)
    def echo(rest: str) -> Response:
        body = request.get_data()  # cached, so form and files below still parse it
        files = {
            name: {
                "filename": upload.filename,
                "content_type": upload.content_type,
                "content": _b64(upload.read()),
            }
            for name, upload in request.files.items()
        }
        auth = request.authorization
        return jsonify(
            method=request.method,
            path=request.path,
            query_string=request.query_string.decode("latin-1"),
            args={key: request.args.getlist(key) for key in request.args},
            headers=[[name, value] for name, value in request.headers.items()],
            body=_b64(body),
            form={key: request.form.getlist(key) for key in request.form},
            files=files,
            json=request.get_json(silent=True),
            auth=None if auth is None else [auth.type, auth.username, auth.password],
            cookies=dict(request.cookies),
        )

    @app.route("/mirror", methods=["POST", "PUT"])
    def mirror() -> Response:
        """The request body back, byte for byte, with the request's Content-Type."""
        return Response(
            request.get_data(), content_type=request.content_type or "application/octet-stream"
        )

    @app.route("/binary")
    def binary() -> Response:
        return Response(
            BINARY,
            status="203 Binary Is Fine",
            headers={
                "Content-Type": "application/octet-stream",
                "X-Custom": "One",
                "x-lower": "two",
                "Link": '</binary?page=2>; rel="next"',
            },
        )

    @app.route("/text")
    def text() -> Response:
        return Response(TEXT.encode("utf-8"), content_type="text/plain; charset=utf-8")

    @app.route("/latin")
    def latin() -> Response:
        return Response("café".encode("latin-1"), content_type="text/plain; charset=ISO-8859-1")

    @app.route("/no-charset")
    def no_charset() -> Response:
        return Response(b"plain \xe9", content_type="text/plain")

    @app.route("/gzip")
    def gzipped() -> Response:
        return Response(
            gzip.compress(GZIPPED_TEXT, mtime=0),
            headers={"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"},
        )

    @app.route("/status/<int:code>")
    def status(code: int) -> Response:
        return Response(f"status {code}", status=code, content_type="text/plain")

    @app.route("/slow")
    def slow() -> Response:
        time.sleep(1)
        return Response("late", content_type="text/plain")

    @app.route("/boom", methods=ALL_METHODS)
    def boom() -> Response:
        raise RuntimeError("the view failed on purpose")

    @app.route("/redirect")
    def to_target() -> ResponseReturnValue:
        return redirect("/echo/target")

    @app.route("/cookies/set")
    def set_cookies() -> Response:
        response = jsonify(set=True)
        response.set_cookie("flavour", "oatmeal")
        response.set_cookie("colour", "blue", httponly=True)
        response.set_cookie("token", "abc123", path="/")
        return response

    @app.route("/people/<name>/", methods=["GET", "PATCH", "DELETE"])
    def person(name: str) -> Response:
        if request.method == "DELETE":
            state.people.pop(name, None)
            return Response(status=204)
        record = state.people.setdefault(name, {"name": name})
        if request.method == "PATCH":
            record.update(request.get_json())
        return jsonify(record)

    # ---- fake batch endpoints: answer a batch the way another server might ------------

    @app.route("/fake/<mode>", methods=["POST"])
    def fake_batch(mode: str) -> Response:
        if mode == "json":
            return jsonify(answered="not multipart")
        if request.mimetype == "application/json":
            return json_fake_batch(mode)
        return multipart_fake_batch(mode)

    return app


def multipart_fake_batch(mode: str) -> Response:
    """The multipart format's fakes: each request answered 200 with the target it asked for,
    then the answers shuffled, unnamed, named twice, dropped or garbled as ``mode`` says."""
    parts = split_batch(request.content_type or "", request.get_data())
    answers = [(response_id(content_id), answer_message(target)) for content_id, _, target in parts]
    if mode == "reversed":
        answers.reverse()
    elif mode == "no-ids":
        answers = [(None, message) for _, message in answers]
    elif mode == "duplicate-id":  # the second request's answer claims the first's ID
        answers[1] = (answers[0][0], answers[1][1])
    elif mode == "drop-second":
        del answers[1]
    elif mode == "malformed":
        answers[-1] = (answers[-1][0], b"this is not an HTTP response")
    elif mode == "two-lengths":  # the last answer's framing is unknown: which length is it?
        answers[-1] = (answers[-1][0], b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n{}")
    elif mode == "odd-framing":
        answers = [(answer[0], odd) for answer, odd in zip(answers, ODD, strict=True)]
    else:
        return Response(f"unknown mode {mode}", status=404)
    return multipart_answer(answers)


def json_fake_batch(mode: str) -> Response:
    """The JSON format's fakes: each request answered 200 with the URL it asked for."""
    requests = request.get_json()["requests"]
    answers = [
        {
            "id": item["id"],
            "status": 200,
            "headers": {"Content-Type": "application/json"},
            "body": {"answer_to": item["url"]},
        }
        for item in requests
    ]
    if mode == "duplicate-id":
        answers[1]["id"] = answers[0]["id"]
    else:
        return Response(f"unknown mode {mode}", status=404)
    return jsonify(responses=answers)


def split_batch(content_type: str, body: bytes) -> list[tuple[str | None, str, str]]:
    """(Content-ID, method, target) of each part of a batch request, read by hand."""
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode("ascii")
    segments = (b"\r\n" + body).split(b"\r\n--" + boundary)
    parts = []
    for segment in segments[1:]:
        if segment.startswith(b"--"):
            break
        head, _, message = segment.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        lines = [line.decode("latin-1").partition(":") for line in head.split(b"\r\n")]
        headers = {name.strip().lower(): value.strip() for name, _, value in lines}
        method, target, _ = message.split(b"\r\n", 1)[0].decode("ascii").split(" ")
        parts.append((headers.get("content-id"), method, target))
    return parts


def response_id(content_id: str | None) -> str | None:
    if content_id is not None and content_id.startswith("<"):
        return "<response-" + content_id[1:]
    return content_id


def answer_message(target: str) -> bytes:
    """A 200 whose JSON body and header say which request target it answers."""
    body = json.dumps({"answer_to": target}).encode("utf-8")
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/json\r\n"
        f"X-Answer-To: {target}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def multipart_answer(answers: list[tuple[str | None, bytes]]) -> Response:
    out = b""
    for content_id, message in answers:
        out += f"--{FAKE_BOUNDARY}\r\nContent-Type: application/http\r\n".encode("ascii")
        if content_id is not None:
            out += f"Content-ID: {content_id}\r\n".encode("latin-1")
        out += b"\r\n" + message + b"\r\n"
    out += f"--{FAKE_BOUNDARY}--\r\n".encode("ascii")
    return Response(out, content_type=f'multipart/mixed; boundary="{FAKE_BOUNDARY}"')
