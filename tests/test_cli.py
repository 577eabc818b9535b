"""The ``flask-batch`` command against a real server on 127.0.0.1: ``send`` a ``.http`` file
as one batch, ``describe`` an endpoint, and every exit status (docs/clients/cli.md). Most
tests run the command in-process with Click's runner; the last ones run the installed entry
point itself."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask, Response, jsonify, request

from flask_batch import add_batch_route
from flask_batch.cli import main

from .child import run_in_child
from .servers import live_server, trickling_server


def make_app(**options: Any) -> Flask:
    app = Flask(__name__)
    people = {"alice": {"name": "alice", "age": 30}}
    app.config["batches"] = []

    @app.before_request
    def record_batches() -> None:
        if request.path == "/batch" and request.method == "POST":
            app.config["batches"].append(request.mimetype)

    @app.get("/people")
    def list_people() -> Response:
        return jsonify(sorted(people))

    @app.post("/people")
    def create() -> tuple[Response, int]:
        person = request.get_json()
        people[person["name"]] = person
        return jsonify(person), 201

    @app.get("/people/<name>")
    def read(name: str) -> tuple[Response, int]:
        if name not in people:
            return jsonify(error=f"no person named {name}"), 404
        return jsonify(people[name]), 200

    @app.get("/echo")
    def echo() -> dict[str, str | None]:
        return {"token": request.headers.get("X-Token"), "cookie": request.headers.get("Cookie")}

    @app.put("/raw")
    def raw() -> Response:
        return Response(request.get_data(), content_type="text/plain; charset=utf-8")

    add_batch_route(app, **options)
    return app


@pytest.fixture
def base(app: Flask) -> Iterator[str]:
    with live_server(app) as url:
        yield url


def run(*arguments: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(arguments), env=env)


def http_file(tmp_path: Path, text: str, name: str = "api.http") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


SEVERAL = """\
@people = /people
@age = 31

### list
GET {{people}}
Accept: application/json

### create {{who}}
POST {{people}}
Content-Type: application/json

{"name": "{{who}}", "age": {{age}}}

### read it back
GET {{people}}/{{who}}

###
GET /echo
X-Token: {{$processEnv API_TOKEN}}
Cookie: a=1
Cookie: b=2
"""


def test_send_a_file_of_several_requests_with_variables(tmp_path: Path, base: str) -> None:
    path = http_file(tmp_path, SEVERAL)
    result = run(
        "send", path, "--url", f"{base}/batch", "--var", "who=bob", env={"API_TOKEN": "t0k3n"}
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.split("\n\n")[:4] == [
        f"[1] GET {base}/people  (list)\nHTTP 200 OK",
        '[\n  "alice"\n]',
        f"[2] POST {base}/people  (create {{{{who}}}})\nHTTP 201 CREATED",
        '{\n  "age": 31,\n  "name": "bob"\n}',
    ]
    assert f"[3] GET {base}/people/bob  (read it back)\nHTTP 200 OK" in result.stdout
    assert '"token": "t0k3n"' in result.stdout
    assert '"cookie": "a=1; b=2"' in result.stdout
    assert result.stdout.rstrip().rsplit("\n", 1)[-1].startswith("4 requests: 4 ok, 0 failed, in ")


def test_one_batch_of_the_chosen_format(tmp_path: Path, app: Flask, base: str) -> None:
    path = http_file(tmp_path, SEVERAL)
    for batch_format in ("json", "multipart"):
        result = run(
            "send",
            path,
            "--url",
            f"{base}/batch",
            "--var",
            "who=carol",
            "--format",
            batch_format,
            env={"API_TOKEN": "x"},
        )
        assert result.exit_code == 0, result.output
    assert app.config["batches"] == ["application/json", "multipart/mixed"]


def test_a_failing_request_stops_the_rest_and_exits_1(tmp_path: Path, base: str) -> None:
    path = http_file(tmp_path, "GET /people/nobody\n###\nGET /people\n")
    result = run("send", path, "--url", f"{base}/batch")
    assert result.exit_code == 1
    first, second = result.stdout.split("\n\n[2] ")
    assert "HTTP 404 NOT FOUND" in first
    assert '"error": "no person named nobody"' in first
    assert "HTTP 424 Failed Dependency" in second  # in file order: it depended on the first
    assert "2 requests: 0 ok, 2 failed" in second


def test_parallel_requests_each_run_whatever_the_others_answer(tmp_path: Path, base: str) -> None:
    path = http_file(tmp_path, "GET /people/nobody\n###\nGET /people\n")
    environ = {"FLASK_BATCH_URL": f"{base}/batch"}  # --url's default
    result = run("send", path, "--parallel", "--format", "json", env=environ)
    assert result.exit_code == 1
    assert "HTTP 200 OK" in result.stdout.split("[2] ")[1]
    assert "2 requests: 1 ok, 1 failed" in result.stdout


def test_requests_an_odata_batch_never_ran_have_no_answer_and_exit_1(tmp_path: Path) -> None:
    # An OData multipart batch stops at its first failure: what came after gets no answer.
    path = http_file(tmp_path, "GET /people\n###\nGET /people/nobody\n###\nGET /people\n")
    with live_server(make_app(multipart_dialect="odata")) as base:
        result = run("send", path, "--url", f"{base}/batch", "--parallel")
    assert result.exit_code == 1
    third = result.stdout.split("[3] ")[1]
    assert third.startswith(
        f"GET {base}/people\nno answer: not run: the batch stopped at its first"
    )
    assert "3 requests: 1 ok, 2 failed" in third


def test_headers_on_request_and_bodies_from_files(tmp_path: Path, base: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "raw.txt").write_bytes(b"as {{written}}")
    (tmp_path / "data" / "template.txt").write_text("hello {{who}}", encoding="latin1")
    path = http_file(
        tmp_path, "PUT /raw\n\n< ./data/raw.txt\n###\nPUT /raw\n\n<@latin1 data/template.txt\n"
    )
    result = run("send", path, "--url", f"{base}/batch", "-i", "--var", "who=world")
    assert result.exit_code == 0, result.output
    assert (
        "Content-Type: text/plain; charset=utf-8\nContent-Length: 14\n\nas {{written}}"
        in result.stdout
    )
    assert "\n\nhello world\n" in result.stdout


def test_a_parse_error_names_the_file_and_line_and_exits_2(tmp_path: Path, base: str) -> None:
    path = http_file(tmp_path, "GET /people\n\n###\nGET /people\nnot a header\n")
    result = run("send", path, "--url", f"{base}/batch")
    assert result.exit_code == 2
    assert f"Error: {path}:5: expected a header (Name: value)" in result.stderr


@pytest.mark.parametrize(
    ("text", "arguments", "message"),
    [
        ("GET /people/{{who}}\n", [], ":1: unknown variable {{who}}"),
        ("GET /people\n###\nGET /people/{{who}}\n", [], ":3: unknown variable {{who}}"),
        (
            "GET http://elsewhere.example/x\n",
            [],
            ":1: http://elsewhere.example/x cannot be batched",
        ),
        ("POST /people\n\n< ./missing.json\n", [], ":3: cannot read the body file ./missing.json"),
        ("GET /people\n", ["--var", "no-equals"], "expected NAME=VALUE"),
        ("GET /people\n", ["--format", "xml"], "'xml' is not one of"),
    ],
)
def test_bad_input_exits_2(
    tmp_path: Path, base: str, text: str, arguments: list[str], message: str
) -> None:
    path = http_file(tmp_path, text)
    result = run("send", path, "--url", f"{base}/batch", *arguments)
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_bad_url_exits_2(tmp_path: Path) -> None:
    result = run("send", http_file(tmp_path, "GET /\n"), "--url", "localhost:5000/batch")
    assert result.exit_code == 2
    assert "expected an http:// or https:// URL" in result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens on it once the probe is closed


def test_a_refused_connection_exits_3(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/batch"
    result = run("send", http_file(tmp_path, "GET /people\n"), "--url", url)
    assert result.exit_code == 3
    assert result.stderr == f"Error: the batch to {url} failed: Connection refused\n"
    described = run("describe", url)
    assert described.exit_code == 3
    assert described.stderr == f"Error: could not reach {url}: Connection refused\n"


def test_an_answer_slower_than_the_timeout_exits_3(tmp_path: Path) -> None:
    # The server sends its head at once, then a byte every 30 ms for 3 s: only a bound on the
    # whole exchange stops it.
    head = b"HTTP/1.1 200 OK\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    with trickling_server(head, b"-" * 100, 0.03) as server:
        path = http_file(tmp_path, "GET /people\n")
        result = run("send", path, "--url", f"{server.base}/batch", "--timeout", "0.3")
        assert server.ended(1) != [None]  # the client left before the server gave up
    assert result.exit_code == 3
    assert "took longer than its timeout (0.3 s)" in result.stderr


def test_a_url_that_is_not_a_batch_endpoint_exits_3(tmp_path: Path, base: str) -> None:
    result = run("send", http_file(tmp_path, "GET /people\n"), "--url", f"{base}/people")
    assert result.exit_code == 3
    assert (
        "answered 415 UNSUPPORTED MEDIA TYPE (text/html): not an answer from a batch"
        in result.stderr
    )
    described = run("describe", f"{base}/nothing")
    assert described.exit_code == 3
    assert f"{base}/nothing did not describe a batch endpoint: it answered 404" in described.stderr


def test_describe_an_endpoint(base: str) -> None:
    result = run("describe", f"{base}/batch")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"Batch endpoint {base}/batch"
    rows = {line[2:27].strip(): line[27:] for line in lines[1:]}
    assert rows["methods"] == "GET, HEAD, OPTIONS, POST"
    assert rows["formats"] == "multipart/mixed, application/json"
    assert rows["max parts"] == "100"
    assert rows["max body size"] == "16 MiB (16777216 bytes)"
    assert rows["deadline"] == "none"
    assert rows["dependencies"] == "yes"


def test_describe_as_json_is_the_endpoints_own_document(base: str) -> None:
    result = run("describe", f"{base}/batch", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["max_parts"] == 100
    assert document["formats"] == ["multipart/mixed", "application/json"]


def run_installed(
    *arguments: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``flask-batch`` entry point installed beside this interpreter."""
    command = shutil.which("flask-batch", path=str(Path(sys.executable).parent))
    if command is None:
        pytest.fail("the flask-batch entry point is not installed (pip install -e .)")
    return subprocess.run(
        [command, *arguments], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_installed_command_sends_and_exits_with_the_outcome(tmp_path: Path, base: str) -> None:
    path = http_file(tmp_path, "GET /people\n###\nGET /people/nobody\n")
    done = run_installed("send", path, "--url", f"{base}/batch")
    assert done.returncode == 1, done.stderr
    assert "2 requests: 1 ok, 1 failed" in done.stdout


def test_the_installed_command_completes_in_bash() -> None:
    done = run_installed(env={"_FLASK_BATCH_COMPLETE": "bash_source", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "_flask_batch_completion()" in done.stdout
    assert "complete -o nosort -F _flask_batch_completion flask-batch" in done.stdout


def test_without_the_client_extra_the_command_says_what_to_install() -> None:
    result = run_in_child(
        "import sys\n"
        "sys.modules['requests'] = None  # as if the client extra were not installed\n"
        "sys.argv = ['flask-batch', '--help']\n"
        "from flask_batch.cli import run\n"
        "run()\n"
    )
    assert result.returncode == 1
    assert result.stderr == (
        "flask-batch needs the client extra (requests is missing): "
        "pip install 'flask-batch[client]'\n"
    )


def test_python_m_runs_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flask_batch.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("flask-batch, version ")


def test_the_documented_example_runs(tmp_path: Path, base: str) -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "clients" / "cli.md").read_text()
    example = page.split("```http\n", 1)[1].split("```", 1)[0]
    path = http_file(tmp_path, example)
    result = run(
        "send", path, "--url", f"{base}/batch", "--var", "who=alice", env={"API_TOKEN": "t"}
    )
    assert result.exit_code == 0, result.output
    assert "2 requests: 2 ok, 0 failed" in result.stdout
