"""A small people + todos JSON API on SQLite: the application the demo sends its calls to.

It is an ordinary Flask app on SQLAlchemy (a ``scoped_session``, removed as each request
ends, as Flask's docs have it). One line adds the batch endpoint,
``add_batch_route(app, transaction=sqlalchemy_transactions(sessions))``, and no view knows
about batching: that is the point. Calls that arrive inside a batch keep their own status
codes, headers, errors and side effects; the calls of a changeset are applied all together
or not at all, though each view commits its own work.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, abort, current_app, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import create_engine, event, text
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from werkzeug.exceptions import HTTPException

from flask_batch import add_batch_route
from flask_batch.integrations.sqlalchemy import sqlalchemy_transactions

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
    temporary file rather than in SQLite's memory because every request has its own
    connection, possibly in another server thread, and each in-memory connection would see
    a different, empty database. ``app.config["DATABASE"]`` says where it is.
    """
    app = Flask(__name__)
    if database == ":memory:":
        tmp = tempfile.mkdtemp(prefix="people-api-")
        weakref.finalize(app, shutil.rmtree, tmp, ignore_errors=True)  # with the app, or at exit
        database = str(Path(tmp) / "people.sqlite3")
    app.config["DATABASE"] = database
    engine = create_engine(f"sqlite:///{database}")
    event.listen(engine, "connect", enforce_foreign_keys)
    weakref.finalize(app, engine.dispose)
    with engine.begin() as connection:
        for statement in filter(str.strip, SCHEMA.split(";")):
            connection.execute(text(statement))
        if connection.execute(text("SELECT COUNT(*) FROM people")).scalar() == 0:
            connection.execute(text(_ADD_PERSON), [{"name": n, "age": a} for n, a in PEOPLE])
            connection.execute(text(_ADD_TODO), [{"person": p, "title": t} for p, t in TODOS])
    sessions = scoped_session(sessionmaker(engine))
    app.extensions["people_api"] = sessions
    app.teardown_appcontext(lambda _exc: sessions.remove())  # uncommitted writes roll back
    app.register_blueprint(api)
    # POST /batch; each changeset in one transaction, which the views' commits do not end.
    add_batch_route(app, transaction=sqlalchemy_transactions(sessions))
    return app


_ADD_PERSON = "INSERT INTO people (name, age) VALUES (:name, :age)"
_ADD_TODO = "INSERT INTO todos (person, title) VALUES (:person, :title)"


def enforce_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    """SQLite enforces foreign keys per connection, when asked: makes DELETE cascade to
    todos."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def db() -> Session:
    """The current request's session."""
    session: Session = current_app.extensions["people_api"]()
    return session


def rows(query: str, **values: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in db().execute(text(query), values).mappings()]


def write(statement: str, **values: Any) -> int:
    """Run ``statement`` and commit, as a view does; the id of the row it added, if any."""
    row_id: int = db().execute(text(statement), values).lastrowid  # type: ignore[attr-defined]
    db().commit()
    return row_id


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
    found = rows("SELECT name, age FROM people WHERE name = :name", name=name)
    if not found:
        abort(404, f"no person named {name!r}")
    return found[0]


def valid_age(age: Any) -> int:
    """``age`` if it is a plausible age, else a 400 answer (bool is an int; not an age)."""
    if not isinstance(age, int) or isinstance(age, bool) or not 0 <= age <= 150:
        abort(400, "age must be an integer from 0 to 150")
    return age


@api.get("/people/")
def list_people() -> ResponseReturnValue:
    return jsonify(rows("SELECT name, age FROM people ORDER BY name"))


@api.post("/people/")
def create_person() -> ResponseReturnValue:
    body = json_object()
    name, age = body.get("name"), valid_age(body.get("age"))
    if not isinstance(name, str) or not name.isidentifier():
        abort(400, "name must be a word")
    if rows("SELECT name FROM people WHERE name = :name", name=name):
        abort(409, f"{name!r} already exists")
    write(_ADD_PERSON, name=name, age=age)
    location = url_for(".get_person", name=name)
    return jsonify(name=name, age=age), 201, {"Location": location}


@api.get("/people/<name>/")
def get_person(name: str) -> ResponseReturnValue:
    return jsonify(find_person(name))


@api.patch("/people/<name>/")
def update_person(name: str) -> ResponseReturnValue:
    age = valid_age(json_object().get("age"))
    find_person(name)
    write("UPDATE people SET age = :age WHERE name = :name", age=age, name=name)
    return jsonify(find_person(name))


@api.delete("/people/<name>/")
def delete_person(name: str) -> ResponseReturnValue:
    find_person(name)
    write("DELETE FROM people WHERE name = :name", name=name)
    return "", 204


@api.get("/people/<name>/todos/")
def list_todos(name: str) -> ResponseReturnValue:
    find_person(name)
    todos = rows("SELECT id, title, done FROM todos WHERE person = :name ORDER BY id", name=name)
    return jsonify([{**todo, "done": bool(todo["done"])} for todo in todos])


@api.post("/people/<name>/todos/")
def create_todo(name: str) -> ResponseReturnValue:
    title = json_object().get("title")
    if not isinstance(title, str) or not title.strip():
        abort(400, "title must be a non-empty string")
    find_person(name)
    todo_id = write(_ADD_TODO, person=name, title=title)
    return jsonify(id=todo_id, title=title, done=False), 201
