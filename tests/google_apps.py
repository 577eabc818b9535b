"""Small Flask apps that Google's own Python clients can talk to, each with a batch route.

Why: the end-to-end tests check that Flask-Batch speaks the dialect of clients nobody here
wrote (google-api-python-client and google-cloud-storage). These apps implement just the
endpoints those clients call, in the response shapes they expect, and record every request
they see so the tests can prove each sub-request reached the right view.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from werkzeug.http import HTTP_STATUS_CODES

from flask_batch import add_batch_route

DATA_DIR = Path(__file__).parent / "data"
FARM_DISCOVERY_PATH = DATA_DIR / "farm-v1-discovery.json"

#: The only token the farm accepts on its protected endpoint.
FARM_TOKEN = "let-me-in"

JSONObject = dict[str, Any]


@dataclass(frozen=True)
class Call:
    """One request as a view saw it: proves which sub-request reached which view."""

    method: str
    path: str
    query: str
    body: Any
    authorization: str | None


def _record(calls: list[Call]) -> None:
    """Append the current request to ``calls`` (before_request hook).

    The body is read only when it is JSON, so the outer multipart batch stream stays
    untouched for the batch view.
    """
    body = request.get_json(silent=True) if request.is_json else None
    calls.append(
        Call(
            method=request.method,
            path=request.path,
            query=request.query_string.decode("latin-1"),
            body=body,
            authorization=request.headers.get("Authorization"),
        )
    )


def _json(payload: Any, status: int = 200, mimetype: str = "application/json") -> Response:
    """A JSON answer in raw UTF-8 (not \\u escapes), so batch answers carry non-ASCII bytes."""
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True)
    return Response(body.encode("utf-8"), status=status, mimetype=mimetype)


def _json_body() -> JSONObject | None:
    """The request's JSON object, or None when the body is not a JSON object."""
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


# --------------------------------------------------------------------------------------
# Farm: a small JSON API under /farm/v1, described by tests/data/farm-v1-discovery.json.
# --------------------------------------------------------------------------------------

#: Ids match the wire samples under tests/data/wire-samples/google-api-python-client.
FARM_SEED: Mapping[str, JSONObject] = {
    "1": {"name": "Molly", "species": "cow"},
    "2": {"name": "Timmy", "species": "sheep"},
    "3": {"name": "Gromit", "species": "dog"},
    "8": {"name": "Boxer", "species": "horse"},
    "10": {"name": "Wilbur", "species": "pig"},
    "11": {"name": "Billy", "species": "sheep"},
    "12": {"name": "Ferdinand", "species": "bull"},
}


@dataclass
class FarmState:
    """What the farm app holds and saw; tests assert on it after a batch."""

    animals: dict[str, JSONObject]
    calls: list[Call] = field(default_factory=list)
    next_id: int = 100

    def farm_calls(self) -> list[tuple[str, str, str]]:
        """(method, path, query) of the calls that reached farm views, in order."""
        return [(c.method, c.path, c.query) for c in self.calls if c.path.startswith("/farm/")]

    def batch_posts(self) -> int:
        """How many outer batch requests arrived."""
        return sum(1 for c in self.calls if c.path == "/batch")


def _problem(status: int, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    """An RFC 9457 problem answer."""
    payload = {
        "type": "about:blank",
        "title": HTTP_STATUS_CODES[status],
        "status": status,
        "detail": detail,
    }
    response = _json(payload, status, "application/problem+json")
    response.headers.update(headers or {})
    return response


def load_farm_discovery(root_url: str) -> JSONObject:
    """The farm's discovery document with ``rootUrl`` pointing at ``root_url``."""
    document: JSONObject = json.loads(FARM_DISCOVERY_PATH.read_text(encoding="utf-8"))
    document["rootUrl"] = root_url.rstrip("/") + "/"
    return document


def create_farm_app() -> tuple[Flask, FarmState]:
    """The farm API with a batch route at /batch, and its state."""
    app = Flask("farm")
    state = FarmState(animals={k: {"id": k, **v} for k, v in copy.deepcopy(FARM_SEED).items()})
    app.before_request(lambda: _record(state.calls))

    def missing(animal_id: str) -> Response:
        return _problem(404, f"no animal with id {animal_id!r}")

    @app.get("/farm/v1/animals/<animal_id>")
    def get_animal(animal_id: str) -> Response:
        animal = state.animals.get(animal_id)
        if animal is None:
            return missing(animal_id)
        fields = request.args.get("fields")
        if fields:  # Google-style partial response: a comma-separated list of keys.
            wanted = {name.strip() for name in fields.split(",")}
            animal = {k: v for k, v in animal.items() if k in wanted}
        return _json(animal)

    @app.post("/farm/v1/animals")
    def create_animal() -> Response:
        body = _json_body()
        if body is None or not isinstance(body.get("name"), str):
            return _problem(400, "body must be a JSON object with a string 'name'")
        animal_id = str(state.next_id)
        state.next_id += 1
        state.animals[animal_id] = {**body, "id": animal_id}
        response = _json(state.animals[animal_id], 201)
        response.headers["Location"] = f"/farm/v1/animals/{animal_id}"
        return response

    @app.patch("/farm/v1/animals/<animal_id>")
    def patch_animal(animal_id: str) -> Response:
        animal = state.animals.get(animal_id)
        if animal is None:
            return missing(animal_id)
        body = _json_body()
        if body is None:
            return _problem(400, "body must be a JSON object")
        animal.update({k: v for k, v in body.items() if k != "id"})
        return _json(animal)

    @app.put("/farm/v1/animals/<animal_id>")
    def put_animal(animal_id: str) -> Response:
        body = _json_body()
        if body is None:
            return _problem(400, "body must be a JSON object")
        existed = animal_id in state.animals
        state.animals[animal_id] = {**body, "id": animal_id}
        return _json(state.animals[animal_id], 200 if existed else 201)

    @app.delete("/farm/v1/animals/<animal_id>")
    def delete_animal(animal_id: str) -> Response:
        if state.animals.pop(animal_id, None) is None:
            return missing(animal_id)
        return Response(status=204)

    @app.get("/farm/v1/animals/<animal_id>/owner")
    def get_owner(animal_id: str) -> Response:
        if request.headers.get("Authorization") != f"Bearer {FARM_TOKEN}":
            return _problem(
                401, "a valid bearer token is required", {"WWW-Authenticate": 'Bearer realm="farm"'}
            )
        if animal_id not in state.animals:
            return missing(animal_id)
        return _json({"animal": animal_id, "owner": "Farmer Hoggett"})

    @app.get("/farm/v1/animals/<animal_id>/crash")
    def crash(animal_id: str) -> Response:
        raise RuntimeError(f"the tractor ran over animal {animal_id}")

    add_batch_route(app)
    return app, state


# --------------------------------------------------------------------------------------
# Cloud Storage JSON API emulation under /storage/v1, batch route /batch/storage/v1.
# --------------------------------------------------------------------------------------

PROJECT_NUMBER = "123456789"
BUCKET = "my-bucket"

_WRITABLE_OBJECT_FIELDS = frozenset(
    {
        "cacheControl",
        "contentDisposition",
        "contentEncoding",
        "contentLanguage",
        "contentType",
        "customTime",
        "eventBasedHold",
        "metadata",
        "temporaryHold",
    }
)
_WRITABLE_BUCKET_FIELDS = frozenset(
    {
        "billing",
        "cors",
        "defaultEventBasedHold",
        "iamConfiguration",
        "labels",
        "lifecycle",
        "logging",
        "retentionPolicy",
        "storageClass",
        "versioning",
        "website",
    }
)
#: Keys whose PATCH merges into the existing map (a null value removes a key), as in GCS.
_MERGED_MAPS = frozenset({"metadata", "labels"})


def _timestamp(metageneration: int) -> str:
    """A deterministic RFC 3339 timestamp that moves with each metadata change."""
    return f"2024-05-01T12:00:{metageneration:02d}.000Z"


def _object_resource(
    bucket: str, name: str, content: bytes, extra: JSONObject | None = None
) -> JSONObject:
    """An object resource in the shape the JSON API returns with projection=full."""
    generation = "1714564800000001"
    resource: JSONObject = {
        "kind": "storage#object",
        "id": f"{bucket}/{name}/{generation}",
        "name": name,
        "bucket": bucket,
        "generation": generation,
        "metageneration": "1",
        "contentType": "text/plain",
        "storageClass": "STANDARD",
        "size": str(len(content)),
        "md5Hash": "XUFAKrxLKna5cZ2REBfFkg==",
        "crc32c": "mnG7TA==",
        "etag": "CIGo2dDV8YUDEAE=",
        "timeCreated": _timestamp(1),
        "updated": _timestamp(1),
    }
    resource.update(extra or {})
    return resource


def _bucket_resource(name: str, labels: Mapping[str, str]) -> JSONObject:
    """A bucket resource in the shape the JSON API returns with projection=full."""
    return {
        "kind": "storage#bucket",
        "id": name,
        "name": name,
        "projectNumber": PROJECT_NUMBER,
        "metageneration": "1",
        "location": "US",
        "locationType": "multi-region",
        "storageClass": "STANDARD",
        "etag": "CAE=",
        "timeCreated": _timestamp(1),
        "updated": _timestamp(1),
        "labels": dict(labels),
    }


def _storage_seed() -> tuple[dict[str, JSONObject], dict[tuple[str, str], JSONObject]]:
    """Buckets and objects named in the google-cloud-storage wire samples, and a few more."""
    buckets = {BUCKET: _bucket_resource(BUCKET, {"team": "storage"})}
    objects = {
        (BUCKET, "dir/a.txt"): _object_resource(
            BUCKET, "dir/a.txt", b"a", {"metadata": {"owner": "ann"}}
        ),
        (BUCKET, "c d+é.txt"): _object_resource(BUCKET, "c d+é.txt", b"cde"),
        (BUCKET, "u.txt"): _object_resource(BUCKET, "u.txt", b"uu", {"contentLanguage": "fr"}),
        (BUCKET, "b.txt"): _object_resource(BUCKET, "b.txt", b"bbb"),
        (BUCKET, "x.txt"): _object_resource(BUCKET, "x.txt", b"xxxx", {"metadata": {"k": "old"}}),
        (BUCKET, "keep.txt"): _object_resource(BUCKET, "keep.txt", b"keep"),
    }
    return buckets, objects


@dataclass
class StorageState:
    """What the storage emulation holds and saw; tests assert on it after a batch."""

    buckets: dict[str, JSONObject]
    objects: dict[tuple[str, str], JSONObject]
    calls: list[Call] = field(default_factory=list)

    def storage_calls(self) -> list[Call]:
        """The calls that reached storage views, in order."""
        return [c for c in self.calls if c.path.startswith("/storage/")]

    def batch_posts(self) -> int:
        """How many outer batch requests arrived."""
        return sum(1 for c in self.calls if c.path == "/batch/storage/v1")


def _gcs_error(code: int, message: str, reason: str) -> Response:
    """An error in the JSON API's shape, which google.api_core turns into exceptions."""
    error = {"message": message, "domain": "global", "reason": reason}
    return _json({"error": {"code": code, "message": message, "errors": [error]}}, code)


def _apply_patch(resource: JSONObject, body: JSONObject, writable: frozenset[str]) -> None:
    """PATCH semantics: set given writable fields, null removes, metadata/labels merge."""
    for key, value in body.items():
        if key not in writable:
            continue  # Output-only fields are ignored, as the real service does.
        if value is None:
            resource.pop(key, None)
        elif key in _MERGED_MAPS and isinstance(value, dict):
            merged = {**resource.get(key, {}), **value}
            resource[key] = {k: v for k, v in merged.items() if v is not None}
        else:
            resource[key] = value


def _apply_update(resource: JSONObject, body: JSONObject, writable: frozenset[str]) -> None:
    """PUT semantics: writable fields are replaced wholesale; absent ones are cleared."""
    for key in writable:
        resource.pop(key, None)
    _apply_patch(resource, body, writable)


def _bump(resource: JSONObject) -> None:
    """A metadata change increments metageneration and moves ``updated``."""
    metageneration = int(resource["metageneration"]) + 1
    resource["metageneration"] = str(metageneration)
    resource["updated"] = _timestamp(metageneration)


def create_storage_app() -> tuple[Flask, StorageState]:
    """The storage emulation with a batch route at /batch/storage/v1, and its state."""
    app = Flask("storage")
    buckets, objects = _storage_seed()
    state = StorageState(buckets=buckets, objects=objects)
    app.before_request(lambda: _record(state.calls))

    def no_bucket() -> Response:
        return _gcs_error(404, "The specified bucket does not exist.", "notFound")

    def no_object(bucket: str, name: str) -> Response:
        return _gcs_error(404, f"No such object: {bucket}/{name}", "notFound")

    def bad_body() -> Response:
        return _gcs_error(400, "Invalid JSON payload received.", "parseError")

    @app.route("/storage/v1/b/<bucket>", methods=["GET", "PATCH", "PUT"])
    def bucket_resource(bucket: str) -> Response:
        resource = state.buckets.get(bucket)
        if resource is None:
            return no_bucket()
        if request.method != "GET":
            body = _json_body()
            if body is None:
                return bad_body()
            apply = _apply_patch if request.method == "PATCH" else _apply_update
            apply(resource, body, _WRITABLE_BUCKET_FIELDS)
            _bump(resource)
        return _json(resource)

    @app.route("/storage/v1/b/<bucket>/o/<path:name>", methods=["GET", "PATCH", "PUT", "DELETE"])
    def object_resource(bucket: str, name: str) -> Response:
        if bucket not in state.buckets:
            return no_bucket()
        resource = state.objects.get((bucket, name))
        if resource is None:
            return no_object(bucket, name)
        if request.method == "DELETE":
            del state.objects[(bucket, name)]
            return Response(status=204)
        if request.method != "GET":
            body = _json_body()
            if body is None:
                return bad_body()
            apply = _apply_patch if request.method == "PATCH" else _apply_update
            apply(resource, body, _WRITABLE_OBJECT_FIELDS)
            _bump(resource)
        return _json(resource)

    add_batch_route(app, "/batch/storage/v1", "batch_storage")
    return app, state
