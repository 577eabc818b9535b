"""A small people + todos JSON API on SQLite: the application the demo sends its calls to.

It is an ordinary Flask app. One line, ``add_batch_route(app)``, adds the batch endpoint, and
no view knows about batching: that is the point. Calls that arrive inside a batch keep their
own status codes, headers, errors and side effects.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import weakref
from contextlib import closing
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, abort, current_app, g, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from flask_batch import add_batch_route

SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    name TEXT PRIMARY KEY,
    age INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS todos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    person TEXT NOT NULL REFERENCES people (name) ON DELETE CASCADE,
    title TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0
);
"""
PEOPLE = [("alice", 30), ("bob", 25), ("carol", 41)]
TODOS = [("alice", "buy milk"), ("alice", "call bob"), ("bob", "fix the bike")]

api = Blueprint("people", __name__)


def create_app(database: str = ":memory:") -> Flask:
    """Create the API on the SQLite file ``database``, creating and seeding it if it is new.

    ``":memory:"`` (the default) means a fresh database private to this app. It lives in a
    temporary file rather than in SQLite's memory because every request opens its own
    connection, possibly in another server thread, and each in-memory connection would see
    a different, empty database.
    """
    app = Flask(__name__)
    if database == ":memory:":
        tmp = tempfile.mkdtemp(prefix="people-api-")
        weakref.finalize(app, shutil.rmtree, tmp, ignore_errors=True)  # with the app, or at exit
        database = str(Path(tmp) / "people.sqlite3")
    app.config["DATABASE"] = database
    with closing(connect(database)) as db, db:
        db.executescript(SCHEMA)
        if db.execute("SELECT COUNT(*) FROM people").fetchone()[0] == 0:
            db.executemany("INSERT INTO people (name, age) VALUES (?, ?)", PEOPLE)
            db.executemany("INSERT INTO todos (person, title) VALUES (?, ?)", TODOS)
    app.register_blueprint(api)
    add_batch_route(app)  # POST /batch
    return app


def connect(database: str) -> sqlite3.Connection:
    """Open a connection that returns rows as mappings and enforces foreign keys."""
    db = sqlite3.connect(database)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA foreign_keys = ON")  # per connection: makes DELETE cascade to todos
    return db


@api.before_request
def open_db() -> None:
    """One connection per request: requests never share a transaction, even in a batch."""
    g.db = connect(current_app.config["DATABASE"])


@api.teardown_request
def close_db(_exc: BaseException | None) -> None:
    """Close the request's connection, whatever happened; uncommitted writes roll back."""
    db = g.pop("db", None)
    if db is not None:
        db.close()


def db() -> sqlite3.Connection:
    """The current request's connection."""
    conn: sqlite3.Connection = g.db
    return conn


@api.app_errorhandler(HTTPException)
def json_error(e: HTTPException) -> ResponseReturnValue:
    """Answer errors (404, 405, 400...) in JSON like everything else, keeping their headers."""
    headers = [(k, v) for k, v in e.get_headers() if k.lower() != "content-type"]  # e.g. Allow
    return jsonify(error=e.name, message=e.description), e.code or 500, headers


def json_object() -> dict[str, Any]:
    """The request's JSON body, which must be an object."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "expected a JSON object")
    return body


def find_person(name: str) -> dict[str, Any]:
    """The person called ``name``, or a 404 answer."""
    row = db().execute("SELECT name, age FROM people WHERE name = ?", (name,)).fetchone()
    if row is None:
        abort(404, f"no person named {name!r}")
    return dict(row)


def valid_age(age: Any) -> int:
    """``age`` if it is a plausible age, else a 400 answer (bool is an int; not an age)."""
    if not isinstance(age, int) or isinstance(age, bool) or not 0 <= age <= 150:
        abort(400, "age must be an integer from 0 to 150")
    return age


@api.get("/people/")
def list_people() -> ResponseReturnValue:
    rows = db().execute("SELECT name, age FROM people ORDER BY name").fetchall()
    return jsonify([dict(row) for row in rows])


@api.post("/people/")
def create_person() -> ResponseReturnValue:
    body = json_object()
    name, age = body.get("name"), valid_age(body.get("age"))
    if not isinstance(name, str) or not name.isidentifier():
        abort(400, "name must be a word")
    with db():  # commits, or rolls back on error
        exists = db().execute("SELECT 1 FROM people WHERE name = ?", (name,)).fetchone()
        if exists:
            abort(409, f"{name!r} already exists")
        db().execute("INSERT INTO people (name, age) VALUES (?, ?)", (name, age))
    location = url_for(".get_person", name=name)
    return jsonify(name=name, age=age), 201, {"Location": location}


@api.get("/people/<name>/")
def get_person(name: str) -> ResponseReturnValue:
    return jsonify(find_person(name))


@api.patch("/people/<name>/")
def update_person(name: str) -> ResponseReturnValue:
    age = valid_age(json_object().get("age"))
    find_person(name)
    with db():
        db().execute("UPDATE people SET age = ? WHERE name = ?", (age, name))
    return jsonify(find_person(name))


@api.delete("/people/<name>/")
def delete_person(name: str) -> ResponseReturnValue:
    find_person(name)
    with db():
        db().execute("DELETE FROM people WHERE name = ?", (name,))
    return "", 204


@api.get("/people/<name>/todos/")
def list_todos(name: str) -> ResponseReturnValue:
    find_person(name)
    rows = (
        db()
        .execute("SELECT id, title, done FROM todos WHERE person = ? ORDER BY id", (name,))
        .fetchall()
    )
    return jsonify([{**dict(row), "done": bool(row["done"])} for row in rows])


@api.post("/people/<name>/todos/")
def create_todo(name: str) -> ResponseReturnValue:
    title = json_object().get("title")
    if not isinstance(title, str) or not title.strip():
        abort(400, "title must be a non-empty string")
    find_person(name)
    with db():
        cursor = db().execute("INSERT INTO todos (person, title) VALUES (?, ?)", (name, title))
    todo = {"id": cursor.lastrowid, "title": title, "done": False}
    return jsonify(todo), 201
