"""The batch route in the OpenAPI documents users publish: FastAPI's ``/docs``, apispec's.

What a user relies on: the document still validates with the batch route in it, the route
is described in both formats with the limits it enforces, and the examples it shows are
batches the route really accepts (so the documentation cannot drift from the endpoint).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoint's annotations.
import json
from typing import Any

import pytest
from apispec import APISpec
from fastapi import FastAPI
from flask import Flask
from flask_smorest import Api
from openapi_spec_validator import validate

from flask_batch import add_batch_route
from flask_batch.asgi import BatchMiddleware
from flask_batch.flask import describe_batch_routes
from flask_batch.openapi import COMPONENTS, add_to_fastapi, batch_path_item

from .frameworks.driving import request, run


def fastapi_app() -> FastAPI:
    app = FastAPI(title="people")

    @app.get("/people/{name}")
    def person(name: str) -> dict[str, str]:
        return {"name": name}

    return app


def examples(item: dict[str, Any]) -> dict[str, Any]:
    content = item["post"]["requestBody"]["content"]
    return {media_type: content[media_type]["example"] for media_type in content}


def test_fastapi_documents_the_batch_route_next_to_its_own() -> None:
    app = fastapi_app()
    add_to_fastapi(app, "/api/batch", max_parts=50)
    served = BatchMiddleware(app, "/api/batch", max_parts=50)

    answer = run(request(served, "GET", "/openapi.json"))
    assert answer.status == 200
    document = json.loads(answer.body)
    validate(document)
    assert set(document["paths"]) == {"/people/{name}", "/api/batch"}
    post = document["paths"]["/api/batch"]["post"]
    assert set(post["requestBody"]["content"]) == {"multipart/mixed", "application/json"}
    assert post["requestBody"]["content"]["application/json"]["schema"]["properties"] == {
        "requests": {"type": "array", "maxItems": 50}
    }
    assert "At most 50 requests" in post["description"]
    assert set(COMPONENTS) <= set(document["components"]["schemas"])
    assert app.openapi() is app.openapi()  # built once, as FastAPI does


@pytest.mark.parametrize("media_type", ["multipart/mixed", "application/json"])
def test_the_documented_examples_are_batches_the_route_runs(media_type: str) -> None:
    app = fastapi_app()
    served = BatchMiddleware(app, "/batch")
    example = examples(batch_path_item())[media_type]
    body = example.encode() if isinstance(example, str) else json.dumps(example).encode()
    if media_type == "multipart/mixed":
        media_type += "; boundary=batch_1"

    answer = run(
        request(served, "POST", "/batch", headers=[("content-type", media_type)], body=body)
    )
    assert answer.status == 200, answer.body


@pytest.mark.parametrize("version", ["3.0.3", "3.1.0"])
def test_apispec_documents_each_batch_route_of_a_flask_app(version: str) -> None:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1 << 20
    add_batch_route(app, max_parts=20)
    add_batch_route(app, "/<account>/<path:container>", "blob", shared_path=True)
    spec = APISpec(title="people", version="1", openapi_version=version)
    describe_batch_routes(spec, app)

    document = spec.to_dict()
    validate(document)
    batch, blob = document["paths"]["/batch"], document["paths"]["/{account}/{container}"]
    assert "At most 20 requests, 1048576 bytes of body" in batch["post"]["description"]
    assert batch["get"]["operationId"] == "batch_describe"
    assert "get" not in blob  # a shared path's GET is the application's
    assert [p["name"] for p in blob["parameters"]] == ["account", "container"]


def test_flask_smorest_serves_the_batch_route_in_its_document() -> None:
    app = Flask(__name__)
    app.config.update(
        API_TITLE="people", API_VERSION="1", OPENAPI_VERSION="3.0.3", OPENAPI_URL_PREFIX="/"
    )
    api = Api(app)
    add_batch_route(app, "/v1/batch")
    describe_batch_routes(api.spec, app)

    document = app.test_client().get("/openapi.json").get_json()
    validate(document)
    assert document["paths"]["/v1/batch"]["post"]["operationId"] == "batch_send"


def test_an_app_without_a_batch_route_is_refused() -> None:
    spec = APISpec(title="people", version="1", openapi_version="3.0.3")
    with pytest.raises(LookupError, match="no batch route"):
        describe_batch_routes(spec, Flask(__name__))


def test_a_mistyped_option_is_refused_naming_it() -> None:
    with pytest.raises(TypeError, match="max_part'"):
        batch_path_item(max_part=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="max_parts must be a positive integer"):
        add_to_fastapi(fastapi_app(), max_parts=0)
