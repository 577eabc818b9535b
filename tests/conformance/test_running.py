"""How the parts of a batch run, alike on every front end: a part that raises is answered
``500`` (logged, without the error's text) and the batch goes on; ``Prefer:
continue-on-error=false`` stops starting parts after the first failure."""

from __future__ import annotations

import pytest

from flask_batch.wire.multipart_requests import encode_requests

from ..batching import sub
from .conftest import Server
from .wire import BOUNDARY, batch, post


def test_a_part_that_raises_is_a_500_part_and_the_batch_goes_on(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    raised, after = batch(server.base, "/batch", sub("GET", "/raise"), sub("GET", "/ok"))
    assert raised.status == 500
    assert b"the view failed" not in raised.body  # no internals in the answer
    assert (after.status, after.body) == (200, b"ok")
    assert "the view failed" in caplog.text


def test_continue_on_error_false_skips_the_rest(server: Server) -> None:
    data = encode_requests([sub("GET", "/status?code=500"), sub("GET", "/ok")], BOUNDARY)
    answer = post(server.base, "/batch", data, headers=[("Prefer", "continue-on-error=false")])
    assert [r.status for r in answer.parts()] == [500, 424]
    assert answer.header("Preference-Applied") == "continue-on-error=false"
    assert server.ran == ["GET /status?code=500"]
