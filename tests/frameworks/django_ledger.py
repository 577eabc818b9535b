"""The ledger API of tests/ledger.py in Django (raw SQL on a database of the test's own),
on the project of tests/frameworks/django_site.py, which routes these URLs here.

Django's settings are global: :func:`ledger` adds the test's database under a new alias
(with ``ATOMIC_REQUESTS`` on or off), points the views at it, and takes it away after.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from itertools import count
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from flask_batch.integrations.django import django_transactions

from ..databases import Database
from ..ledger import CHECKPOINTS, Ledger, WsgiLedger
from . import django_site

#: The alias the views use: the running test's database.
USING = DEFAULT_DB_ALIAS
#: The entries whose ``transaction.on_commit`` callbacks ran, in order.
COMMITTED: list[str] = []
_aliases = count(1)


@contextmanager
def ledger(database: Database, *, atomic_requests: bool) -> Iterator[Ledger]:
    global USING  # noqa: PLW0603 (Django's settings are global too)
    app = django_site.application()
    alias = f"ledger_{next(_aliases)}"
    settings = {**database.django, "ATOMIC_REQUESTS": atomic_requests}
    default = connections.settings[DEFAULT_DB_ALIAS]
    configured = connections.configure_settings({DEFAULT_DB_ALIAS: default, alias: settings})
    connections.settings[alias] = configured[alias]
    USING = alias
    COMMITTED.clear()
    try:
        yield WsgiLedger(app, django_transactions(alias), IntegrityError)
    finally:
        USING = DEFAULT_DB_ALIAS
        connections[alias].close()
        del connections.settings[alias]


def _insert(statement: str, values: list[Any]) -> bool:
    """Run ``statement`` in an atomic block of the view's own (a savepoint inside a group's
    block), as a Django view commits; whether the database took it."""
    try:
        with transaction.atomic(using=USING), connections[USING].cursor() as cursor:
            cursor.execute(statement, values)
    except IntegrityError:
        return False
    return True


def entries(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        body = json.loads(request.body)
        insert = "INSERT INTO entries (name, amount) VALUES (%s, %s)"
        if not _insert(insert, [body["name"], body["amount"]]):
            return JsonResponse({"detail": f"entry {body['name']!r} refused"}, status=409)
        transaction.on_commit(partial(COMMITTED.append, body["name"]), using=USING)
        if body.get("crash"):
            raise RuntimeError("the view crashed after its commit")
        return JsonResponse({"name": body["name"]}, status=201)
    return JsonResponse(_entries_seen(), safe=False)


def _entries_seen() -> list[list[Any]]:
    with connections[USING].cursor() as cursor:
        cursor.execute("SELECT name, amount FROM entries ORDER BY name")
        return [list(row) for row in cursor.fetchall()]


def checkpoint(request: HttpRequest) -> JsonResponse:
    seen = _entries_seen()
    CHECKPOINTS[json.loads(request.body)["at"]](seen)
    return JsonResponse({"seen": seen})


def holds(request: HttpRequest) -> JsonResponse:
    entry = json.loads(request.body)["entry"]
    if not _insert("INSERT INTO holds (entry) VALUES (%s)", [entry]):
        return JsonResponse({"detail": f"no entry {entry!r}"}, status=409)
    return JsonResponse({"entry": entry}, status=201)


def session(request: HttpRequest) -> JsonResponse:
    connection = connections[USING]
    state = {
        "in_atomic_block": connection.in_atomic_block,
        "needs_rollback": connection.needs_rollback,
        "autocommit": connection.get_autocommit(),
        "spared": "close_if_unusable_or_obsolete" in vars(connection),
    }
    # ATOMIC_REQUESTS puts this view in an atomic block of its own.
    expected = connection.settings_dict["ATOMIC_REQUESTS"]
    clean = state == {
        "in_atomic_block": expected,
        "needs_rollback": False,
        "autocommit": not expected,
        "spared": False,
    }
    return JsonResponse({"clean": clean, "state": state})


def rollback_quietly(request: HttpRequest) -> JsonResponse:
    """Marks the innermost atomic block for rollback, and answers as if all went well."""
    transaction.set_rollback(True, using=USING)
    return JsonResponse({}, status=200)


urlpatterns = [
    path("entries", csrf_exempt(entries)),
    path("holds", csrf_exempt(holds)),
    path("session", session),
    path("rollback-quietly", csrf_exempt(rollback_quietly)),
    path("checkpoint", csrf_exempt(checkpoint)),
]
