"""Replay raw batch requests captured from Google's Python clients against our batch routes.

Why: these bytes are what google-api-python-client and google-cloud-storage really send
(bare LF line ends, quoted boundaries containing '=', absolute-form targets, no Host or
Content-Length in parts, Content-IDs with spaces and '+'). Replaying them byte for byte
pins the server to that dialect without needing the clients at all; Python's ``email``
package is the independent oracle that reads both the samples and the answers.
"""

from __future__ import annotations

import email
import email.message
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from flask import Flask
from werkzeug.http import HTTP_STATUS_CODES

from tests.google_apps import (
    FarmState,
    StorageState,
    create_farm_app,
    create_storage_app,
)
from tests.wire_samples import (
    SAMPLES_DIR,
    parse_http_response,
    parse_multipart,
    part_bytes,
    split_raw_request,
)

STORAGE_HOST = "127.0.0.1:42817"


def request_target_path(part: email.message.Message) -> tuple[str, str]:
    """(method, percent-decoded path) of the HTTP request inside a request part."""
    request_line = part_bytes(part).decode("utf-8").split("\n", 1)[0].rstrip("\r")
    method, target, _ = request_line.split(" ")
    return method, unquote(urlsplit(target).path)


@dataclass(frozen=True)
class Expected:
    """What one answer part must say: status and, when given, JSON members it must hold."""

    status: int
    json: dict[str, Any] | None = None


def not_found(animal_id: str) -> Expected:
    """The farm's 404 problem for ``animal_id``."""
    detail = f"no animal with id {animal_id!r}"
    return Expected(404, {"status": 404, "title": "Not Found", "detail": detail})


def no_object(name: str) -> Expected:
    """The storage emulation's 404 for an object of my-bucket."""
    return Expected(
        404,
        {
            "error": {
                "code": 404,
                "message": f"No such object: my-bucket/{name}",
                "errors": [
                    {
                        "message": f"No such object: my-bucket/{name}",
                        "domain": "global",
                        "reason": "notFound",
                    }
                ],
            }
        },
    )


@dataclass(frozen=True)
class Sample:
    """A captured request, the app it was captured against, and the answers it must get."""

    path: str
    make_app: Callable[[], tuple[Flask, FarmState | StorageState]]
    expected: list[Expected]


SAMPLES = [
    Sample(
        "google-api-python-client/001-POST-batch.request.raw",
        create_farm_app,
        [
            Expected(200, {"name": "Molly"}),
            Expected(201, {"id": "100", "name": "Dolly", "species": "sheep", "note": "Zoë ✓"}),
            Expected(200, {"id": "2", "name": "Shaun", "species": "sheep"}),
            Expected(204),
            not_found("missing-7"),
            Expected(200, {"id": "8", "name": "custom"}),
        ],
    ),
    Sample(
        "google-api-python-client/002-POST-batch.request.raw",
        create_farm_app,
        [
            Expected(200, {"name": "Wilbur", "species": "pig"}),
            Expected(201, {"id": "100", "name": "Babe", "species": "pig"}),
            Expected(200, {"id": "11", "name": "Billy", "species": "goat"}),
            Expected(204),
            not_found("missing-13"),
        ],
    ),
    Sample(
        "google-cloud-storage/001-POST-batch_storage_v1.request.raw",
        create_storage_app,
        [
            Expected(
                200,
                {
                    "name": "dir/a.txt",
                    "metageneration": "2",
                    "metadata": {"owner": "ann", "color": "blue"},
                },
            ),
            Expected(
                200, {"name": "c d+é.txt", "cacheControl": "no-cache", "contentType": "text/plain"}
            ),
            Expected(200, {"name": "u.txt", "contentLanguage": "en", "size": "2"}),
            Expected(204),
            Expected(
                200,
                {
                    "kind": "storage#bucket",
                    "name": "my-bucket",
                    "labels": {"team": "storage", "env": "test"},
                },
            ),
            no_object("missing-blob.txt"),
        ],
    ),
    Sample(
        "google-cloud-storage/002-POST-batch_storage_v1.request.raw",
        create_storage_app,
        [
            Expected(200, {"name": "x.txt", "metadata": {"k": "v"}, "metageneration": "2"}),
            no_object("missing-2.txt"),
        ],
    ),
]


def test_every_sample_has_expectations() -> None:
    """A new capture of Google's clients dropped into tests/data must come with its expected
    answers."""
    on_disk = sorted(
        str(path.relative_to(SAMPLES_DIR))
        for client in ("google-api-python-client", "google-cloud-storage")
        for path in (SAMPLES_DIR / client).glob("*.raw")
    )
    assert on_disk == sorted(s.path for s in SAMPLES)


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.path for s in SAMPLES])
def test_sample_replays_to_one_answer_per_part(sample: Sample) -> None:
    """The captured bytes get one application/http answer per part, in order, right views."""
    raw = split_raw_request((SAMPLES_DIR / sample.path).read_bytes())
    content_type = raw.headers["content-type"]
    host = raw.headers["host"]
    if sample.path.startswith("google-cloud-storage/"):
        # The parts' absolute-form targets name this host: it must be the outer Host too.
        assert host == STORAGE_HOST
        assert f"http://{STORAGE_HOST}/storage/v1/".encode() in raw.body
    request_parts = parse_multipart(content_type, raw.body)
    assert len(request_parts) == len(sample.expected)

    app, state = sample.make_app()
    response = app.test_client().open(
        raw.target,
        method=raw.method,
        base_url=f"http://{host}",
        data=raw.body,
        headers={"Content-Type": content_type},
    )

    assert response.status_code == 200, response.get_data()
    assert response.mimetype == "multipart/mixed"
    answer_parts = parse_multipart(response.headers["Content-Type"], response.get_data())
    assert len(answer_parts) == len(request_parts)

    for index, (asked, answered, expected) in enumerate(
        zip(request_parts, answer_parts, sample.expected, strict=True)
    ):
        where = f"part {index}"
        assert answered.get_content_type() == "application/http", where
        content_id = asked["Content-ID"]
        if content_id is None:
            assert answered["Content-ID"] is None, where
        else:
            assert content_id.startswith("<"), where
            assert content_id.endswith(">"), where
            assert answered["Content-ID"] == f"<response-{content_id[1:-1]}>", where

        answer = parse_http_response(part_bytes(answered))
        assert answer.status == expected.status, (where, answer)
        assert answer.reason.lower() == HTTP_STATUS_CODES[expected.status].lower(), where
        assert int(answer.headers["content-length"]) == len(answer.body), where
        if expected.json is None:
            assert answer.body == b"", where
        else:
            document = json.loads(answer.body.decode("utf-8"))
            assert {k: document.get(k) for k in expected.json} == expected.json, where

    # Each part reached the view its request line names, once, in order.
    reached = [(c.method, c.path) for c in state.calls if c.path != raw.target]
    assert reached == [request_target_path(part) for part in request_parts]
