"""A small Django project in one module (settings, URLs, views), behind the WSGI BatchMiddleware.

Two sites share it:

- accounts: Django's own sessions, authentication and CSRF middleware, so the tests can show
  each part is judged on its own;
- the farm and storage APIs of tests/google_apps.py, for Google's own clients.

Django's settings are process-wide: :func:`application` configures them once (a SQLite file
in a temporary directory, migrated for auth and sessions) and every test shares them; each
test resets the APIs' state with :func:`reset`.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import django
from django.conf import settings

from flask_batch.wsgi import BatchMiddleware
from tests.google_apps import (
    _WRITABLE_BUCKET_FIELDS,
    _WRITABLE_OBJECT_FIELDS,
    FARM_SEED,
    FARM_TOKEN,
    Call,
    FarmState,
    StorageState,
    _apply_patch,
    _apply_update,
    _bump,
    _storage_seed,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: The state of the APIs; :func:`reset` replaces them.
STATE: dict[str, Any] = {}
PASSWORD = "correct horse"


def reset() -> tuple[FarmState, StorageState]:
    """Fresh farm and storage state for the next test."""
    farm = FarmState(animals={k: {"id": k, **v} for k, v in FARM_SEED.items()})
    buckets, objects = _storage_seed()
    storage = StorageState(buckets=buckets, objects=objects)
    STATE.update(farm=farm, storage=storage)
    return farm, storage


def application(**options: Any) -> WSGIApplication:
    """Django's WSGI application, with batch routes at /batch and /batch/storage/v1."""
    _configure()
    from django.core.wsgi import get_wsgi_application  # noqa: PLC0415 (after settings)

    app = get_wsgi_application()
    app = BatchMiddleware(app, "/batch/storage/v1", **options)
    return _RecordBatches(BatchMiddleware(app, "/batch", **options))


class _RecordBatches:
    """Records the batch requests themselves (they never reach Django) as the Flask apps do."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/batch", "/batch/storage/v1") and STATE:
            calls: list[Call] = STATE["storage" if path != "/batch" else "farm"].calls
            calls.append(Call("POST", path, "", None, environ.get("HTTP_AUTHORIZATION")))
        return self.app(environ, start_response)


def _configure() -> None:
    if settings.configured:
        return
    directory = Path(tempfile.mkdtemp(prefix="flask-batch-django-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    settings.configure(
        DEBUG=False,
        SECRET_KEY="flask-batch-tests-only",
        ALLOWED_HOSTS=["localhost", "testserver", "127.0.0.1"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
        ],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            f"{__name__}.record_calls",
        ],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": directory / "db.sqlite3"}
        },
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        USE_TZ=True,
        LOGGING_CONFIG=None,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        # Tables straight from the models (syncdb): a fraction of a second, not one.
        MIGRATION_MODULES={"auth": None, "contenttypes": None, "sessions": None},
    )
    django.setup()
    from django.contrib.auth.models import User  # noqa: PLC0415 (after django.setup)
    from django.core.management import call_command  # noqa: PLC0415

    call_command("migrate", verbosity=0, run_syncdb=True)
    for name in ("alice", "bob"):
        User.objects.create_user(name, password=PASSWORD)


def record_calls(get_response: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Django middleware: record every request that reaches a farm or storage view."""

    def middleware(request: Any) -> Any:
        path: str = request.path
        if STATE and path.startswith(("/farm/", "/storage/")):
            body = None
            if request.content_type == "application/json":
                try:
                    body = json.loads(request.body)
                except ValueError:
                    body = None
            state = STATE["farm" if path.startswith("/farm/") else "storage"]
            state.calls.append(
                Call(
                    request.method,
                    path,
                    request.META.get("QUERY_STRING", ""),
                    body,
                    request.headers.get("Authorization"),
                )
            )
        return get_response(request)

    return middleware


# --------------------------------------------------------------------------------------
# Views
# --------------------------------------------------------------------------------------


def _json(document: Any, status: int = 200, content_type: str = "application/json") -> Any:
    from django.http import HttpResponse  # noqa: PLC0415 (Django is configured lazily)

    body = json.dumps(document, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return HttpResponse(body, status=status, content_type=content_type)


def _problem(status: int, detail: str) -> Any:
    from http import HTTPStatus  # noqa: PLC0415

    document = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    return _json(document, status, "application/problem+json")


def _body(request: Any) -> dict[str, Any] | None:
    try:
        body = json.loads(request.body)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


# Accounts: Django's sessions, authentication and CSRF protection, per part.


def csrf(request: Any) -> Any:
    from django.middleware.csrf import get_token  # noqa: PLC0415

    return _json({"token": get_token(request)})


def log_in(request: Any) -> Any:
    from django.contrib.auth import authenticate, login  # noqa: PLC0415

    if request.method != "POST":
        return _problem(405, "POST a username and a password")
    user = authenticate(
        request, username=request.POST.get("username"), password=request.POST.get("password")
    )
    if user is None:
        return _problem(401, "wrong username or password")
    login(request, user)
    return _json({"username": user.username})


def me(request: Any) -> Any:
    if not request.user.is_authenticated:
        return _problem(401, "log in first")
    return _json({"username": request.user.username, "notes": request.session.get("notes", [])})


def notes(request: Any) -> Any:
    if not request.user.is_authenticated:
        return _problem(401, "log in first")
    if request.method == "POST":
        request.session["notes"] = [*request.session.get("notes", []), request.POST["text"]]
        return _json(request.session["notes"], 201)
    return _json(request.session.get("notes", []))


# The farm API (google-api-python-client).


def animal(request: Any, animal_id: str) -> Any:
    farm: FarmState = STATE["farm"]
    found = farm.animals.get(animal_id)
    if request.method == "PUT":
        body = _body(request)
        if body is None:
            return _problem(400, "body must be a JSON object")
        farm.animals[animal_id] = {**body, "id": animal_id}
        return _json(farm.animals[animal_id], 200 if found else 201)
    if found is None:
        return _problem(404, f"no animal with id {animal_id!r}")
    if request.method == "DELETE":
        del farm.animals[animal_id]
        return _json("", 204)
    if request.method == "PATCH":
        body = _body(request)
        if body is None:
            return _problem(400, "body must be a JSON object")
        found.update({k: v for k, v in body.items() if k != "id"})
        return _json(found)
    fields = request.GET.get("fields")
    if fields:
        wanted = {name.strip() for name in fields.split(",")}
        found = {k: v for k, v in found.items() if k in wanted}
    return _json(found)


def animals(request: Any) -> Any:
    farm: FarmState = STATE["farm"]
    body = _body(request)
    if body is None or not isinstance(body.get("name"), str):
        return _problem(400, "body must be a JSON object with a string 'name'")
    animal_id = str(farm.next_id)
    farm.next_id += 1
    farm.animals[animal_id] = {**body, "id": animal_id}
    response = _json(farm.animals[animal_id], 201)
    response["Location"] = f"/farm/v1/animals/{animal_id}"
    return response


def owner(request: Any, animal_id: str) -> Any:
    if request.headers.get("Authorization") != f"Bearer {FARM_TOKEN}":
        response = _problem(401, "a valid bearer token is required")
        response["WWW-Authenticate"] = 'Bearer realm="farm"'
        return response
    if animal_id not in STATE["farm"].animals:
        return _problem(404, f"no animal with id {animal_id!r}")
    return _json({"animal": animal_id, "owner": "Farmer Hoggett"})


def crash(request: Any, animal_id: str) -> Any:
    raise RuntimeError(f"the tractor ran over animal {animal_id}")


# The Cloud Storage emulation (google-cloud-storage).


def _gcs_error(code: int, message: str, reason: str) -> Any:
    error = {"message": message, "domain": "global", "reason": reason}
    return _json({"error": {"code": code, "message": message, "errors": [error]}}, code)


def bucket(request: Any, name: str) -> Any:
    storage: StorageState = STATE["storage"]
    resource = storage.buckets.get(name)
    if resource is None:
        return _gcs_error(404, "The specified bucket does not exist.", "notFound")
    if request.method in ("PATCH", "PUT"):
        body = _body(request)
        if body is None:
            return _gcs_error(400, "Invalid JSON payload received.", "parseError")
        apply = _apply_patch if request.method == "PATCH" else _apply_update
        apply(resource, body, _WRITABLE_BUCKET_FIELDS)
        _bump(resource)
    return _json(resource)


def blob(request: Any, name: str, path: str) -> Any:
    storage: StorageState = STATE["storage"]
    if name not in storage.buckets:
        return _gcs_error(404, "The specified bucket does not exist.", "notFound")
    resource = storage.objects.get((name, path))
    if resource is None:
        return _gcs_error(404, f"No such object: {name}/{path}", "notFound")
    if request.method == "DELETE":
        del storage.objects[(name, path)]
        return _json("", 204)
    if request.method in ("PATCH", "PUT"):
        body = _body(request)
        if body is None:
            return _gcs_error(400, "Invalid JSON payload received.", "parseError")
        apply = _apply_patch if request.method == "PATCH" else _apply_update
        apply(resource, body, _WRITABLE_OBJECT_FIELDS)
        _bump(resource)
    return _json(resource)


def _urlpatterns() -> list[Any]:
    from django.urls import include, path  # noqa: PLC0415
    from django.views.decorators.csrf import csrf_exempt  # noqa: PLC0415

    return [
        path("accounts/csrf", csrf),
        path("accounts/login", log_in),
        path("accounts/me", me),
        path("accounts/notes/", notes),
        path("farm/v1/animals", csrf_exempt(animals)),
        path("farm/v1/animals/<str:animal_id>", csrf_exempt(animal)),
        path("farm/v1/animals/<str:animal_id>/owner", owner),
        path("farm/v1/animals/<str:animal_id>/crash", crash),
        path("storage/v1/b/<str:name>", csrf_exempt(bucket)),
        path("storage/v1/b/<str:name>/o/<path:path>", csrf_exempt(blob)),
        # The ledger of the integration tests (tests/ledger.py).
        path("", include("tests.frameworks.django_ledger")),
    ]


def __getattr__(name: str) -> Any:
    # Django reads ROOT_URLCONF's urlpatterns once it is configured.
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)
