"""OpenTelemetry: each part's span is a child of the batch's, unless the part brings its own.

OpenTelemetry's own instrumentations (Flask, Django, FastAPI, and its WSGI middleware) run
the scenarios of ``tests/tracing_scenarios.py``, each in a fresh interpreter with the SDK's
in-memory exporter, against a real server: the batch request continues the client's trace,
part 2 brings a ``traceparent`` of its own, parts 1 and 3 none. Without the propagation,
parts 1 and 3 were children of the client's span (the ``traceparent`` they inherit), beside
the batch's span instead of under it; behind the middlewares, where no instrumentation sees
the batch request, the batch had no span at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from .child import ROOT, run_in_child
from .tracing_scenarios import CLIENT, OWN

_, CLIENT_TRACE, CLIENT_SPAN, _ = CLIENT.split("-")
_, OWN_TRACE, OWN_SPAN, _ = OWN.split("-")


def spans_of(scenario: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.tracing_scenarios", scenario],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    spans: list[dict[str, Any]] = json.loads(done.stdout.splitlines()[-1])
    return spans


@pytest.mark.parametrize(
    ("scenario", "batch_scope"),
    [
        ("flask", "opentelemetry.instrumentation.flask"),
        ("flask-parallel", "opentelemetry.instrumentation.flask"),
        # The middlewares answer the batch before Django or FastAPI see it: its span is ours.
        ("django", "flask_batch"),
        ("fastapi", "flask_batch"),
        ("django-wsgi-middleware", "opentelemetry.instrumentation.wsgi"),
    ],
)
def test_each_part_is_a_child_of_the_batch_unless_it_brings_its_own(
    scenario: str, batch_scope: str
) -> None:
    spans = spans_of(scenario)
    (batch,) = [span for span in spans if span["path"] == "/batch"]
    assert (batch["trace"], batch["parent"], batch["kind"]) == (CLIENT_TRACE, CLIENT_SPAN, "SERVER")
    assert batch["scope"] == batch_scope
    parts = {span["path"]: span for span in spans if span["kind"] == "SERVER" and span is not batch}
    assert set(parts) == {"/items/1", "/items/2", "/items/3"}
    for inheriting in ("/items/1", "/items/3"):
        assert (parts[inheriting]["trace"], parts[inheriting]["parent"]) == (
            CLIENT_TRACE,
            batch["span"],
        )
    assert (parts["/items/2"]["trace"], parts["/items/2"]["parent"]) == (OWN_TRACE, OWN_SPAN)


def test_without_opentelemetry_in_use_nothing_of_it_is_imported() -> None:
    done = run_in_child(
        "import sys\n"
        "from flask import Flask\n"
        "from flask_batch import add_batch_route\n"
        "app = Flask(__name__)\n"
        "add_batch_route(app)\n"
        "body = (b'--b\\r\\nContent-Type: application/http\\r\\n\\r\\n'\n"
        "        b'GET /x HTTP/1.1\\r\\n\\r\\n--b--\\r\\n')\n"
        "answer = app.test_client().post('/batch', data=body,\n"
        "    content_type='multipart/mixed; boundary=b', headers={'traceparent': '"
        + CLIENT
        + "'})\n"
        "assert answer.status_code == 200 and b'404' in answer.data, answer.data\n"
        "print(sorted(name for name in sys.modules if name.startswith('opentelemetry')))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
