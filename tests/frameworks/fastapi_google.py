"""The farm and storage APIs of tests/google_apps.py in FastAPI, behind the ASGI BatchMiddleware,
for Google's own clients (tests/test_google_clients.py)."""

# No ``from __future__ import annotations``: FastAPI reads the annotations at run time.
import json
from collections.abc import MutableMapping
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import Response

from flask_batch.asgi import BatchMiddleware
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

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


def _json(document: Any, status: int = 200, media_type: str = "application/json") -> Response:
    body = json.dumps(document, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return Response(body, status_code=status, media_type=media_type)


def _problem(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    document = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    response = _json(document, status, "application/problem+json")
    response.headers.update(headers or {})
    return response


async def _body(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class Recorder:
    """Pure ASGI middleware recording every request that reaches the app (parts included).

    With ``only`` it records only requests to those paths: put outside the batch middleware,
    it records the batch requests themselves, which never reach the app.
    """

    def __init__(self, app: Any, calls: list[Call], only: tuple[str, ...] = ()) -> None:
        self.app = app
        self.calls = calls
        self.only = only

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or (self.only and scope["path"] not in self.only):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = None
        replay = receive
        if not self.only:
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            data = b"".join(chunks)
            if headers.get("content-type", "").startswith("application/json"):
                try:
                    body = json.loads(data)
                except ValueError:
                    body = None
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": data, "more_body": False}
                return await receive()  # type: ignore[no-any-return]

        query = scope["query_string"].decode("latin-1")
        call = Call(scope["method"], scope["path"], query, body, headers.get("authorization"))
        self.calls.append(call)
        await self.app(scope, replay, send)


def _wrap(app: FastAPI, calls: list[Call], batch_path: str) -> Any:
    inner = Recorder(app, calls)
    return Recorder(BatchMiddleware(inner, batch_path), calls, only=(batch_path,))


def _require_token(authorization: Annotated[str | None, Header()] = None) -> None:
    if authorization != f"Bearer {FARM_TOKEN}":
        raise HTTPException(
            401,
            "a valid bearer token is required",
            headers={"WWW-Authenticate": 'Bearer realm="farm"'},
        )


def create_farm_app() -> tuple[Any, FarmState]:
    """The farm API with a batch route at /batch, and its state."""
    state = FarmState(animals={k: {"id": k, **v} for k, v in FARM_SEED.items()})
    app = FastAPI()

    @app.exception_handler(HTTPException)
    async def problem(request: Request, error: HTTPException) -> Response:
        return _problem(error.status_code, str(error.detail), dict(error.headers or {}))

    def missing(animal_id: str) -> Response:
        return _problem(404, f"no animal with id {animal_id!r}")

    @app.get("/farm/v1/animals/{animal_id}")
    async def get_animal(animal_id: str, fields: str | None = None) -> Response:
        animal = state.animals.get(animal_id)
        if animal is None:
            return missing(animal_id)
        if fields:
            wanted = {name.strip() for name in fields.split(",")}
            animal = {k: v for k, v in animal.items() if k in wanted}
        return _json(animal)

    @app.post("/farm/v1/animals")
    async def create_animal(request: Request) -> Response:
        body = await _body(request)
        if body is None or not isinstance(body.get("name"), str):
            return _problem(400, "body must be a JSON object with a string 'name'")
        animal_id = str(state.next_id)
        state.next_id += 1
        state.animals[animal_id] = {**body, "id": animal_id}
        response = _json(state.animals[animal_id], 201)
        response.headers["Location"] = f"/farm/v1/animals/{animal_id}"
        return response

    @app.patch("/farm/v1/animals/{animal_id}")
    async def patch_animal(animal_id: str, request: Request) -> Response:
        animal = state.animals.get(animal_id)
        if animal is None:
            return missing(animal_id)
        body = await _body(request)
        if body is None:
            return _problem(400, "body must be a JSON object")
        animal.update({k: v for k, v in body.items() if k != "id"})
        return _json(animal)

    @app.put("/farm/v1/animals/{animal_id}")
    async def put_animal(animal_id: str, request: Request) -> Response:
        body = await _body(request)
        if body is None:
            return _problem(400, "body must be a JSON object")
        existed = animal_id in state.animals
        state.animals[animal_id] = {**body, "id": animal_id}
        return _json(state.animals[animal_id], 200 if existed else 201)

    @app.delete("/farm/v1/animals/{animal_id}")
    async def delete_animal(animal_id: str) -> Response:
        if state.animals.pop(animal_id, None) is None:
            return missing(animal_id)
        return Response(status_code=204)

    @app.get("/farm/v1/animals/{animal_id}/owner", dependencies=[Depends(_require_token)])
    async def get_owner(animal_id: str) -> Response:
        if animal_id not in state.animals:
            return missing(animal_id)
        return _json({"animal": animal_id, "owner": "Farmer Hoggett"})

    @app.get("/farm/v1/animals/{animal_id}/crash")
    async def crash(animal_id: str) -> Response:
        raise RuntimeError(f"the tractor ran over animal {animal_id}")

    return _wrap(app, state.calls, "/batch"), state


def _gcs_error(code: int, message: str, reason: str) -> Response:
    error = {"message": message, "domain": "global", "reason": reason}
    return _json({"error": {"code": code, "message": message, "errors": [error]}}, code)


def create_storage_app() -> tuple[Any, StorageState]:
    """The storage emulation with a batch route at /batch/storage/v1, and its state."""
    buckets, objects = _storage_seed()
    state = StorageState(buckets=buckets, objects=objects)
    app = FastAPI()

    def no_bucket() -> Response:
        return _gcs_error(404, "The specified bucket does not exist.", "notFound")

    def bad_body() -> Response:
        return _gcs_error(400, "Invalid JSON payload received.", "parseError")

    @app.api_route("/storage/v1/b/{bucket}", methods=["GET", "PATCH", "PUT"])
    async def bucket_resource(bucket: str, request: Request) -> Response:
        resource = state.buckets.get(bucket)
        if resource is None:
            return no_bucket()
        if request.method != "GET":
            body = await _body(request)
            if body is None:
                return bad_body()
            apply = _apply_patch if request.method == "PATCH" else _apply_update
            apply(resource, body, _WRITABLE_BUCKET_FIELDS)
            _bump(resource)
        return _json(resource)

    @app.api_route(
        "/storage/v1/b/{bucket}/o/{name:path}", methods=["GET", "PATCH", "PUT", "DELETE"]
    )
    async def object_resource(bucket: str, name: str, request: Request) -> Response:
        if bucket not in state.buckets:
            return no_bucket()
        resource = state.objects.get((bucket, name))
        if resource is None:
            return _gcs_error(404, f"No such object: {bucket}/{name}", "notFound")
        if request.method == "DELETE":
            del state.objects[(bucket, name)]
            return Response(status_code=204)
        if request.method != "GET":
            body = await _body(request)
            if body is None:
                return bad_body()
            apply = _apply_patch if request.method == "PATCH" else _apply_update
            apply(resource, body, _WRITABLE_OBJECT_FIELDS)
            _bump(resource)
        return _json(resource)

    return _wrap(app, state.calls, "/batch/storage/v1"), state
