"""Parallel execution of independent parts on the endpoint's bounded thread pool.

Why: with ``max_workers`` > 1 independent parts run concurrently, at most
``max_workers_per_request`` at once for one batch, on a pool shared by every batch of the
endpoint; dependencies still order the parts; answers still come back in request order; and
each part keeps its own request context (``g``, session, user, database session). The views
record when they run and how many run at once, so the tests see the concurrency itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, abort, g, request, session
from flask_login import current_user, login_user
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_batch import add_batch_route
from flask_batch.wire.model import SubRequest
from flask_batch.wire.multipart_answers import read_responses
from flask_batch.wire.multipart_requests import encode_requests

from .batching import BOUNDARY, batch, post, sub
from .json_batching import item, run
from .login import TOKENS, User, install_login
from .tracking import Tracker

# --------------------------------------------------------------------------------------
# A view that records its concurrency
# --------------------------------------------------------------------------------------


def tracked_app(tracker: Tracker, config: dict[str, Any] | None = None, **options: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config or {})

    @app.route("/work/<name>", methods=["GET", "POST"])
    def work(name: str) -> Response | dict[str, Any]:
        with tracker.running(name):
            tracker.hold(request.args)
        status = int(request.args.get("status", "200"))
        if status != 200:
            abort(status)
        return {
            "name": name,
            "thread": threading.current_thread().name,
            "ident": threading.get_ident(),
            "multithread": request.environ["wsgi.multithread"],
        }

    add_batch_route(app, **options)
    return app


def work(name: str, hold: str = "", **extra: Any) -> dict[str, Any]:
    """A JSON batch request to the tracked view, waiting as ``hold`` asks (a query:
    ``sleep=0.02``, ``meet``, ``until_ended=p1``: :meth:`Tracker.hold`)."""
    return item(name, "GET", f"/work/{name}?{hold}", **extra)


def answered(app: Flask, *requests: dict[str, Any]) -> list[dict[str, Any]]:
    return run(app.test_client(), *requests, route="/batch")


# --------------------------------------------------------------------------------------
# Concurrency and bounds: parts that meet (Tracker(meeting=N)) run N at once for certain.
# What the threads save in time is measured by make bench (bench/parallel.py), not here.
# --------------------------------------------------------------------------------------


def test_twenty_parts_with_20_workers_all_run_at_once() -> None:
    parallel, sequential = Tracker(meeting=20), Tracker()
    names = [f"p{i}" for i in range(20)]

    answers = answered(tracked_app(parallel, max_workers=20), *(work(n, "meet") for n in names))
    assert [a["status"] for a in answers] == [200] * 20
    assert [a["body"]["name"] for a in answers] == names
    assert parallel.max_active == 20  # every part waited for the other nineteen

    # The default: one after another.
    answers = answered(tracked_app(sequential), *(work(n, "sleep=0.01") for n in names))
    assert [a["body"]["name"] for a in answers] == names
    assert sequential.max_active == 1


def test_twenty_parallel_parts_in_the_multipart_format() -> None:
    tracker = Tracker(meeting=20)
    client = tracked_app(tracker, max_workers=20).test_client()
    answers = batch(client, *(sub("GET", f"/work/m{i}?meet") for i in range(20)))
    assert [a.status for a in answers] == [200] * 20
    assert [a.body.count(f'"m{i}"'.encode()) for i, a in enumerate(answers)] == [1] * 20
    assert tracker.max_active == 20


def test_max_workers_per_request_caps_the_concurrency_of_a_batch() -> None:
    tracker = Tracker(meeting=3)  # three at once for certain, so a fourth would show
    app = tracked_app(tracker, max_workers=8, max_workers_per_request=3)
    answers = answered(app, *(work(f"p{i}", "meet") for i in range(9)))
    assert [a["status"] for a in answers] == [200] * 9
    assert tracker.max_active == 3


def test_config_keys_set_the_workers() -> None:
    tracker = Tracker(meeting=2)
    config = {"BATCH_MAX_WORKERS": 6, "BATCH_MAX_WORKERS_PER_REQUEST": 2}
    answers = answered(tracked_app(tracker, config), *(work(f"p{i}", "meet") for i in range(6)))
    assert [a["status"] for a in answers] == [200] * 6
    assert tracker.max_active == 2


def test_the_default_is_sequential_in_the_server_thread() -> None:
    tracker = Tracker()
    answers = answered(tracked_app(tracker), *(work(f"p{i}", "sleep=0.02") for i in range(4)))
    assert tracker.max_active == 1
    assert {a["body"]["thread"] for a in answers} == {threading.current_thread().name}
    assert {a["body"]["multithread"] for a in answers} == {False}  # as the test client says


def test_parallel_parts_run_on_the_pool_and_see_wsgi_multithread() -> None:
    tracker = Tracker()
    answers = answered(
        tracked_app(tracker, max_workers=4), *(work(f"p{i}", "sleep=0.02") for i in range(4))
    )
    assert all(a["body"]["thread"].startswith("flask-batch") for a in answers), answers
    assert {a["body"]["multithread"] for a in answers} == {True}


def test_answers_keep_request_order_when_later_parts_finish_first() -> None:
    tracker = Tracker()
    # Each part ends only after the next one ended: p4 first, p0 last.
    holds = [f"until_ended=p{i + 1}" for i in range(4)] + [""]
    answers = answered(
        tracked_app(tracker, max_workers=5), *(work(f"p{i}", h) for i, h in enumerate(holds))
    )
    assert [a["id"] for a in answers] == [f"p{i}" for i in range(5)]
    assert [a["body"]["name"] for a in answers] == [f"p{i}" for i in range(5)]
    ends = [tracker.span(f"p{i}")[1] for i in range(5)]
    assert ends == sorted(ends, reverse=True)  # they did finish in the opposite order


def test_the_pool_is_shared_by_concurrent_batches_of_an_endpoint() -> None:
    tracker = Tracker()
    app = tracked_app(tracker, max_workers=3)
    results: list[list[dict[str, Any]]] = []
    errors: list[BaseException] = []

    def one_batch(prefix: str) -> None:
        try:
            results.append(
                run(
                    app.test_client(),
                    *(work(f"{prefix}{i}", "sleep=0.05") for i in range(3)),
                    route="/batch",
                )
            )
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=one_batch, args=(p,)) for p in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert len(results) == 2
    assert all([a["status"] for a in answers] == [200] * 3 for answers in results)
    assert tracker.max_active <= 3  # six parts, one pool of three threads
    assert len({a["body"]["ident"] for answers in results for a in answers}) <= 3


# --------------------------------------------------------------------------------------
# Dependencies under parallelism
# --------------------------------------------------------------------------------------


def test_a_dependent_part_starts_only_after_its_dependencies_finished() -> None:
    tracker = Tracker()
    app = tracked_app(tracker, max_workers=8)
    answers = answered(
        app,
        work("a", "until_started=e"),  # e must not wait for a
        work("b", dependsOn=["a"]),
        work("c"),
        work("d", dependsOn=["b", "c"]),
        work("e", dependsOn=["c"]),
    )
    assert [a["status"] for a in answers] == [200] * 5
    span = tracker.span
    assert span("b")[0] >= span("a")[1]
    assert span("d")[0] >= max(span("b")[1], span("c")[1])
    assert span("e")[0] >= span("c")[1]
    assert span("c")[0] < span("a")[1]  # independent parts did overlap
    assert span("e")[0] < span("a")[1]  # e waited for c only, not for a


def test_a_failed_dependency_under_parallelism_is_424_and_does_not_run() -> None:
    tracker = Tracker()
    app = tracked_app(tracker, max_workers=4)
    answers = answered(
        app,
        item("a", "GET", "/work/a?sleep=0.05&status=500"),
        work("b", dependsOn=["a"]),
        work("c", "sleep=0.05"),
        work("d", dependsOn=["b"]),
    )
    assert [a["status"] for a in answers] == [500, 424, 200, 424]
    assert set(tracker.spans) == {"a", "c"}


def test_multipart_dependencies_under_parallelism() -> None:
    tracker = Tracker()
    client = tracked_app(tracker, max_workers=4).test_client()
    body = encode_requests(
        [
            SubRequest("GET", "/work/x?until_started=z", (), b"", "<x>"),
            SubRequest("GET", "/work/y", (), b"", "<y>", ("<x>",)),
            SubRequest("GET", "/work/z", (), b"", "<z>"),
        ],
        BOUNDARY,
    )
    answer = post(client, body)
    statuses = [r.status for _, r in read_responses(answer.headers["Content-Type"], answer.data)]
    assert statuses == [200, 200, 200]
    assert tracker.span("y")[0] >= tracker.span("x")[1]
    assert tracker.span("z")[0] < tracker.span("x")[1]


# --------------------------------------------------------------------------------------
# Isolation: g, session, user (a g-based current user, and Flask-Login)
# --------------------------------------------------------------------------------------


def isolation_app(parties: int) -> Flask:
    """Views that wait for each other at a barrier, so every part is running at once."""
    app = Flask(__name__)
    app.secret_key = "parallel"
    barrier = threading.Barrier(parties, timeout=5)
    install_login(app)

    @app.before_request
    def load() -> None:
        g.user = TOKENS.get(request.headers.get("Authorization", "")) or session.get("user")

    @app.get("/who")
    def who() -> dict[str, Any]:
        before = getattr(g, "note", None)
        g.note = request.args["note"]
        barrier.wait()  # every part is inside its view now
        time.sleep(0.01)
        return {
            "user": g.user,
            "note": g.note,
            "note_before": before,
            "session": dict(session),
            "login": current_user.get_id() if current_user.is_authenticated else None,
        }

    @app.post("/login/<name>")
    def login(name: str) -> dict[str, Any]:
        session["user"] = name
        g.user = name
        login_user(User(name))
        barrier.wait()
        time.sleep(0.01)
        return {"user": g.user, "session": dict(session), "login": current_user.get_id()}

    add_batch_route(app, max_workers=parties)
    return app


def test_parallel_parts_do_not_share_g_session_or_user() -> None:
    auth = ["Bearer alice-token", "Bearer bob-token", None, "Bearer alice-token", None]
    requests = [
        item(
            f"w{i}",
            "GET",
            f"/who?note=n{i}",
            headers={"Authorization": token} if token else {},
        )
        for i, token in enumerate(auth)
    ]
    requests.append(item("login", "POST", "/login/mallory"))
    client = isolation_app(len(requests)).test_client()
    answers = run(client, *requests, route="/batch")
    assert [a["status"] for a in answers] == [200] * len(requests), answers
    expected_users = ["alice", "bob", None, "alice", None]
    for i, (answer, user) in enumerate(zip(answers, expected_users, strict=False)):
        body = answer["body"]
        assert body["user"] == user, body
        assert body["login"] == user, body
        assert body["note"] == f"n{i}"
        assert body["note_before"] is None
        assert body["session"] == {}, body  # nobody's login leaks into another part
    login = answers[-1]["body"]
    assert login["user"] == login["login"] == "mallory"
    assert login["session"]["user"] == "mallory"
    # The login reached its own answer as a cookie, and no other part's.
    cookies = [v for a in answers for k, v in a["headers"].items() if k.lower() == "set-cookie"]
    assert len(cookies) >= 1
    assert all(not any(k.lower() == "set-cookie" for k in a["headers"]) for a in answers[:-1])


def test_outer_credentials_reach_every_parallel_part() -> None:
    client = isolation_app(3).test_client()
    answers = run(
        client,
        item("1", "GET", "/who?note=1"),
        item("2", "GET", "/who?note=2", headers={"Authorization": "Bearer bob-token"}),
        item("3", "GET", "/who?note=3"),
        route="/batch",
        headers={"Authorization": "Bearer alice-token"},
    )
    assert [a["body"]["user"] for a in answers] == ["alice", "bob", "alice"]


# --------------------------------------------------------------------------------------
# Flask-SQLAlchemy: one session per part
# --------------------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Thing(Base):
    __tablename__ = "thing"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)


@dataclass
class Database:
    app: Flask
    barrier: threading.Barrier

    def names(self) -> list[str]:
        with self.app.app_context():
            return sorted(db.session.scalars(select(Thing.name)))


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'things.db'}"
    db.init_app(app)
    barrier = threading.Barrier(4, timeout=5)

    @app.post("/things/<name>")
    def create(name: str) -> dict[str, Any]:
        db.session.add(Thing(name=name))
        db.session.commit()
        return {"name": name, "session": id(db.session())}

    @app.post("/broken/<name>")
    def broken(name: str) -> dict[str, Any]:
        db.session.add(Thing(name=name))
        db.session.flush()  # written in this part's transaction...
        raise RuntimeError("...and rolled back when the part fails")

    @app.get("/session")
    def session_id() -> dict[str, Any]:
        current = db.session()
        current.execute(select(1))
        barrier.wait()  # every part holds its session now
        same = db.session() is current
        return {"session": id(current), "same": same}

    add_batch_route(app, max_workers=8)
    with app.app_context():
        db.create_all()
    yield Database(app, barrier)
    with app.app_context():
        db.engine.dispose()


def test_parallel_parts_each_get_their_own_database_session(database: Database) -> None:
    answers = run(
        database.app.test_client(),
        *(item(f"s{i}", "GET", "/session") for i in range(4)),
        route="/batch",
    )
    assert [a["status"] for a in answers] == [200] * 4
    assert all(a["body"]["same"] for a in answers)
    assert len({a["body"]["session"] for a in answers}) == 4


def test_parallel_writes_are_all_committed_and_a_failing_part_rolls_back_alone(
    database: Database,
) -> None:
    names = [f"thing-{i}" for i in range(8)]
    requests = [item(name, "POST", f"/things/{name}") for name in names]
    requests.insert(3, item("broken", "POST", "/broken/ghost"))
    requests.append(item("broken-2", "POST", "/broken/ghost-2"))
    answers = run(database.app.test_client(), *requests, route="/batch")
    statuses = {a["id"]: a["status"] for a in answers}
    assert statuses.pop("broken") == 500
    assert statuses.pop("broken-2") == 500
    assert set(statuses.values()) == {200}
    assert database.names() == sorted(names)


def test_a_database_write_is_seen_by_a_dependent_part(database: Database) -> None:
    app = database.app

    @app.get("/things")
    def list_things() -> dict[str, Any]:
        return {"names": sorted(db.session.scalars(select(Thing.name)))}

    answers = run(
        app.test_client(),
        item("w", "POST", "/things/first"),
        item("r", "GET", "/things", dependsOn=["w"]),
        route="/batch",
    )
    assert answers[1]["body"]["names"] == ["first"]
