"""call_app: a WSGI application's whole answer gathered under the part's limit, however the
application gives it (chunks, PEP 3333's ``write()``, both), checked against the joined
chunks as the oracle."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flask_batch.wsgi_parts import call_app

LIMIT = 10


def app_giving(writes: list[bytes], chunks: list[bytes], status: str = "201 Created") -> Any:
    """An application that writes ``writes`` through ``write()``, then yields ``chunks``."""
    closed: list[bool] = []

    def application(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        write = start_response(status, [("X-A", "1")])
        for chunk in writes:
            write(chunk)

        def body() -> Iterator[bytes]:
            try:
                yield from chunks
            finally:
                closed.append(True)

        return body()

    application.closed = closed  # type: ignore[attr-defined]
    return application


@pytest.mark.parametrize(
    ("writes", "chunks"),
    [
        ([], []),
        ([], [b""]),
        ([], [b"abc"]),
        ([], [b"", b"abc"]),
        ([], [b"abc", b""]),
        ([], [b"abc", b"def"]),
        ([], [b"abc", b"def", b"ghij"]),
        ([], [b"0123456789"]),
        ([], [b"01234", b"56789"]),
        ([b"ab"], []),
        ([b"ab", b"cd"], []),
        ([b"ab"], [b"cd"]),
        ([b""], [b"cd", b"ef"]),
        ([b"01234"], [b"56789"]),
    ],
)
def test_an_answer_within_the_limit_is_whole_and_in_order(
    writes: list[bytes], chunks: list[bytes]
) -> None:
    answer = call_app(app_giving(writes, chunks), {}, LIMIT)
    assert (answer.status, answer.reason, answer.headers) == (201, "Created", (("X-A", "1"),))
    assert answer.body == b"".join(writes + chunks)
    given = [chunk for chunk in writes + chunks if chunk]
    assert type(answer.body) is (bytes if len(given) <= 1 else bytearray)


@pytest.mark.parametrize(
    ("writes", "chunks"),
    [
        ([], [b"01234567890"]),
        ([], [b"01234", b"567890"]),
        ([], [b"", b"01234567890"]),
        ([], [b"0123456789", b"x", b"never read"]),
        ([b"01234567890"], []),
        ([b"0123456789", b"x"], []),
        ([b"0123456789"], [b"x"]),
        ([b"01234"], [b"567890"]),
    ],
)
def test_an_answer_over_the_limit_is_a_502(writes: list[bytes], chunks: list[bytes]) -> None:
    application = app_giving(writes, chunks)
    answer = call_app(application, {}, LIMIT)
    assert answer.status == 502
    assert b"max_answer_part_size" in answer.body


def test_the_body_is_closed_when_read_whole_and_when_cut_short() -> None:
    for chunks in ([b"ab", b"cd"], [b"0123456789", b"x", b"y"]):
        application = app_giving([], chunks)
        call_app(application, {}, LIMIT)
        assert application.closed == [True]


@pytest.mark.parametrize(
    ("status", "expected"),
    [("200 OK", (200, "OK")), ("404 Not Found", (404, "Not Found")), ("299", (299, ""))],
)
def test_the_status_line_is_read_each_time(status: str, expected: tuple[int, str]) -> None:
    for _ in range(3):  # the second and third from what the first taught
        answer = call_app(app_giving([], [b"x"], status), {}, LIMIT)
        assert (answer.status, answer.reason) == expected


def test_a_status_that_is_not_a_number_raises_each_time() -> None:
    for _ in range(2):
        with pytest.raises(ValueError, match="invalid literal"):
            call_app(app_giving([], [b"x"], "OK 200"), {}, LIMIT)


def test_a_chunk_that_is_not_bytes_raises() -> None:
    with pytest.raises(TypeError, match="yielded str, not bytes"):
        call_app(app_giving([], [b"ab", "cd"]), {}, LIMIT)  # type: ignore[list-item]


def test_an_application_that_never_starts_its_answer_raises() -> None:
    with pytest.raises(RuntimeError, match="did not call start_response"):
        call_app(lambda environ, start_response: [b"x"], {}, LIMIT)


def test_an_error_after_the_answer_started_is_raised_again() -> None:
    def application(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        try:
            raise KeyError("late")
        except KeyError as error:
            start_response("500 Internal Server Error", [], (KeyError, error, None))
        return [b"x"]

    with pytest.raises(KeyError, match="late"):
        call_app(application, {}, LIMIT)
