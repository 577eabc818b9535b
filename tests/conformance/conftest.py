"""The three front ends of a batch endpoint, each on a real server on 127.0.0.1.

Every test that takes the ``server`` fixture runs three times: against the Flask extension and
the WSGI middleware (Werkzeug's threaded server) and the ASGI middleware (uvicorn), each
serving the same API (:mod:`.api`) and the same batch routes (:data:`.api.ROUTES`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from ..batching import sub
from ..frameworks.serving import asgi_server
from ..servers import live_server
from .api import Api, asgi_app, asgi_telling_ends, flask_app, wsgi_app, wsgi_telling_ends
from .wire import MULTIPART, batch, post


@dataclass(frozen=True)
class Server:
    """One front end, served: its base URL and the log of what reached the application."""

    name: str
    base: str
    api: Api

    @property
    def ran(self) -> list[str]:
        return self.api.ran

    def check_healthy(self) -> None:
        """After a refusal: nothing ran, and the next batch is answered normally."""
        assert self.ran == [], f"a part ran although the batch was refused: {self.ran}"
        assert [r.status for r in batch(self.base, "/batch", sub("GET", "/ok"))] == [200]
        self.ran.clear()

    def refused(
        self,
        data: bytes,
        status: int = 400,
        *,
        route: str = "/batch",
        content_type: str | None = MULTIPART,
        headers: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        """POST ``data`` to ``route``; check it was refused with ``status`` and a problem
        document, then :meth:`check_healthy`. The problem document."""
        answer = post(self.base, route, data, content_type, headers)
        assert answer.status == status, (answer.status, answer.body[:500])
        document = answer.problem()
        self.check_healthy()
        return document


FRONT_ENDS = ("flask", "wsgi", "asgi")


def differs_on(
    front_end: str, reason: str, raises: type[BaseException] = AssertionError
) -> pytest.MarkDecorator:
    """Run the test on every front end, and expect it to fail on ``front_end`` with ``raises``:
    a known difference between the front ends, which ``reason`` describes (strict: once it is
    gone, the test passes there and the mark must go)."""
    expected = pytest.mark.xfail(strict=True, reason=reason, raises=raises)
    return pytest.mark.parametrize(
        "server",
        [pytest.param(name, marks=expected) if name == front_end else name for name in FRONT_ENDS],
        indirect=True,
    )


@pytest.fixture(scope="session")
def servers() -> Iterator[dict[str, Server]]:
    with ExitStack() as stack:
        running = {}
        for name in FRONT_ENDS:
            api = Api()
            if name == "asgi":
                base = stack.enter_context(asgi_server(asgi_telling_ends(asgi_app(api), api)))
            else:
                app = flask_app(api) if name == "flask" else wsgi_app(api)
                base = stack.enter_context(live_server(wsgi_telling_ends(app, api)))
            running[name] = Server(name, base, api)
        yield running


@pytest.fixture(params=FRONT_ENDS)
def server(request: pytest.FixtureRequest, servers: dict[str, Server]) -> Iterator[Server]:
    """Each front end in turn, with empty logs."""
    chosen = servers[request.param]
    chosen.ran.clear()
    chosen.api.over.clear()
    chosen.api.ledger.clear()
    chosen.api.met.clear()
    yield chosen
    chosen.ran.clear()
