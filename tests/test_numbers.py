"""Numbers in header fields (``Content-Length``, ``Batch-Failures``): a clear refusal, never
a 500, however many digits a client or a server sends.

Why: Python's ``int()`` refuses a string of over 4,300 digits with a ValueError, and below
that takes time that grows with the square of the digits. A part's or a batch's
``Content-Length`` of 5,000 nines was a 500 on every front end; the client's readers of an
answer's ``Content-Length`` and ``Batch-Failures`` raised too. ``wire.fields.number`` reads
them all, and refuses more than 19 significant digits before ``int()`` sees them.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from flask import Flask

from flask_batch import add_batch_route
from flask_batch.asgi import BatchMiddleware
from flask_batch.client._core.outcome import reported_failures
from flask_batch.client._requests_messages import _known_length
from flask_batch.intake import declared_length
from flask_batch.wire.errors import MalformedBatch
from flask_batch.wire.fields import MOST_DIGITS, number
from flask_batch.wire.http1 import parse_response_head
from flask_batch.wire.model import Limits
from flask_batch.wsgi import BatchMiddleware as WSGIBatchMiddleware

from .frameworks.driving import MULTIPART, request, run
from .frameworks.raw_asgi import RawApp

HUGE = "9" * 5000


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("007", 7),
        ("0" * 5000 + "3", 3),  # leading zeros are not significant
        ("9" * MOST_DIGITS, int("9" * MOST_DIGITS)),
        ("1" + "0" * MOST_DIGITS, None),  # one digit too many
        (HUGE, None),
        ("", None),
        (" 5", None),
        ("+5", None),
        ("5a", None),
        ("\u0663", None),  # an Arabic-Indic three: a digit, not an ASCII one
    ],
)
def test_a_number_is_ascii_digits_and_at_most_19_of_them(text: str, value: int | None) -> None:
    assert number(text) == value


def test_a_batch_content_length_of_many_digits_is_malformed_and_not_echoed_whole() -> None:
    with pytest.raises(MalformedBatch, match="invalid Content-Length") as refused:
        declared_length(HUGE, Limits())
    assert len(str(refused.value)) < 200


def _wsgi_status(app: Any) -> tuple[str, dict[str, Any]]:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/batch",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b"--b--\r\n"),
        "wsgi.errors": io.StringIO(),
        "CONTENT_TYPE": "multipart/mixed; boundary=b",
        "CONTENT_LENGTH": HUGE,
    }
    seen: list[str] = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: seen.append(status)))
    return seen[0], json.loads(body)


def test_a_batch_content_length_of_many_digits_is_a_400_on_flask() -> None:
    app = Flask(__name__)
    add_batch_route(app)
    status, problem = _wsgi_status(app)
    assert status.startswith("400")
    assert "invalid Content-Length" in problem["detail"]


def test_a_batch_content_length_of_many_digits_is_a_400_on_the_wsgi_middleware() -> None:
    def application(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("404 Not Found", [])
        return [b""]

    status, problem = _wsgi_status(WSGIBatchMiddleware(application))
    assert status.startswith("400")
    assert "invalid Content-Length" in problem["detail"]


def test_a_batch_content_length_of_many_digits_is_a_400_on_the_asgi_middleware() -> None:
    headers = [("content-type", MULTIPART), ("content-length", HUGE)]
    answer = run(request(BatchMiddleware(RawApp()), "POST", "/batch", headers=headers))
    assert answer.status == 400
    assert "invalid Content-Length" in answer.problem()["detail"]


def test_the_client_reads_an_answer_whose_numbers_have_too_many_digits() -> None:
    assert reported_failures([HUGE]) is None
    head, _ = parse_response_head(
        b"HTTP/1.1 200 OK\r\nContent-Length: " + HUGE.encode() + b"\r\n\r\n", 1
    )
    assert head.length is None  # read to the end of its part, as with no length
    # A requests response with such a length is left to urllib3 to read, as plain requests.
    assert _known_length({"content-length": ("Content-Length", HUGE)}, 200, "GET") == (False, None)
    assert _known_length({"content-length": ("Content-Length", "012")}, 200, "GET") == (True, 12)
