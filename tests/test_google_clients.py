"""End to end: Google's own Python clients batch against Flask-Batch over a real socket.

Why: nobody here wrote google-api-python-client or google-cloud-storage, so if their
batches work unchanged (every answer routed back to the right caller, every sub-request
reaching the right view) the server speaks the dialect for real, not just our reading of it.

Every test runs against the same small APIs written three ways: Flask with the extension
(tests/google_apps.py), Django with the WSGI BatchMiddleware (Werkzeug's server) and FastAPI
with the ASGI BatchMiddleware (uvicorn), in tests/frameworks/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import google_auth_httplib2
import httplib2
import pytest
from google.api_core.exceptions import NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest, HttpRequest
from googleapiclient.model import JsonModel

from tests.frameworks import django_site, fastapi_google
from tests.frameworks.serving import asgi_server
from tests.google_apps import (
    BUCKET,
    FARM_TOKEN,
    Call,
    FarmState,
    StorageState,
    create_farm_app,
    create_storage_app,
    load_farm_discovery,
)
from tests.servers import live_server

FRAMEWORKS = ["flask", "django", "fastapi"]


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def django_base() -> Iterator[str]:
    """One Django server for the module (Django's settings are process-wide anyway)."""
    with live_server(django_site.application()) as base:
        yield base


def serve(
    framework: str, request: pytest.FixtureRequest, api: str
) -> tuple[AbstractContextManager[str], Any]:
    """A server of a fresh ``api`` ("farm" or "storage") in ``framework``, and its state."""
    if framework == "django":
        farm, storage = django_site.reset()
        base: str = request.getfixturevalue("django_base")
        return nullcontext(base), farm if api == "farm" else storage
    if framework == "flask":
        app, state = create_farm_app() if api == "farm" else create_storage_app()
        return live_server(app), state
    if api == "farm":
        app, state = fastapi_google.create_farm_app()
    else:
        app, state = fastapi_google.create_storage_app()
    return asgi_server(app), state


# --------------------------------------------------------------------------------------
# google-api-python-client against the farm API
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Farm:
    """A live farm server: its base URL, its state, and an httplib2 client for it."""

    base: str
    state: FarmState
    http: httplib2.Http


@pytest.fixture
def farm(framework: str, request: pytest.FixtureRequest) -> Iterator[Farm]:
    """A fresh farm API on a real socket; the client's keep-alive sockets are closed after."""
    server, state = serve(framework, request, "farm")
    with server as base:
        http = httplib2.Http(timeout=10)
        try:
            yield Farm(base, state, http)
        finally:
            http.close()


@dataclass(frozen=True)
class Outcome:
    """What one batch callback received."""

    response: Any
    exception: HttpError | None

    @property
    def status(self) -> int:
        """The HTTP status of a failed sub-request."""
        assert self.exception is not None, f"no error, got {self.response!r}"
        return int(self.exception.resp.status)

    def error_json(self) -> Any:
        """The decoded body of a failed sub-request."""
        assert self.exception is not None
        return json.loads(self.exception.content.decode("utf-8"))


class Collector:
    """A batch callback recording (request_id, response, exception) in call order."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.outcomes: dict[str, Outcome] = {}

    def __call__(self, request_id: str, response: Any, exception: HttpError | None) -> None:
        assert request_id not in self.outcomes, f"callback called twice for {request_id!r}"
        self.order.append(request_id)
        self.outcomes[request_id] = Outcome(response, exception)


def test_discovery_batch_answers_every_callback(farm: Farm) -> None:
    """A batch built from a discovery document: each id gets its own view's answer."""
    service = build_from_document(load_farm_discovery(farm.base), http=farm.http)
    animals = service.animals()
    collect = Collector()
    batch = service.new_batch_http_request(callback=collect)
    assert batch._batch_uri == f"{farm.base}/batch"  # batchPath from the document

    batch.add(animals.get(id="1", fields="name,species"))
    # JsonModel escapes non-ASCII as \uXXXX; the app answers in raw UTF-8.
    batch.add(animals.insert(body={"name": "Zoë", "species": "sheep", "note": "naïve ✓"}))
    batch.add(animals.patch(id="2", body={"name": "Shaun"}))
    batch.add(
        animals.update(id="8", body={"name": "Clover", "species": "horse"}),
        request_id="custom id+1/ü",
    )
    batch.add(animals.delete(id="3"))
    batch.add(animals.get(id="missing-7"))
    batch.add(animals.owner(id="1"))  # no Authorization header: 401
    batch.add(animals.crash(id="1"))  # the view raises: 500
    batch.execute()

    assert collect.order == ["1", "2", "3", "custom id+1/ü", "4", "5", "6", "7"]
    got = collect.outcomes
    assert got["1"] == Outcome({"name": "Molly", "species": "cow"}, None)
    assert got["2"] == Outcome(
        {"id": "100", "name": "Zoë", "species": "sheep", "note": "naïve ✓"}, None
    )
    assert got["3"] == Outcome({"id": "2", "name": "Shaun", "species": "sheep"}, None)
    assert got["custom id+1/ü"] == Outcome({"id": "8", "name": "Clover", "species": "horse"}, None)
    assert got["4"] == Outcome("", None)  # no response schema: RawModel's 204 value
    assert got["5"].status == 404
    assert got["5"].error_json()["detail"] == "no animal with id 'missing-7'"
    assert got["6"].status == 401
    assert got["6"].exception is not None
    assert got["6"].exception.resp["www-authenticate"] == 'Bearer realm="farm"'
    assert got["6"].error_json()["title"] == "Unauthorized"
    assert got["7"].status == 500

    assert farm.state.animals["100"] == {
        "id": "100",
        "name": "Zoë",
        "species": "sheep",
        "note": "naïve ✓",
    }
    assert farm.state.animals["2"]["name"] == "Shaun"
    assert farm.state.animals["8"] == {"id": "8", "name": "Clover", "species": "horse"}
    assert "3" not in farm.state.animals

    # The client re-sends 401 parts in a second batch (it would refresh credentials first).
    assert farm.state.batch_posts() == 2
    assert farm.state.farm_calls() == [
        ("GET", "/farm/v1/animals/1", "fields=name%2Cspecies&alt=json"),
        ("POST", "/farm/v1/animals", "alt=json"),
        ("PATCH", "/farm/v1/animals/2", "alt=json"),
        ("PUT", "/farm/v1/animals/8", "alt=json"),
        ("DELETE", "/farm/v1/animals/3", ""),
        ("GET", "/farm/v1/animals/missing-7", "alt=json"),
        ("GET", "/farm/v1/animals/1/owner", "alt=json"),
        ("GET", "/farm/v1/animals/1/crash", "alt=json"),
        ("GET", "/farm/v1/animals/1/owner", "alt=json"),
    ]


def _request(farm: Farm, method: str, path: str, body: Any = None, **headers: str) -> HttpRequest:
    """An HttpRequest built by hand, the way code without a discovery document does it."""
    all_headers = {"accept": "application/json", **headers}
    data = None
    if body is not None:
        data = json.dumps(body)
        all_headers["content-type"] = "application/json"
    return HttpRequest(
        farm.http,
        JsonModel(data_wrapper=False).response,
        f"{farm.base}{path}",
        method=method,
        body=data,
        headers=all_headers,
    )


def test_hand_built_requests_with_odd_request_ids(farm: Farm) -> None:
    """Request ids with spaces, '+', '/', ':', '<>' and non-ASCII come back to their callbacks."""
    per_request = Collector()
    global_callback = Collector()
    batch = BatchHttpRequest(callback=global_callback, batch_uri=f"{farm.base}/batch")
    requests = [
        ("custom id+1/ü", _request(farm, "GET", "/farm/v1/animals/10?fields=name")),
        ("colon:id", _request(farm, "POST", "/farm/v1/animals", {"name": "Ünïcødé ✓"})),
        ("<angle>", _request(farm, "PATCH", "/farm/v1/animals/11", {"species": "goat"})),
        (" + ", _request(farm, "DELETE", "/farm/v1/animals/12")),
        ("ids ✓", _request(farm, "GET", "/farm/v1/animals/12")),
        (
            "good token",
            _request(farm, "GET", "/farm/v1/animals/1/owner", authorization=f"Bearer {FARM_TOKEN}"),
        ),
        (
            "bad token",
            _request(farm, "GET", "/farm/v1/animals/1/owner", authorization="Bearer wrong"),
        ),
    ]
    for request_id, request in requests:
        batch.add(request, callback=per_request, request_id=request_id)
    batch.execute()

    ids = [request_id for request_id, _ in requests]
    assert per_request.order == ids
    assert global_callback.outcomes == per_request.outcomes
    got = per_request.outcomes
    assert got["custom id+1/ü"] == Outcome({"name": "Wilbur"}, None)
    assert got["colon:id"] == Outcome({"id": "100", "name": "Ünïcødé ✓"}, None)
    assert got["<angle>"] == Outcome({"id": "11", "name": "Billy", "species": "goat"}, None)
    assert got[" + "] == Outcome({}, None)  # JsonModel's 204 value
    assert got["ids ✓"].status == 404  # deleted earlier in the same batch: parts run in order
    assert got["good token"] == Outcome({"animal": "1", "owner": "Farmer Hoggett"}, None)
    assert got["bad token"].status == 401

    owner_calls = [c.authorization for c in farm.state.calls if c.path.endswith("/owner")]
    # The 401 part is sent again in a second batch, still with its own (bad) token.
    assert owner_calls == [f"Bearer {FARM_TOKEN}", "Bearer wrong", "Bearer wrong"]
    assert farm.state.batch_posts() == 2
    assert farm.state.animals["100"]["name"] == "Ünïcødé ✓"
    assert "12" not in farm.state.animals


def test_outer_authorization_applies_to_every_part(farm: Farm) -> None:
    """Credentials on the batch request authenticate parts that carry none (Google's rule)."""
    service = build_from_document(load_farm_discovery(farm.base), http=farm.http)
    collect = Collector()
    batch = service.new_batch_http_request(callback=collect)
    batch.add(service.animals().owner(id="1"))
    batch.add(service.animals().owner(id="2"))

    credentials = Credentials(token=FARM_TOKEN)  # type: ignore[no-untyped-call]
    authed = google_auth_httplib2.AuthorizedHttp(credentials, http=farm.http)
    batch.execute(http=authed)

    assert collect.outcomes == {
        "1": Outcome({"animal": "1", "owner": "Farmer Hoggett"}, None),
        "2": Outcome({"animal": "2", "owner": "Farmer Hoggett"}, None),
    }
    assert farm.state.batch_posts() == 1
    assert [c.authorization for c in farm.state.calls] == [f"Bearer {FARM_TOKEN}"] * 3


# --------------------------------------------------------------------------------------
# google-cloud-storage against the storage emulation
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Storage:
    """A live storage emulation and a google-cloud-storage client pointed at it."""

    state: StorageState
    client: storage.Client


@pytest.fixture
def gcs(
    framework: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Storage]:
    """A fresh storage emulation on a real socket and an anonymous client for it."""
    # Without this the client may fetch bucket metadata in a background thread.
    monkeypatch.setenv("DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA", "true")
    server, state = serve(framework, request, "storage")
    with server as base:
        client = storage.Client(
            project="test",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": base},
        )
        with client:
            yield Storage(state, client)


def _calls(state: StorageState) -> list[tuple[str, str, Any]]:
    """(method, path, JSON body) of each call that reached a storage view."""
    return [(c.method, c.path, c.body) for c in state.storage_calls()]


def test_storage_batch_fills_each_object_from_its_answer(gcs: Storage) -> None:
    """Each deferred call reaches its view, and each answer lands on the object that asked."""
    bucket = gcs.client.bucket(BUCKET)
    a = bucket.blob("dir/a.txt")
    a.metadata = {"color": "blue"}
    cde = bucket.blob("c d+é.txt")
    cde.cache_control = "no-cache"
    u = bucket.blob("u.txt")
    u.content_language = "en"
    x = bucket.blob("x.txt")
    bucket.labels = {"env": "test"}

    with gcs.client.batch():
        a.patch()
        cde.patch()
        u.update()
        x.reload()
        bucket.delete_blob("b.txt")
        bucket.patch()
        assert gcs.state.storage_calls() == []  # deferred until the block ends

    assert gcs.state.batch_posts() == 1
    assert _calls(gcs.state) == [
        ("PATCH", "/storage/v1/b/my-bucket/o/dir/a.txt", {"metadata": {"color": "blue"}}),
        ("PATCH", "/storage/v1/b/my-bucket/o/c d+é.txt", {"cacheControl": "no-cache"}),
        ("PUT", "/storage/v1/b/my-bucket/o/u.txt", {"contentLanguage": "en"}),
        ("GET", "/storage/v1/b/my-bucket/o/x.txt", None),
        ("DELETE", "/storage/v1/b/my-bucket/o/b.txt", None),
        ("PATCH", "/storage/v1/b/my-bucket", {"labels": {"env": "test"}}),
    ]

    assert (a.name, a.metadata, a.metageneration, a.size) == (
        "dir/a.txt",
        {"owner": "ann", "color": "blue"},
        2,
        1,
    )
    assert (cde.name, cde.cache_control, cde.size) == ("c d+é.txt", "no-cache", 3)
    assert cde.id == "my-bucket/c d+é.txt/1714564800000001"
    assert (u.name, u.content_language, u.size, u.metageneration) == ("u.txt", "en", 2, 2)
    assert (x.name, x.metadata, x.size, x.metageneration) == ("x.txt", {"k": "old"}, 4, 1)
    assert bucket.labels == {"team": "storage", "env": "test"}
    assert bucket.metageneration == 2
    assert (BUCKET, "b.txt") not in gcs.state.objects


def test_storage_batch_raises_the_last_failure_after_applying_the_rest(gcs: Storage) -> None:
    """A 404 part raises NotFound when the batch ends; the other parts still took effect."""
    bucket = gcs.client.bucket(BUCKET)
    x = bucket.blob("x.txt")
    x.metadata = {"k": "v"}

    def run_batch() -> None:
        with gcs.client.batch():
            bucket.delete_blob("missing-1.txt")
            x.patch()
            bucket.delete_blob("keep.txt")
            bucket.delete_blob("missing-2.txt")

    with pytest.raises(NotFound) as raised:
        run_batch()

    # google-cloud-storage raises for the *last* failing part: it keeps
    # `exception_args or subresponse`, and a requests.Response with a 4xx status is falsy.
    assert raised.value.code == 404
    assert str(raised.value).endswith(": No such object: my-bucket/missing-2.txt")
    assert x.metadata == {"k": "v"}
    assert x.metageneration == 2
    assert (BUCKET, "keep.txt") not in gcs.state.objects
    assert gcs.state.batch_posts() == 1
    assert [(m, p) for m, p, _ in _calls(gcs.state)] == [
        ("DELETE", "/storage/v1/b/my-bucket/o/missing-1.txt"),
        ("PATCH", "/storage/v1/b/my-bucket/o/x.txt"),
        ("DELETE", "/storage/v1/b/my-bucket/o/keep.txt"),
        ("DELETE", "/storage/v1/b/my-bucket/o/missing-2.txt"),
    ]


def test_storage_batch_without_raising_hands_errors_to_their_objects(gcs: Storage) -> None:
    """With raise_exception=False a failed part's error body goes to the object that asked."""
    bucket = gcs.client.bucket(BUCKET)
    ghost = bucket.blob("ghost.txt")
    ghost.metadata = {"a": "b"}
    x = bucket.blob("x.txt")
    x.metadata = {"k": "v2"}
    with gcs.client.batch(raise_exception=False):
        ghost.patch()
        x.patch()

    assert ghost._properties == {
        "error": {
            "code": 404,
            "message": "No such object: my-bucket/ghost.txt",
            "errors": [
                {
                    "message": "No such object: my-bucket/ghost.txt",
                    "domain": "global",
                    "reason": "notFound",
                }
            ],
        }
    }
    assert ghost.metadata is None
    assert x.metadata == {"k": "v2"}
    assert gcs.state.objects[(BUCKET, "x.txt")]["metadata"] == {"k": "v2"}


def test_storage_calls_outside_a_batch_use_the_same_views(gcs: Storage) -> None:
    """Sanity check of the emulation itself, so a batch failure is not the emulation's fault."""
    bucket = gcs.client.get_bucket(BUCKET)
    assert bucket.labels == {"team": "storage"}
    blob = bucket.get_blob("c d+é.txt")
    assert blob is not None
    assert (blob.name, blob.size, blob.content_type) == ("c d+é.txt", 3, "text/plain")
    blob.metadata = {"m": "1"}
    blob.patch()
    assert blob.metadata == {"m": "1"}
    assert gcs.state.batch_posts() == 0
    calls: list[Call] = gcs.state.storage_calls()
    assert [(c.method, c.path) for c in calls] == [
        ("GET", "/storage/v1/b/my-bucket"),
        ("GET", "/storage/v1/b/my-bucket/o/c d+é.txt"),
        ("PATCH", "/storage/v1/b/my-bucket/o/c d+é.txt"),
    ]
