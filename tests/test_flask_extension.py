"""The Flask extension: registration, configuration, and the batch endpoint's answers."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import quart
from flask import (
    Blueprint,
    Flask,
    Response,
    g,
    request,
    send_file,
    stream_with_context,
    url_for,
)

from flask_batch import Batch, Limits, add_batch_route
from flask_batch.flask import EXTENSION_KEY

from .batching import BOUNDARY, batch, header, post, problem, sub

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

# Every byte value, and lines that look like the answer's delimiters (its boundary is random).
BINARY = bytes(range(256)) + b"\r\n--batch_\r\n--batch_0f--\r\n\n--\r\n" * 2


def make_app() -> Flask:
    app = Flask(__name__)
    calls: list[str] = []
    app.config["calls"] = calls

    @app.before_request
    def before() -> None:
        calls.append(f"before {request.method} {request.path}")

    @app.after_request
    def after(response: Response) -> Response:
        response.headers["X-After"] = request.path
        return response

    @app.teardown_request
    def teardown(error: BaseException | None) -> None:
        calls.append(f"teardown {request.path}")

    @app.get("/json")
    def as_json() -> dict[str, object]:
        return {"ok": True, "query": request.args.to_dict(), "raw": request.environ["REQUEST_URI"]}

    @app.get("/html")
    def html() -> str:
        return "<p>Zoë ✓</p>"

    @app.get("/binary")
    def binary() -> Response:
        return Response(BINARY, mimetype="application/octet-stream")

    @app.route("/empty", methods=["GET", "DELETE"])
    def empty() -> tuple[str, int]:
        return "", 204

    @app.get("/cached")
    def cached() -> Response:
        return Response(status=304, headers={"ETag": '"v1"'})

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            yield "a"
            yield request.args.get("x", "")
            yield "c"

        return Response(stream_with_context(chunks()), mimetype="text/plain")

    @app.get("/file")
    def file() -> Response:
        return send_file(io.BytesIO(BINARY), mimetype="application/octet-stream")

    @app.get("/cookies")
    def cookies() -> Response:
        response = Response("set")
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    @app.post("/echo")
    def echo() -> Response:
        return Response(request.get_data(), mimetype=request.mimetype)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    @app.get("/g")
    def show_g() -> dict[str, object]:
        seen = getattr(g, "mark", None)
        g.mark = request.args["mark"]
        return {"seen": seen}

    add_batch_route(app)
    return app


def test_every_kind_of_response_survives(app: Flask) -> None:
    answers = batch(
        app.test_client(),
        sub("GET", "/json?q=%C3%A9&a=1"),
        sub("GET", "/html"),
        sub("GET", "/binary"),
        sub("DELETE", "/empty"),
        sub("GET", "/cached"),
        sub("HEAD", "/binary"),
        sub("GET", "/stream?x=b"),
        sub("GET", "/file"),
        sub("GET", "/cookies"),
        sub("POST", "/echo", BINARY, (("Content-Type", "application/octet-stream"),)),
    )
    js, html, binary, empty, cached, head, stream, file, cookies, echo = answers
    assert js.status == 200
    assert json.loads(js.body) == {
        "ok": True,
        "query": {"q": "é", "a": "1"},
        "raw": "/json?q=%C3%A9&a=1",
    }
    assert html.body.decode() == "<p>Zoë ✓</p>"
    assert header(html, "Content-Type") == "text/html; charset=utf-8"
    assert binary.body == BINARY
    assert header(binary, "Content-Length") == str(len(BINARY))
    assert (empty.status, empty.body, header(empty, "Content-Length")) == (204, b"", "0")
    assert (cached.status, cached.body, header(cached, "ETag")) == (304, b"", '"v1"')
    assert (head.status, head.body, header(head, "Content-Length")) == (200, b"", str(len(BINARY)))
    assert stream.body == b"abc"
    assert file.body == BINARY
    assert [v for k, v in cookies.headers if k == "Set-Cookie"] == ["a=1; Path=/", "b=2; Path=/"]
    assert echo.body == BINARY
    # after_request ran for every part.
    assert header(stream, "X-After") == "/stream"


def test_the_answer_is_a_well_formed_multipart_with_reasons(app: Flask) -> None:
    answer = post(
        app.test_client(),
        (
            f"--{BOUNDARY}\r\nContent-Type: application/http\r\nContent-ID: <a b>\r\n\r\n"
            f"GET /json HTTP/1.1\r\n\r\n"
            f"--{BOUNDARY}\r\nContent-Type: application/http\r\nContent-ID: 7\r\n\r\n"
            f"GET /missing HTTP/1.1\r\n\r\n"
            f"--{BOUNDARY}\r\nContent-Type: application/http\r\n\r\n"
            f"GET /html HTTP/1.1\r\n\r\n"
            f"--{BOUNDARY}--"
        ).encode(),
    )
    assert answer.status_code == 200
    content_type = answer.headers["Content-Type"]
    boundary = content_type.split("boundary=")[1]
    assert '"' not in content_type
    body = answer.get_data()
    assert body.startswith(f"--{boundary}\r\n".encode())  # no preamble
    assert body.endswith(f"--{boundary}--\r\n".encode())
    chunks = body.split(f"--{boundary}".encode())[1:-1]
    assert b"Content-ID: <response-a b>\r\n" in chunks[0]
    assert b"Content-ID: 7\r\n" in chunks[1]
    assert b"Content-ID" not in chunks[2]
    assert b"\r\n\r\nHTTP/1.1 200 OK\r\n" in chunks[0]
    assert b"\r\n\r\nHTTP/1.1 404 NOT FOUND\r\n" in chunks[1]


def test_hooks_run_for_each_part_in_order(app: Flask) -> None:
    batch(app.test_client(), sub("GET", "/json"), sub("GET", "/html"))
    assert app.config["calls"] == [
        "before POST /batch",
        "teardown /batch",
        "before GET /json",
        "teardown /json",
        "before GET /html",
        "teardown /html",
    ]


@pytest.mark.parametrize("propagate", [False, True])
def test_an_exception_becomes_a_500_part_and_the_batch_goes_on(
    app: Flask, propagate: bool, caplog: pytest.LogCaptureFixture
) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = propagate
    boom, after = batch(app.test_client(), sub("GET", "/boom"), sub("GET", "/json"))
    assert boom.status == 500
    assert b"RuntimeError" not in boom.body  # no internals in the answer
    assert after.status == 200
    if propagate:  # otherwise Flask's own handler answered the 500
        assert "part 1 (GET /boom) raised" in caplog.text


def test_wsgi_middleware_applies_to_parts(app: Flask) -> None:
    inner = app.wsgi_app

    def middleware(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def tagged(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            return start_response(status, [*headers, ("X-Middleware", "yes")])

        return inner(environ, tagged)

    app.wsgi_app = middleware  # type: ignore[method-assign]
    (answer,) = batch(app.test_client(), sub("GET", "/json"))
    assert header(answer, "X-Middleware") == "yes"


def test_header_injection_from_the_app_becomes_a_500_part(app: Flask) -> None:
    inner = app.wsgi_app

    def injecting(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/inject":
            start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: admin=1")])
            return [b"x"]
        return inner(environ, start_response)

    app.wsgi_app = injecting  # type: ignore[method-assign]
    injected, fine = batch(app.test_client(), sub("GET", "/inject"), sub("GET", "/json"))
    assert injected.status == 500
    assert all(k != "Set-Cookie" for k, _ in injected.headers)
    assert fine.status == 200


def test_g_does_not_leak_between_parts_or_from_the_outer_request(app: Flask) -> None:
    @app.before_request
    def outer_mark() -> None:
        if request.path == "/batch":
            g.mark = "outer"

    first, second = batch(app.test_client(), sub("GET", "/g?mark=1"), sub("GET", "/g?mark=2"))
    assert json.loads(first.body) == {"seen": None}
    assert json.loads(second.body) == {"seen": None}


# Registration and configuration


def test_extension_registers_once_per_app() -> None:
    app = Flask(__name__)
    extension = Batch(app)
    assert app.extensions[EXTENSION_KEY] is extension
    with pytest.raises(RuntimeError, match="already registered"):
        extension.init_app(app)
    with pytest.raises(RuntimeError, match="already registered"):
        Batch(app)


def test_app_factory_and_several_apps_in_one_process() -> None:
    extension = Batch(max_parts=2)
    apps = [Flask("one"), Flask("two")]
    apps[1].config["BATCH_MAX_PARTS"] = 5  # the keyword argument wins
    for each in apps:
        each.route("/ok")(lambda: "ok")
        extension.init_app(each)
    for each in apps:
        answer = post(each.test_client(), _parts(3))
        assert problem(answer)["limit"] == "max_parts"
        assert problem(answer)["value"] == 2
        assert each.extensions[EXTENSION_KEY] is extension


def test_several_batch_routes_on_one_app() -> None:
    app = Flask(__name__)
    app.route("/ok")(lambda: "ok")
    Batch(app)
    add_batch_route(app, "/batch/storage/v1", "batch_storage", max_parts=1)
    client = app.test_client()
    assert post(client, _parts(2)).status_code == 200
    assert post(client, _parts(2), route="/batch/storage/v1").status_code == 413
    assert post(client, _parts(1), route="/batch/storage/v1").status_code == 200


def test_options_win_over_config_which_wins_over_defaults() -> None:
    app = Flask(__name__)
    app.config.update(BATCH_MAX_PARTS=3, BATCH_MAX_HEADER_SIZE=999)
    app.route("/ok")(lambda: "ok")
    add_batch_route(app, max_header_size=1234)
    add_batch_route(app, "/plain", "plain")
    client = app.test_client()
    assert post(client, _parts(3)).status_code == 200
    assert problem(post(client, _parts(4)))["value"] == 3
    assert problem(post(client, _parts(4), route="/plain"))["value"] == 3
    big = _parts(1, header="X-Big: " + "a" * 1300)
    assert problem(post(client, big))["value"] == 1234
    assert problem(post(client, big, route="/plain"))["value"] == 999
    bare = Flask(__name__)
    bare.route("/ok")(lambda: "ok")
    add_batch_route(bare)
    assert post(bare.test_client(), _parts(Limits().max_parts)).status_code == 200
    assert problem(post(bare.test_client(), _parts(Limits().max_parts + 1)))["value"] == 100


def test_the_batch_max_headers_key_bounds_the_fields_of_a_header_block() -> None:
    app = _app_with_ok()
    app.config["BATCH_MAX_HEADERS"] = 5
    add_batch_route(app)
    client = app.test_client()
    five = "\r\n".join(f"X-H{i}: {i}" for i in range(5))
    assert post(client, _parts(1, header=five)).status_code == 200
    answer = post(client, _parts(1, header=five + "\r\nX-H5: 5"))
    assert answer.status_code == 413
    assert (problem(answer)["limit"], problem(answer)["value"]) == ("max_headers", 5)


def test_max_headers_must_be_a_positive_integer() -> None:
    with pytest.raises(ValueError, match="max_headers"):
        add_batch_route(Flask(__name__), max_headers=0)


def test_bad_options_are_refused_when_registering() -> None:
    with pytest.raises(TypeError, match="max_partz"):
        Batch(max_partz=3)
    with pytest.raises(ValueError, match="max_parts must be a positive integer"):
        add_batch_route(Flask(__name__), max_parts=0)
    app = Flask(__name__)
    app.config["BATCH_MAX_BODY_SIZE"] = "big"
    with pytest.raises(ValueError, match="max_body_size"):
        add_batch_route(app)
    add_batch_route(app := Flask(__name__))
    with pytest.raises(ValueError, match="already exists"):
        add_batch_route(app)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"json_dialect": "ms-graph"}, "json_dialect must be one of"),
        ({"pinned_headers": "X-Tenant"}, "not the string"),  # a string is not a list of names
        ({"pinned_headers": ["X Tenant"]}, "is not a header name"),
        ({"pinned_headers": [""]}, "is not a header name"),
        ({"pinned_headers": [b"X-Tenant"]}, "is not a header name"),
        ({"pinned_headers": 7}, "must be a list of header names"),
        ({"shared_path": "yes"}, "shared_path must be True or False"),
        ({"batch_query": "comp=batch"}, "batch_query needs shared_path=True"),
        ({"shared_path": True, "batch_query": "?comp=batch"}, "no '\\?'"),
        ({"shared_path": True, "batch_query": "comp"}, "name=value fields"),
        ({"shared_path": True, "batch_query": ""}, "name=value fields"),
        ({"shared_path": True, "batch_query": 7}, "must be a query string"),
    ],
)
def test_bad_pinned_headers_and_dialects_are_refused(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        add_batch_route(Flask(__name__), **options)


def test_pinned_headers_and_the_dialect_come_from_the_config_too() -> None:
    app = Flask(__name__)
    app.config["BATCH_PINNED_HEADERS"] = ["X-Tenant"]
    app.config["BATCH_JSON_DIALECT"] = "odata"
    app.get("/t")(lambda: {"ok": True})
    add_batch_route(app)
    (pinned,) = batch(app.test_client(), sub("GET", "/t", headers=(("x-tenant", "b"),)))
    assert pinned.status == 400
    assert "x-tenant" in json.loads(pinned.body)["detail"]
    answer = app.test_client().post(
        "/batch", json={"requests": [{"id": "1", "method": "GET", "url": "/t"}]}
    )
    document = json.loads(answer.data)
    assert list(document["responses"][0]["headers"]) == ["content-type", "content-length"]


# Blueprints


def _items_blueprint(
    name: str = "api", url_prefix: str | None = "/api", **options: object
) -> Blueprint:
    """A blueprint with an ``/items`` route and a batch route next to it."""
    blueprint = Blueprint(name, __name__, url_prefix=url_prefix)

    @blueprint.get("/items")
    def items(**view_args: str) -> dict[str, object]:
        return {"path": request.path, "endpoint": request.endpoint}

    add_batch_route(blueprint, "/batch", "batch", **options)
    return blueprint


def _app_with_ok() -> Flask:
    app = Flask(__name__)
    app.route("/ok")(lambda: "ok")
    return app


def test_a_blueprint_batch_route_lives_under_the_prefix_and_reaches_the_whole_app() -> None:
    app = _app_with_ok()
    app.register_blueprint(_items_blueprint())
    with app.test_request_context():
        assert url_for("api.batch") == "/api/batch"
    client = app.test_client()
    absolute, relative, outside, nested = batch(
        client,
        sub("GET", "/api/items"),
        sub("GET", "items"),
        sub("GET", "/ok"),
        sub("GET", "batch"),
        route="/api/batch",
    )
    assert json.loads(absolute.body) == {"path": "/api/items", "endpoint": "api.items"}
    assert json.loads(relative.body) == {"path": "/api/items", "endpoint": "api.items"}
    assert (outside.status, outside.body) == (200, b"ok")
    assert nested.status == 400
    assert b"cannot contain another batch" in nested.body
    assert client.get("/api/batch").json["max_parts"] == Limits().max_parts  # type: ignore[index]
    assert post(client, _parts(1)).status_code == 404  # nothing at /batch


def test_nested_blueprints_and_one_blueprint_under_two_names() -> None:
    app = _app_with_ok()
    parent = Blueprint("outer", __name__, url_prefix="/outer")
    parent.register_blueprint(_items_blueprint("inner", "/inner"))
    app.register_blueprint(parent)
    twice = _items_blueprint("versioned", None)
    app.register_blueprint(twice, url_prefix="/v1", name="v1")
    app.register_blueprint(twice, url_prefix="/v2", name="v2")
    client = app.test_client()
    for route, endpoint in [
        ("/outer/inner/batch", "outer.inner.batch"),
        ("/v1/batch", "v1.batch"),
        ("/v2/batch", "v2.batch"),
    ]:
        assert app.url_map.bind("localhost").match(route, "POST")[0] == endpoint
        (items,) = batch(client, sub("GET", "items"), route=route)
        assert json.loads(items.body)["path"] == route.replace("/batch", "/items")


def test_the_variables_of_a_blueprint_prefix_do_not_reach_the_batch_view() -> None:
    app = _app_with_ok()
    app.register_blueprint(_items_blueprint("tenant", "/<tenant>"))
    (items,) = batch(app.test_client(), sub("GET", "items"), route="/acme/batch")
    assert json.loads(items.body) == {"path": "/acme/items", "endpoint": "tenant.items"}


def test_a_blueprint_reads_each_app_config_when_registered_there() -> None:
    blueprint = _items_blueprint(max_header_size=2000)
    small, large = _app_with_ok(), _app_with_ok()
    small.config.update(BATCH_MAX_PARTS=2, BATCH_MAX_HEADER_SIZE=999)
    large.config["BATCH_MAX_PARTS"] = 5
    small.add_url_rule("/only-small", "only_small", lambda: "small")
    for each in (small, large):
        each.register_blueprint(blueprint)
    small.config["BATCH_MAX_PARTS"] = 50  # read at registration: too late
    assert problem(post(small.test_client(), _parts(3), route="/api/batch"))["value"] == 2
    assert post(large.test_client(), _parts(3), route="/api/batch").status_code == 200
    big = _parts(1, header="X-Big: " + "a" * 1500)  # the keyword wins over the config
    assert post(small.test_client(), big, route="/api/batch").status_code == 200
    # Each app's parts run through that app.
    (here,) = batch(small.test_client(), sub("GET", "/only-small"), route="/api/batch")
    (elsewhere,) = batch(large.test_client(), sub("GET", "/only-small"), route="/api/batch")
    assert (here.status, elsewhere.status) == (200, 404)


def test_what_is_neither_a_flask_app_nor_a_blueprint_is_refused() -> None:
    for wrong in (object(), "app", Flask(__name__).wsgi_app):
        with pytest.raises(TypeError, match=r"a Flask app or a Blueprint.*BatchMiddleware"):
            add_batch_route(wrong)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_partz"):  # refused now, not at registration
        add_batch_route(Blueprint("api", __name__), max_partz=1)
    with pytest.raises(ValueError, match=r"cannot contain '\.'"):
        add_batch_route(Blueprint("api", __name__), "/batch", "api.batch")
    with pytest.raises(TypeError, match=r"Quart.*flask_batch\.asgi\.BatchMiddleware"):
        quart.Quart(__name__).register_blueprint(_items_blueprint())


def test_a_path_already_routed_is_refused_whatever_the_name() -> None:
    app = _app_with_ok()
    add_batch_route(app)
    with pytest.raises(ValueError, match=r"'/batch' is already routed to the endpoint 'batch'"):
        add_batch_route(app, "/batch", "batch_again")
    app.add_url_rule("/legacy", "legacy", lambda: "legacy", methods=["POST"])
    with pytest.raises(ValueError, match=r"'/legacy' is already routed to the endpoint 'legacy'"):
        add_batch_route(app, "/legacy", "legacy_batch")
    # No method in common: both routes run.
    app.add_url_rule(
        "/traced", "traced", lambda: "traced", methods=["TRACE"], provide_automatic_options=False
    )
    add_batch_route(app, "/traced", "traced_batch")
    client = app.test_client()
    assert client.open("/traced", method="TRACE").get_data() == b"traced"
    assert post(client, _parts(1), route="/traced").status_code == 200
    assert "batch_again" not in app.view_functions
    assert "legacy_batch" not in app.view_functions


def test_a_shared_path_takes_post_only_beside_the_views_of_the_path() -> None:
    """Flask routes each method of a path to one view: a shared batch route takes POST, and
    the container's own views (variables in the rule, as Azure's) keep the others."""
    app = Flask(__name__)
    app.add_url_rule(
        "/<account>/<container>",
        "container",
        lambda account, container: f"{request.method} {container}",
        methods=["GET", "PUT", "DELETE"],
    )
    app.get("/<account>/<container>/<name>")(lambda account, container, name: name)
    add_batch_route(
        app, "/<account>/<container>", "blob_batch", shared_path=True, batch_query="comp=batch"
    )
    client = app.test_client()
    for method in ("GET", "PUT", "DELETE"):
        assert client.open("/a/photos?restype=container", method=method).text == f"{method} photos"
    answers = batch(client, sub("GET", "/a/photos/x.jpg"), route="/a/photos?comp=batch")
    assert [(a.status, a.body) for a in answers] == [(200, b"x.jpg")]
    # A POST without the query: as Flask answers a method no view of the path takes.
    refused = post(client, _parts(1), route="/a/photos?comp=list")
    assert refused.status_code == 405
    assert refused.headers["Allow"] == "DELETE, GET, HEAD, OPTIONS, PUT"
    # A shared path already routed for POST is refused; for other methods only, it is not.
    with pytest.raises(ValueError, match=r"'/<account>/<container>' is already routed"):
        add_batch_route(app, "/<account>/<container>", "again", shared_path=True)


def test_a_post_without_the_batch_query_on_a_path_of_no_other_view_is_a_404() -> None:
    app = Flask(__name__)
    add_batch_route(app, shared_path=True, batch_query="comp=batch")
    client = app.test_client()
    assert post(client, _parts(1), route="/batch?comp=list").status_code == 404
    assert client.get("/batch").status_code == 405  # no description: GET is no view's here
    assert post(client, _parts(1), route="/batch?comp=batch").status_code == 200


def test_a_blueprint_path_already_routed_is_refused_when_registered() -> None:
    app = _app_with_ok()
    blueprint = _items_blueprint()
    app.register_blueprint(blueprint)
    with pytest.raises(ValueError, match=r"'/api/batch' is already routed to .*'api\.batch'"):
        app.register_blueprint(blueprint, name="again")  # the same prefix under another name
    taken = _app_with_ok()
    taken.add_url_rule("/api/batch", "old_batch", lambda: "old", methods=["POST"])
    with pytest.raises(ValueError, match=r"'/api/batch' is already routed to .*'old_batch'"):
        taken.register_blueprint(_items_blueprint())


def test_the_extension_takes_apps_not_blueprints() -> None:
    with pytest.raises(TypeError, match=r"add_batch_route\(blueprint"):
        Batch().init_app(Blueprint("api", __name__))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"add_batch_route\(blueprint"):
        Batch(Blueprint("api", __name__))  # type: ignore[arg-type]


# The batch body as Flask bounds and frames it (what every front end refuses alike is in
# tests/conformance/)


@pytest.mark.parametrize(
    ("keyword", "config", "effective"),
    [(None, None, 400), (10_000, None, 400), (300, None, 300), (None, 10_000, 400)],
)
def test_flask_max_content_length_bounds_the_batch_body(
    keyword: int | None, config: int | None, effective: int
) -> None:
    app = _app_with_ok()
    app.config["MAX_CONTENT_LENGTH"] = 400
    if config is not None:
        app.config["BATCH_MAX_BODY_SIZE"] = config
    if keyword is None:
        add_batch_route(app)
    else:
        add_batch_route(app, max_body_size=keyword)
    client = app.test_client()
    assert client.get("/batch").json["max_body_size"] == effective  # type: ignore[index]
    assert len(_parts(2)) < 300
    assert len(_parts(10)) > 400
    assert post(client, _parts(2)).status_code == 200
    declared = post(client, _parts(10))
    streamed = post(
        client, _parts(10), environ_overrides={"CONTENT_LENGTH": "", "wsgi.input_terminated": True}
    )
    for answer in (declared, streamed):
        assert answer.status_code == 413
        assert (problem(answer)["limit"], problem(answer)["value"]) == ("max_body_size", effective)
        assert f"{effective} bytes" in problem(answer)["detail"]


def test_max_content_length_is_read_when_the_route_is_registered() -> None:
    app = _app_with_ok()
    app.config["MAX_CONTENT_LENGTH"] = 400
    app.register_blueprint(_items_blueprint())
    app.config["MAX_CONTENT_LENGTH"] = 200  # too late, as for the BATCH_* keys
    assert app.test_client().get("/api/batch").json["max_body_size"] == 400  # type: ignore[index]
    for wrong in (0, -1, "400", 4.5, True):
        app = Flask(__name__)
        app.config["MAX_CONTENT_LENGTH"] = wrong
        with pytest.raises(ValueError, match=rf"MAX_CONTENT_LENGTH .*{wrong!r}"):
            add_batch_route(app)


def test_a_body_without_length_needs_a_terminated_input(app: Flask) -> None:
    overrides = {"CONTENT_LENGTH": "", "wsgi.input_terminated": False}
    answer = post(app.test_client(), _parts(1), environ_overrides=overrides)
    assert answer.status_code == 411
    overrides["wsgi.input_terminated"] = True
    assert post(app.test_client(), _parts(1), environ_overrides=overrides).status_code == 200


def _parts(count: int, header: str = "X-A: 1") -> bytes:
    part = (
        f"--{BOUNDARY}\r\nContent-Type: application/http\r\n\r\n"
        f"GET /ok HTTP/1.1\r\n{header}\r\n\r\n"
    )
    return (part * count + f"--{BOUNDARY}--\r\n").encode()
