"""What a real transaction hook costs: SQLAlchemy on a SQLite file, per write, in a group
against the same writes as plain parts, side by side, in-process.

The application keeps its rows in SQLite (WAL journal, as servers run it) through a
``scoped_session``; each ``PATCH /rows/<i>`` updates one row and calls ``session.commit()``.

- **plain**: N parts, each view's commit a transaction of its own (N commits);
- **1 group**: one changeset of the N writes under
  :func:`flask_batch.integrations.sqlalchemy.sqlalchemy_transactions`: one connection, each
  view's commit a savepoint, one commit for the group;
- **1 group, rolled back**: the same changeset whose last member fails (404), so the hook
  rolls every write back.

Rounds interleave the cases; each case over plain is taken within the round; medians.
Called by :mod:`bench.groups` (``python -m bench groups``); results go with its own.
"""

from __future__ import annotations

import statistics
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import scoped_session, sessionmaker

from bench.server_cost import batch_environ, run_batch
from bench.timing import timed
from bench.workload import Call, batch_body, changesets_body
from flask_batch import add_batch_route
from flask_batch.integrations.sqlalchemy import sqlalchemy_transactions

N = 100
ROUNDS = 20
CASES = ("plain", "1 group", "1 group, rolled back")


def create_app(path: Path, n: int) -> tuple[Flask, Engine]:
    """A Flask app whose rows live in SQLite at ``path``, its batch route under the hook."""
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _wal(connection: Any, record: Any) -> None:
        connection.execute("PRAGMA journal_mode=WAL")

    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE rows (id INTEGER PRIMARY KEY, count INTEGER)"))
        connection.execute(
            text("INSERT INTO rows (id, count) VALUES (:id, 0)"), [{"id": i} for i in range(n)]
        )
    sessions = scoped_session(sessionmaker(engine))
    app = Flask("hook_cost")

    @app.teardown_appcontext
    def _remove(exception: BaseException | None) -> None:
        sessions.remove()

    @app.patch("/rows/<int:row>")
    def patch_row(row: int) -> Response | tuple[Response, int]:
        count = request.get_json(force=True)["count"]
        session = sessions()
        updated = session.execute(
            text("UPDATE rows SET count = :count WHERE id = :id"), {"count": count, "id": row}
        )
        if updated.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return jsonify({"error": "no such row"}), 404
        session.commit()
        return jsonify({"id": row, "count": count})

    add_batch_route(app, transaction=sqlalchemy_transactions(sessions), max_group_size=n)
    return app, engine


def writes(n: int, *, missing_last: bool = False) -> list[Call]:
    rows = [*range(n - 1), n if missing_last else n - 1]  # row n does not exist
    return [Call("PATCH", f"/rows/{row}", {"count": i}) for i, row in enumerate(rows)]


def run(n: int = N, rounds: int = ROUNDS) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        app, engine = create_app(Path(directory) / "rows.sqlite", n)
        bodies = {
            "plain": batch_body(writes(n)),
            "1 group": changesets_body(writes(n), n),
            "1 group, rolled back": changesets_body(writes(n, missing_last=True), n),
        }
        seconds: dict[str, list[float]] = {name: [] for name in CASES}
        ratios: dict[str, list[float]] = {name: [] for name in CASES}
        for round_ in range(rounds + 1):  # round 0 warms up and is dropped
            this_round = {
                name: timed(partial(run_batch, app, batch_environ(body)))[0]
                for name, body in bodies.items()
            }
            if round_:
                for name, value in this_round.items():
                    seconds[name].append(value)
                    ratios[name].append(value / this_round["plain"])
        with engine.connect() as connection:  # the rolled-back case wrote nothing
            total = connection.execute(text("SELECT SUM(count) FROM rows")).scalar_one()
        engine.dispose()
    if total != sum(range(n)):
        raise AssertionError(f"the rows hold {total}: a rolled-back group left writes behind")
    return {"n": n, "rounds": rounds, "seconds": seconds, "ratio": ratios}


def section(data: Any) -> list[str]:
    """The report's table for this measurement (part of the atomic groups section)."""
    if not data:
        return []
    n = data["n"]
    lines = [
        f"A real hook: {n} writes to a SQLite file (WAL) through a SQLAlchemy `scoped_session`, "
        "each view committing, as plain parts (a transaction each) and as one changeset under "
        "`sqlalchemy_transactions` (one transaction, each view's commit a savepoint); the "
        "rolled-back changeset's last member fails (`bench/hook_cost.py`). Medians (min-max).",
        "",
        "| case | rounds | per write, µs | over plain |",
        "|---|---:|---:|---:|",
    ]
    for name, values in data["seconds"].items():
        per_write = [value / n * 1e6 for value in values]
        ratio = data["ratio"][name]
        lines.append(
            f"| {name} | {len(values)} | {statistics.median(per_write):.1f} "
            f"({min(per_write):.1f}-{max(per_write):.1f}) | "
            f"{statistics.median(ratio):.2f}x ({min(ratio):.2f}-{max(ratio):.2f}) |"
        )
    return [*lines, ""]
